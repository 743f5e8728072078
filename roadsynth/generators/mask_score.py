"""How much to trust a cut-out's mask without its true mask: a quality score from the photo alone.

A mask derived from a box (GrabCut) fails in known ways: it takes background along with the object (a
fence rail, a patch of grass, the wall behind a deer), or it loses a part (legs, a head) so it no longer
reaches the sides of its tight box. True masks fail too: MSRC's keep the grass between a cow's legs.
Each failure leaves a trace in the photo, which the score reads:

- `separation`: how different the mask's colours are from the background ring around the box
  (1 - Bhattacharyya coefficient of their Lab histograms): low when the mask holds background;
- `leak`: the share of mask pixels that the ring's colours explain better than the mask's own core
  (the pixels deep inside it): background carried along;
- `reach`: how well the mask touches the four sides of the box (a tight box is touched by its object on
  every side): low when a part is missing or the box is loose;
- `fill`: the mask's share of the box, in the range objects have (neither a sliver nor the whole box).

`score` is their product in [0, 1] (see `cutout_quality`); `insert.cutout_min_quality`
refuses cut-outs below a threshold, and the score travels into the bank index and every annotation's
provenance. Numpy + OpenCV; no weights.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 8  # per Lab channel


def _lab_hist(lab: np.ndarray) -> np.ndarray:
    if lab.shape[0] == 0:
        return np.full(BINS**3, 1.0 / BINS**3)
    q = np.minimum(lab.astype(np.int32) * BINS // 256, BINS - 1)
    h = np.bincount((q[:, 0] * BINS + q[:, 1]) * BINS + q[:, 2], minlength=BINS**3).astype(float) + 0.5
    return h / h.sum()


def _codes(lab: np.ndarray) -> np.ndarray:
    q = np.minimum(lab.astype(np.int32) * BINS // 256, BINS - 1)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def cutout_quality(rgb: np.ndarray, mask: np.ndarray, box: tuple[float, float, float, float] | None = None,
                   ring: float = 0.25) -> dict[str, float]:
    """Quality of a full-frame object `mask` on its photo `rgb`. `box` (x, y, w, h): the labelled box the
    mask was derived from (default: the mask's own tight box, which it reaches by construction).

    The ring is the band `ring` x the box size around the box (clipped to the photo). Returns the parts
    and `score` in [0, 1].
    """
    mask = mask.astype(bool)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return {"score": 0.0, "separation": 0.0, "leak": 1.0, "reach": 0.0, "fill": 0.0}
    H, W = mask.shape
    if box is None:
        x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    else:
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = min(int(np.ceil(box[0] + box[2])), W), min(int(np.ceil(box[1] + box[3])), H)
    bw, bh = x2 - x1, y2 - y1
    mx, my = max(2, int(round(bw * ring))), max(2, int(round(bh * ring)))
    rx1, ry1, rx2, ry2 = max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, W), min(y2 + my, H)
    lab = cv2.cvtColor(np.ascontiguousarray(rgb[ry1:ry2, rx1:rx2]), cv2.COLOR_RGB2LAB)
    m = mask[ry1:ry2, rx1:rx2]
    in_box = np.zeros_like(m)
    in_box[y1 - ry1:y2 - ry1, x1 - rx1:x2 - rx1] = True
    ring_px = lab[~in_box]
    obj_px = lab[m]
    # The core: mask pixels far from its edge, which a leak along the border does not reach.
    dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
    core = dist >= max(2.0, 0.25 * float(dist.max()))
    core_px = lab[core] if core.any() else obj_px
    h_obj, h_ring, h_core = _lab_hist(obj_px), _lab_hist(ring_px), _lab_hist(core_px)
    separation = float(1.0 - np.sqrt(h_obj * h_ring).sum()) if ring_px.shape[0] else 0.5
    codes = _codes(lab[m])
    leak = float(np.mean(h_ring[codes] > 2.0 * h_core[codes])) if ring_px.shape[0] else 0.0
    tol_x, tol_y = max(1, int(0.03 * bw)), max(1, int(0.03 * bh))
    box_m = mask[y1:y2, x1:x2]
    sides = [box_m[:tol_y].any(), box_m[-tol_y:].any(), box_m[:, :tol_x].any(), box_m[:, -tol_x:].any()]
    reach = float(np.mean(sides))  # a hoof or an ear touching a side is enough: shapes touch at points
    fill_frac = float(box_m.mean())
    fill = float(np.clip((fill_frac - 0.15) / 0.2, 0, 1) * np.clip((0.97 - fill_frac) / 0.1, 0, 1))
    # Leaked background counts double: a tenth of the mask being grass is already a visibly wrong cut-out.
    score = float(np.clip((separation - 0.2) / 0.6, 0, 1) * max(0.0, 1.0 - 2.0 * leak) * (0.5 + 0.5 * reach) * fill)
    return {"score": round(score, 4), "separation": round(separation, 4), "leak": round(leak, 4),
            "reach": round(reach, 4), "fill": round(fill_frac, 4)}
