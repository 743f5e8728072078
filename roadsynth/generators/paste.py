"""The weight-free default generator: paste real cut-outs with blending, shadow and occlusion.

All work happens on a crop around each object (never full-frame float images), so a 1600x900 frame
with a few objects costs about as much as decoding and encoding it. Objects are drawn far to near
(by ground-contact row), so a nearer new object covers a farther one. Pixels outside each object's
influence region (its alpha, feather and shadow) are bit-identical to the input.
"""

from __future__ import annotations

from typing import Literal, Sequence

import cv2
import numpy as np
from scipy import fft

from roadsynth.datasets.records import Box, Provenance
from roadsynth.generators.base import Insertion, Occluders, Rejection
from roadsynth.generators.cutouts import Cutout, CutoutBank
from roadsynth.generators.harmonize import (
    MatchConfig,
    add_noise,
    blur_inside,
    edge_blur_sigma,
    jpeg_roundtrip,
    match_tone_color,
    refine_alpha,
)
from roadsynth.generators.occlusion import draw_far_to_near, occluded
from roadsynth.generators.realism import (
    RealismLimits,
    box_window,
    gradient,
    noise_sigma,
    object_scores,
    regions,
    ring_px,
)
from roadsynth.generators.verify import mask_box, verify_object
from roadsynth.geometry.records import Placement


