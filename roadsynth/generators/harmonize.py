"""Weight-free appearance matching: make a pasted cut-out look as if the scene's camera had filmed it.

Every step works on the object's crop and measures the frame around the object (a ring of background
pixels around its box), never the whole frame:

- tone: the object's luma mean moves to its surroundings' (keeping `luminance_keep` of its own log
  contrast to them, within natural variation) by a gain, as the camera's exposure would: a night frame
  makes a dark object. Its relative contrast (luma std / mean) stays its own by default: the ring is
  mostly road, whose texture says nothing about the object's surfaces, and pulling the object towards it
  (`contrast_follow` 0.5) left pasted animals 0.2-0.3 flatter in Laplacian contrast than the real
  vehicles of the same frames (docs/geometry.md, "Fleet frames");
- colour: the object's mean chroma (CIELAB a/b) moves part-way to the surroundings', as one shift of
  at most `max_color_shift` units: white balance follows the scene, hues do not rotate;
- sharpness: an object sharper than its surroundings is blurred to match (Zhuo & Sim's re-blur ratio
  estimates the blur of each region's edges); up-scaling beyond `max_upscale` is refused upstream;
- noise: sensor noise estimated in the surroundings (Immerkaer) is added where the object has less;
- JPEG texture: the object is compressed once at the frame's own JPEG quality, on the frame's 8x8 grid;
- alpha: colours at the silhouette's rim are replaced by interior colours (no grass fringe at the hooves,
  no halo) and the alpha is refined with a guided filter on the object's own edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from roadsynth.generators.realism import gradient, noise_sigma


@dataclass(frozen=True)
class MatchConfig:
    """Which matching steps run (the `insert.match` section of a run config)."""

    __pydantic_config__ = {"extra": "forbid"}  # unknown YAML keys are errors (a plain dict: no pydantic import)

    tone: bool = True
    color: bool = True
    sharpness: bool = True
    noise: bool = True
    jpeg: bool = True
    refine_alpha: bool = True
    max_upscale: float = 3.0  # a cut-out enlarged more than this is refused (it would be blurrier than the scene)
    luminance_keep: float = 0.35  # share of the object's own log-luma contrast to its surroundings that is kept
    max_log_luminance: float = 0.35  # ... and the bound on what is kept (natural variation of real objects)
    max_color_shift: float = 8.0  # CIELAB a/b units
    contrast_follow: float = 0.0  # share of the ring's relative luma contrast the object takes (0: keeps its own)

    def __post_init__(self) -> None:
        if self.max_upscale < 1:
            raise ValueError(f"`max_upscale` must be >= 1, but got {self.max_upscale}")
        for name in ("luminance_keep", "contrast_follow"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], but got {getattr(self, name)}")
        if self.max_color_shift < 0 or self.max_log_luminance < 0:
            raise ValueError("`max_color_shift` and `max_log_luminance` must be >= 0")


def refine_alpha(rgb: np.ndarray, alpha: np.ndarray, radius: int = 2, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, alpha) with the rim's colours taken from the interior and the alpha guided by the object's edges."""
    support = (alpha > 0.02).astype(np.uint8)
    core = cv2.erode((alpha > 0.9).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
    rim = (support & (1 - core)).astype(bool)
    if core.any() and rim.any():
        # Background that the mask caught at the rim (grass, sky) is replaced by nearby object colours: a
        # blur of the core's colours normalised by the core's weight (a cheap push-out of the interior).
        c = core.astype(np.float32)
        num = cv2.GaussianBlur(rgb.astype(np.float32) * c[..., None], (0, 0), 2.0)
        den = cv2.GaussianBlur(c, (0, 0), 2.0)
        fill = np.clip(num / np.maximum(den, 1e-3)[..., None], 0, 255).astype(np.uint8)
        rim &= den > 0.05
        rgb = rgb.copy()
        rgb[rim] = fill[rim]
    guide = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    refined = guided_filter(guide, alpha.astype(np.float32), radius, eps)
    # The guided filter may spread alpha a little; never beyond one pixel of the original silhouette.
    grown = cv2.dilate(support, np.ones((3, 3), np.uint8)).astype(bool)
    return rgb, np.clip(refined, 0, 1) * grown


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide), with box filters."""
    k = (2 * radius + 1,) * 2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mi, mp = box(guide), box(src)
    var = box(guide * guide) - mi * mi
    cov = box(guide * src) - mi * mp
    a = cov / (var + eps)
    b = mp - a * mi
    return box(a) * guide + box(b)


def match_tone_color(obj: np.ndarray, inside: np.ndarray, ring_rgb: np.ndarray, cfg: MatchConfig,
                     jitter: tuple[float, float, float] = (1.0, 0.0, 0.0)) -> np.ndarray:
    """The object's pixels (uint8 RGB; `inside` marks them) moved towards the ring's statistics (`ring_rgb`:
    the ring's pixels, Nx3 uint8). Tone works on luma (the quantity the audit measures) with a per-pixel
    gain, so chromaticity stays; colour is one bounded CIELAB a/b shift. `jitter` = (luma gain, a shift,
    b shift): small per-object variety that never rotates hue."""
    out = obj
    if cfg.tone:
        y = cv2.cvtColor(obj, cv2.COLOR_RGB2GRAY).astype(np.float32)
        ring_y = ring_rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        y_in = y[inside]
        yo, so = float(y_in.mean()), float(y_in.std())
        yr, sr = float(ring_y.mean()), float(ring_y.std())
        own = math.log((yo + 1) / (yr + 1))
        kept = float(np.clip(own * cfg.luminance_keep, -cfg.max_log_luminance, cfg.max_log_luminance))
        target = (yr + 1) * math.exp(kept) - 1
        # A gain (target / mean: the object's relative contrast kept, as under another exposure), times the
        # relative-contrast change `contrast_follow` asks for (in log, towards the ring's; bounded). The gain
        # never brightens more than 1.5x (a dark cut-out's noise and JPEG blocks would be amplified; the
        # shift below still brings its mean to the target); it darkens as far as a night frame needs.
        cv_o, cv_r = max(so / max(yo, 1.0), 1e-3), max(sr / max(yr, 1.0), 1e-3)
        k = float(np.clip((cv_r / cv_o) ** cfg.contrast_follow, 0.3, 1.5))
        scale = min(k * max(target, 1.0) / max(yo, 1.0), 1.5)
        y2 = np.clip((y - yo) * scale + target, 0, 255)
        y2 = np.clip(y2 + (target - float(y2[inside].mean())), 0, 255)  # clipping at black lifts the mean back
        out = _to_u8(obj * (y2 * jitter[0] / np.maximum(y, 1.0))[..., None])  # uint8 * float32: float32
    if not cfg.color and jitter[1:] == (0.0, 0.0):
        return out.copy() if out is obj else out
    # L stays as it is: only a and b move (as float, then rounded once).
    L, A, B = cv2.split(cv2.cvtColor(out, cv2.COLOR_RGB2LAB))
    a, b = A.astype(np.float32), B.astype(np.float32)
    if cfg.color:
        ring_lab = cv2.cvtColor(ring_rgb.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
        da = float(ring_lab[:, 1].mean() - a[inside].mean())
        db = float(ring_lab[:, 2].mean() - b[inside].mean())
        shift = 0.5 * math.hypot(da, db)
        f = 0.5 * (min(shift, cfg.max_color_shift) / shift if shift > 0 else 0.0)
        a += f * da
        b += f * db
    a += jitter[1]
    b += jitter[2]
    return cv2.cvtColor(cv2.merge([L, _to_u8(a), _to_u8(b)]), cv2.COLOR_LAB2RGB)


def _to_u8(x: np.ndarray) -> np.ndarray:
    """float32 -> uint8, rounded half to even and clipped to [0, 255] (as np.clip(np.round(x), 0, 255) but
    in one OpenCV pass: negatives are zeroed first, so the absolute value in convertScaleAbs is a no-op)."""
    return cv2.convertScaleAbs(cv2.threshold(x, 0, 0, cv2.THRESH_TOZERO)[1])


def edge_blur_sigma(gray: np.ndarray, region: np.ndarray, reblur: float = 1.0, grad: np.ndarray | None = None
                    ) -> float | None:
    """Blur (Gaussian sigma, px) of the strong edges in `region`: gradient ratio R of the image to a re-blurred
    copy at edge pixels gives sigma = reblur / sqrt(R^2 - 1) (Zhuo & Sim 2011). `grad`: `gradient(gray)`."""
    if not region.any():
        return None
    g = gray.astype(np.float32)
    grad = gradient(g) if grad is None else grad
    gradb = gradient(cv2.GaussianBlur(g, (0, 0), reblur))
    mean, std = cv2.meanStdDev(grad, mask=region.view(np.uint8))
    sel = region & (grad > max(float(mean[0, 0] + 1.3 * std[0, 0]), 12.0))
    if np.count_nonzero(sel) < 15:
        return None
    r = float(np.median(grad[sel] / np.maximum(gradb[sel], 1e-3)))
    return reblur / math.sqrt(r * r - 1) if r > 1.01 else 8.0


def blur_inside(obj: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the object's colours only (normalised by alpha, so the background never bleeds in)."""
    a = alpha.astype(np.float32)
    num = cv2.GaussianBlur(obj.astype(np.float32) * a[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(a, (0, 0), sigma)
    return _to_u8(num / np.maximum(den, 1e-3)[..., None])


def add_noise(obj: np.ndarray, inside: np.ndarray, sigma_ring: float | None, rng: np.random.Generator,
              draw: tuple[tuple[int, int], tuple[slice, slice]] | None = None) -> np.ndarray:
    """Sensor noise where the object has less than its surroundings (luma noise, same in every channel).
    `draw` = (shape, window): the noise is drawn for an image of `shape` and `obj` is its `window` (so a
    window of the image gets exactly the noise the whole image would)."""
    if sigma_ring is None:
        return obj
    sigma_obj = noise_sigma(cv2.cvtColor(obj, cv2.COLOR_RGB2GRAY), inside) or 0.0
    extra = math.sqrt(max(sigma_ring**2 - sigma_obj**2, 0.0))
    if extra < 0.3:
        return obj
    n = rng.normal(0, extra, obj.shape[:2] if draw is None else draw[0]).astype(np.float32)
    if draw is not None:
        n = n[draw[1]]
    return np.clip(obj.astype(np.float32) + n[..., None], 0, 255).astype(np.uint8)


def jpeg_roundtrip(crop: np.ndarray, origin: tuple[int, int], quality: int) -> np.ndarray:
    """`crop` compressed once at `quality` with its 8x8 blocks on the frame's grid (origin in the frame)."""
    ox, oy = origin[0] % 8, origin[1] % 8
    padded = cv2.copyMakeBorder(crop, oy, 0, ox, 0, cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", padded[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return crop
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[oy:, ox:, ::-1]


# libjpeg's standard luminance quantisation table (quality 50), in zigzag-free row order.
_STD_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                      49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], float)


def jpeg_quality(path: str | Path) -> int | None:
    """The IJG quality a JPEG file was saved at, from its luminance quantisation table (None: not a JPEG)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            tables = getattr(im, "quantization", None)
    except OSError:
        return None
    if not tables or 0 not in tables:
        return None
    q = np.asarray(tables[0], float)
    # Pillow lists the table in zigzag order for some versions; the mean ratio is order-independent.
    s = float(np.mean(np.sort(q) / np.sort(_STD_LUMA)) * 100)
    quality = (200 - s) / 2 if s <= 100 else 5000 / s
    return int(np.clip(round(quality), 1, 100))