class PasteInserter:
    """Paste real cut-outs. `match` (harmonize.MatchConfig) makes each object take on the scene's tone,
    colour, sharpness, noise and JPEG texture (None: paste as cut, with a little colour jitter);
    `realism_limits` (realism.RealismLimits) rejects objects whose realism scores stay out of bounds after matching."""

    def __init__(self, bank: CutoutBank, *, blend: Literal["feather", "poisson", "none"] = "feather",
                 feather_px: float = 2.0, match: MatchConfig | None = MatchConfig(),
                 realism_limits: RealismLimits | None = None, shadow: bool = True, shadow_strength: float = 0.45,
                 flip: bool = True, color_jitter: float = 0.08, min_visible_px: int = 40):
        from roadsynth.config import InsertConfig
        from roadsynth.config.base import check_limits

        check_limits(InsertConfig, blend=blend, feather_px=feather_px)  # the limits the config declares
        if not 0 <= color_jitter <= 0.5:
            raise ValueError(f"`color_jitter` must be in [0, 0.5], but got {color_jitter}")
        self.bank, self.blend, self.feather_px = bank, blend, feather_px
        self.match, self.limits = match, realism_limits
        self.shadow, self.shadow_strength = shadow, shadow_strength
        self.flip, self.color_jitter, self.min_visible_px = flip, color_jitter, min_visible_px
        self._rgba_cache: dict[str, np.ndarray] = {}

    @classmethod
    def from_config(cls, cfg, bank: CutoutBank) -> "PasteInserter":
        """From an `InsertConfig` (roadsynth.config): its fields of this constructor's parameter names."""
        from roadsynth.config.base import section_kwargs

        return cls(bank, **section_kwargs(cfg, cls))

    def _rgba(self, cut: Cutout) -> np.ndarray:
        # One 4-channel uint8 resize per object instead of two; the bank is small, so cache it.
        rgba = self._rgba_cache.get(cut.id)
        if rgba is None:
            rgba = np.dstack([cut.rgb, np.round(cut.alpha * 255).astype(np.uint8)])
            self._rgba_cache[cut.id] = rgba
        return rgba

    def insert_many(self, images: Sequence[np.ndarray], placements: Sequence[Sequence[Placement]],
                    rngs: Sequence[np.random.Generator], occluders: Sequence[Occluders],
                    jpeg_qualities: Sequence[int | None] | None = None,
                    ) -> list[tuple[np.ndarray, list[Insertion | Rejection]]]:
        qualities = jpeg_qualities or [None] * len(images)
        return [self.insert(im, ps, rng, occluders=occ, jpeg_quality=q)
                for im, ps, rng, occ, q in zip(images, placements, rngs, occluders, qualities)]

    def insert(self, image: np.ndarray, placements: Sequence[Placement], rng: np.random.Generator, *,
               occluders: Occluders | None = None, jpeg_quality: int | None = None,
               ) -> tuple[np.ndarray, list[Insertion | Rejection]]:
        """One frame. `occluders`: annotation id -> full-frame bool mask or box of an existing nearer object;
        `jpeg_quality`: the frame's own, when it was a JPEG (objects get the same compression texture)."""
        out = image.copy()
        results: list[Insertion | Rejection | None] = [None] * len(placements)
        seeds = rng.integers(0, 2**31 - 1, size=len(placements))

        def draw(i: int) -> Insertion | Rejection:
            p = placements[i]
            obj_rng = np.random.default_rng(int(seeds[i]))
            # The cut-out chosen when the object was placed (its shape set the box), else one that fits the box.
            cut = self.bank.get(p.params.get("cutout_id", "")) or self.bank.sample(
                p.category, obj_rng, max_aspect=1.15 * p.box.w / p.box.h)
            if cut is None:
                return Rejection(p, f"no cut-out for category `{p.category}` in the bank")
            return self._paste_one(out, p, cut, obj_rng, int(seeds[i]), occluders or {}, jpeg_quality)

        draw_far_to_near(placements, results, draw, self.min_visible_px)
        return out, results  # type: ignore[return-value]

    def _paste_one(self, out: np.ndarray, p: Placement, cut: Cutout, rng: np.random.Generator, seed: int,
                   occluders: Occluders, jpeg_quality: int | None) -> Insertion | Rejection:
        H, W = out.shape[:2]
        m = self.match
        # Fit inside the placement box, bottom-centred on the contact point: the placement's overlap and
        # occlusion checks were made for that box, so the object must not outgrow it.
        scale = min(p.box.h / cut.rgb.shape[0], p.box.w / cut.rgb.shape[1])
        if m is not None and scale > m.max_upscale:
            return Rejection(p, f"up-scaled {scale:.1f}x > max_upscale {m.max_upscale:g}: the cut-out is too small "
                                "for an object this near (it would look blurrier than the scene)")
        th = int(round(cut.rgb.shape[0] * scale))
        tw = max(int(round(cut.rgb.shape[1] * scale)), 1)
        if th < 4:
            return Rejection(p, f"too small: {th} px tall")
        # Bilinear is alias-free down to half size; only stronger reductions pay for area averaging.
        interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        rgba = cv2.resize(self._rgba(cut), (tw, th), interpolation=interp)
        flipped = bool(self.flip and rng.random() < 0.5)
        if flipped:
            rgba = cv2.flip(rgba, 1)
        rgb, alpha = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), cv2.extractChannel(rgba, 3) * np.float32(1 / 255)
        if m is not None and m.refine_alpha:
            rgb, alpha = refine_alpha(rgb, alpha)
        x0 = int(round(p.contact[0] - tw / 2))
        y0 = int(round(p.contact[1] - th))
        # The crop holds the object, its feather, its shadow and the ring the matching and the audit measure.
        pad = max(int(np.ceil(3 * self.feather_px)) + 2, ring_px(Box(0, 0, tw, th)))
        shadow_h = max(int(th * 0.12), 2)
        cx1, cy1 = max(x0 - pad, 0), max(y0 - pad, 0)
        cx2, cy2 = min(x0 + tw + pad, W), min(y0 + th + pad + shadow_h, H)
        if cx1 >= cx2 or cy1 >= cy2:
            return Rejection(p, "object lies entirely outside the image")
        bg = out[cy1:cy2, cx1:cx2]
        before = bg.copy()
        ch, cw = bg.shape[:2]
        ox, oy = x0 - cx1, y0 - cy1
        sx1, sy1 = max(-ox, 0), max(-oy, 0)
        sx2, sy2 = min(tw, cw - ox), min(th, ch - oy)
        if sx1 >= sx2 or sy1 >= sy2:
            return Rejection(p, "object lies entirely outside the image")
        # uint8 crops and OpenCV kernels only: float copies of the crop cost more than the JPEG floor allows.
        a = np.zeros((ch, cw), np.float32)  # alpha in [0, 1]
        o = np.zeros((ch, cw, 3), np.uint8)
        a[oy + sy1 : oy + sy2, ox + sx1 : ox + sx2] = alpha[sy1:sy2, sx1:sx2]
        o[oy + sy1 : oy + sy2, ox + sx1 : ox + sx2] = rgb[sy1:sy2, sx1:sx2]
        truncated = (sx1, sy1, sx2, sy2) != (0, 0, tw, th)
        local_box = Box(ox, oy, tw, th)
        o = self._match(o, a, before, local_box, rng) if m is not None else self._jitter(o, rng)

        hidden = occluded((ch, cw), (cx1, cy1), occluders) if occluders else None
        if hidden is not None:
            a[hidden] = 0
        support = (a > 0.01).view(np.uint8)
        if self.blend == "feather" and self.feather_px > 0:
            hard = cv2.threshold(a, 0.5, 1.0, cv2.THRESH_BINARY)[1]
            a = cv2.GaussianBlur(cv2.erode(hard, np.ones((2, 2), np.uint8)), (0, 0), self.feather_px / 2)
            a *= support
        elif self.blend == "none":
            a = cv2.threshold(a, 0.5, 1.0, cv2.THRESH_BINARY)[1]
        visible = a > 0.5
        n_visible = cv2.countNonZero(visible.view(np.uint8))
        if n_visible < self.min_visible_px:
            return Rejection(p, f"too small: {n_visible} visible pixels < {self.min_visible_px}")

        comp = before
        if self.shadow:
            comp = self._shadow(before, ox + tw / 2, oy + th, tw, shadow_h)
        if self.blend == "poisson":
            after = self._poisson(comp, o, visible)
        else:
            after = cv2.blendLinear(o, comp, a, 1 - a)
        if m is not None and m.jpeg and jpeg_quality is not None:
            # The scene's own compression texture on the object (and its feather), on the frame's 8x8 grid.
            np.copyto(after, jpeg_roundtrip(after, (cx1, cy1), jpeg_quality), where=(a > 0.01)[..., None])
        if hidden is not None:  # nearer objects and the ego vehicle keep their pixels (no shadow on a bonnet)
            np.copyto(after, before, where=hidden[..., None])
        verdict = verify_object(before, after, visible, local_box, min_pixels=self.min_visible_px,
                               ring_px=pad + shadow_h)  # the shadow may legitimately fall below the box
        if not verdict.ok:
            return Rejection(p, verdict.reason, verdict.scores)
        scores = {**verdict.scores, **object_scores(after, local_box, visible), "upscale": round(scale, 3),
                  "truncated": truncated}
        if self.limits is not None and (why := self.limits.violation(scores)):
            return Rejection(p, why, scores)
        bg[...] = after
        local = mask_box(visible)
        box = Box(local.x + cx1, local.y + cy1, local.w, local.h)
        prov = Provenance(method="paste", source=cut.source, seed=seed, params={
            "cutout_id": cut.id, "mask_method": cut.mask_method, "cutout_quality": cut.quality,
            "blend": self.blend, "scale": round(scale, 4),
            "flip": flipped, "match": m is not None, "shadow": self.shadow, "truncated": truncated,
            **({"cutout_review": cut.review} if cut.review else {}),  # a person's decision on this cut-out
            **({"cutout_certainty": cut.certainty} if cut.certainty is not None else {}),  # the box segmenter's
        })
        return Insertion(p, box, visible, (cx1, cy1, cx2, cy2), prov, scores)

    def _jitter(self, o: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Without matching: a small brightness change only (per-channel gains would shift hues)."""
        g = 1 + rng.uniform(-self.color_jitter, self.color_jitter) if self.color_jitter else 1.0
        return cv2.multiply(o, (g, g, g, 0.0))

    def _match(self, o: np.ndarray, a: np.ndarray, before: np.ndarray, box: Box, rng: np.random.Generator
               ) -> np.ndarray:
        """Tone, colour, sharpness and noise of the object's pixels matched to the ring around its box.

        The object's own pixels are processed in a window around its box, not the whole crop (which also
        holds the ring): every step reads at most a few pixels beyond the silhouette, and the blur its
        kernel's radius, so the window's margins give exactly the pixels the whole crop would (the
        pinned-output test holds), at about half the cost. Pixels of `o` outside the silhouette are
        never shown (alpha 0 there), so they are left as they were. `o` (the caller's scratch crop) is
        matched in place and returned."""
        m = self.match
        inside = a > 0.5
        _, ring = regions(a.shape, box)
        ring &= a < 0.05
        if cv2.countNonZero(inside.view(np.uint8)) < 20 or cv2.countNonZero(ring.view(np.uint8)) < 20:
            return self._jitter(o, rng)
        j = self.color_jitter
        jitter = (1 + rng.uniform(-j, j), rng.uniform(-40 * j, 40 * j) / 4, rng.uniform(-40 * j, 40 * j) / 4)
        win = box_window(box, a.shape, 8)  # 8 px: the re-blurred gradient of the sharpness estimate reads 6
        if m.tone or m.color:
            o[win] = match_tone_color(o[win], inside[win], before[ring], m, jitter)
        gray_bg = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad_bg = gradient(gray_bg) if m.sharpness or m.noise else None
        if m.sharpness:
            s_ring = edge_blur_sigma(gray_bg, ring, grad=grad_bg)
            core = cv2.erode(inside[win].view(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
            s_obj = edge_blur_sigma(cv2.cvtColor(o[win], cv2.COLOR_RGB2GRAY), core)
            if s_ring is not None and s_obj is not None and s_ring > s_obj + 0.2:
                sigma = min(float(np.sqrt(s_ring**2 - s_obj**2)), 4.0)
                # OpenCV's float Gaussian kernel reaches 4 sigma: the window must hold all of it.
                wb = box_window(box, a.shape, int(np.ceil(4 * sigma)) + 2)
                o[wb] = blur_inside(o[wb], a[wb], sigma)
        if m.noise:
            o[win] = add_noise(o[win], inside[win], noise_sigma(gray_bg, ring, grad_bg), rng,
                               draw=(a.shape, win))
        return o

    def _shadow(self, bg: np.ndarray, cx: float, bottom: float, width: int, height: int) -> np.ndarray:
        # A soft contact shadow on the ground under the object: darker at the centre, fading out. Only
        # the ellipse's blurred footprint is touched.
        rx, ry = max(int(width * 0.45), 1), max(height // 2, 1)
        sigma = max(height / 3, 1.0)
        r = int(np.ceil(3 * sigma)) + 1
        h, w = bg.shape[:2]
        cxi, cyi = int(round(cx)), int(round(bottom))
        x1, y1 = max(cxi - rx - r, 0), max(cyi - ry - r, 0)
        x2, y2 = min(cxi + rx + r + 1, w), min(cyi + ry + r + 1, h)
        out = bg.copy()
        if x1 >= x2 or y1 >= y2:
            return out
        # The blurred ellipse is smooth, so it is drawn and blurred at reduced resolution and upsampled.
        f = max(int(sigma // 3), 1)
        s = np.zeros(((y2 - y1 + f - 1) // f, (x2 - x1 + f - 1) // f), np.float32)
        cv2.ellipse(s, ((cxi - x1) // f, (cyi - y1) // f), (max(rx // f, 1), max(ry // f, 1)), 0, 0, 360, 1.0, -1)
        s = cv2.GaussianBlur(s, (0, 0), sigma / f, borderType=cv2.BORDER_CONSTANT)
        if f > 1:
            s = cv2.resize(s, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        patch = out[y1:y2, x1:x2]
        patch[...] = cv2.multiply(patch, cv2.merge([1 - self.shadow_strength * s] * 3), dtype=cv2.CV_8U)
        return out

    def _poisson(self, comp: np.ndarray, o: np.ndarray, visible: np.ndarray) -> np.ndarray:
        out = comp.copy()
        x, y, w, h = cv2.boundingRect(visible.view(np.uint8))
        H, W = visible.shape
        # The solve needs a one-pixel frame of background around the object: objects cut by the image
        # border are pasted hard instead.
        if w == 0 or y < 1 or x < 1 or y + h >= H or x + w >= W:
            out[visible] = o[visible]
            return out
        y1, y2, x1, x2 = y - 1, y + h + 1, x - 1, x + w + 1
        f = poisson_solve(comp[y1:y2, x1:x2], o[y1:y2, x1:x2], visible[y1:y2, x1:x2])
        np.copyto(out[y1:y2, x1:x2], f, where=visible[y1:y2, x1:x2, None])
        return out


def poisson_solve(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seamless cloning (Perez et al. 2003): `src`'s gradients inside `mask`, `dst`'s values around it.

    Solved exactly on the window with one DST-I pair (the window's outer pixels are the Dirichlet
    boundary), as OpenCV's seamlessClone does, but with Perez's guidance per pixel pair (the source
    gradient on every pair that touches the mask): on test shapes this lands ~7x closer to the exact
    irregular-boundary solution than seamlessClone, in about half its time. Returns uint8 HxWx3.
    """
    H, W = mask.shape
    h, w = H - 2, W - 2  # unknowns: the window's interior
    # A DST-I of length n is an FFT of length 2(n + 1): grow the domain (with zero residual, i.e. more
    # of dst's own gradients) to lengths whose FFT is fast. Up to 3x faster on awkward sizes; the extra
    # margin moves the result by a fraction of a grey level.
    n, m = (fft.next_fast_len(2 * (k + 1), real=True) // 2 - 1 for k in (h, w))
    # The guidance differs from dst's own gradient by the gradient of src - dst, and only on pixel pairs
    # touching the mask; so the correction u = f - dst solves Laplace(u) = div(e), u = 0 on the border.
    g = cv2.subtract(src, dst, dtype=cv2.CV_32F)
    inside = mask[..., None]
    ex = np.diff(g, axis=1)
    ex *= inside[:, 1:] | inside[:, :-1]
    ey = np.diff(g, axis=0)
    ey *= inside[1:] | inside[:-1]
    div = np.zeros((n + 2, m + 2, 3), np.float32)
    div[:H, : W - 1] += ex
    div[:H, 1:W] -= ex
    div[: H - 1, :W] += ey
    div[1:H, :W] -= ey
    div[H - 1, :] = 0  # the bottom and right border rows are Dirichlet (u = 0), not unknowns
    div[:, W - 1] = 0
    lam = ((2 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2)[:, None]
           + (2 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1)) - 2)[None, :]).astype(np.float32)
    u = fft.idstn(fft.dstn(div[1 : n + 1, 1 : m + 1], type=1, axes=(0, 1)) / lam[..., None], type=1, axes=(0, 1))
    out = dst.copy()
    out[1:-1, 1:-1] = np.clip(np.round(u[:h, :w] + dst[1:-1, 1:-1]), 0, 255)
    return out
