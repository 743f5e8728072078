"""Vehicle restyling without weights (repaint inside the silhouette) and what every vehicle restyler shares.

`PaintRestyler` changes a vehicle's paint colour: inside its mask (COCO polygon, else a GrabCut
silhouette in the box, else the box), the chroma of painted body pixels moves to the target colour in
CIELAB while the lightness (shading, reflections, dirt) is kept; tyres, windows and highlights (very dark
or very bright pixels) are left alone. Geometry cannot drift, so boxes stay valid by construction; every
pixel outside the mask is bit-identical. The diffusion restyler (`restyle_diffusers`) changes make and
shape-level appearance and uses the same selection, masks and bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Annotation, Provenance
from roadsynth.generators.base import Restyled
from roadsynth.generators.masks import grabcut_mask


@dataclass(frozen=True)
class Style:
    """A restyle target: a prompt (diffusion) or a paint colour (paint), and the category it becomes (also a
    `restyle.styles` entry of a run config)."""

    __pydantic_config__ = {"extra": "forbid"}  # unknown YAML keys are errors (a plain dict: no pydantic import)

    name: str
    prompt: str = ""
    category: str | None = None  # None keeps the vehicle's category
    color: tuple[int, int, int] | None = None  # RGB paint colour (paint restyler)


def polygon_mask(segmentation: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """Full-frame bool mask of COCO polygons (None for RLE or no segmentation)."""
    if not isinstance(segmentation, list) or not segmentation:
        return None
    m = np.zeros(shape, np.uint8)
    polys = [np.round(np.asarray(p, np.float64).reshape(-1, 2)).astype(np.int32) for p in segmentation if len(p) >= 6]
    if not polys:
        return None
    cv2.fillPoly(m, polys, 1)
    return m.astype(bool)


def vehicle_mask(image: np.ndarray, a: Annotation) -> tuple[np.ndarray, str]:
    """Full-frame bool mask of one vehicle and how it was made: polygon, grabcut or box."""
    H, W = image.shape[:2]
    poly = polygon_mask(a.segmentation, (H, W))
    if poly is not None and poly.any():
        return poly, "polygon"
    m = np.zeros((H, W), bool)
    b = a.bbox.clip(W, H)
    x1, y1 = int(np.floor(b.x)), int(np.floor(b.y))
    sil, how = grabcut_mask(image, b)
    h, w = min(sil.shape[0], H - y1), min(sil.shape[1], W - x1)
    if how == "grabcut" and sil.mean() > 0.25:
        m[y1 : y1 + h, x1 : x1 + w] = _solid(sil[:h, :w])
        return m, "grabcut"
    m[y1 : int(np.ceil(b.y2)), x1 : int(np.ceil(b.x2))] = True
    return m, "box"


def _solid(mask: np.ndarray) -> np.ndarray:
    """A vehicle is one solid body: close small gaps and fill holes GrabCut leaves at windows and lights."""
    m = mask.astype(np.uint8)
    k = max(min(m.shape) // 20, 1) * 2 + 1
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        m = np.zeros_like(m)
        cv2.drawContours(m, [max(contours, key=cv2.contourArea)], -1, 1, -1)
    return m.astype(bool) & (mask.astype(bool) | cv2.erode(m, np.ones((3, 3), np.uint8)).astype(bool))


class VehicleSelection:
    """Which vehicles of a frame a restyler touches, and the style -> category bookkeeping."""

    def __init__(self, styles: Sequence[Style], category_names: Mapping[int, str], categories: Sequence[str],
                 min_box_px: int, max_objects: int):
        if not styles:
            raise ValueError("`styles` must name at least one style")
        if max_objects < 1:
            raise ValueError(f"`max_objects` must be >= 1, but got {max_objects}")
        self.styles, self.names = list(styles), dict(category_names)
        self.ids = {n.lower(): i for i, n in self.names.items()}
        missing = [s.category for s in self.styles if s.category is not None and s.category.lower() not in self.ids]
        if missing:
            raise ValueError(f"style categories {missing} are not in the dataset's categories {sorted(self.names.values())}")
        self.categories = {c.lower() for c in categories}
        self.min_box_px, self.max_objects = min_box_px, max_objects

    def select(self, annotations: Sequence[Annotation]) -> list[Annotation]:
        ok = [a for a in annotations if self.names.get(a.category_id, "").lower() in self.categories
              and min(a.bbox.w, a.bbox.h) >= self.min_box_px and a.provenance is None]
        return sorted(ok, key=lambda a: -a.bbox.area)[: self.max_objects]  # the largest show the style best

    def relabel(self, a: Annotation, style: Style, prov: Provenance) -> Annotation:
        cat = self.ids[style.category.lower()] if style.category else a.category_id
        return Annotation(a.id, a.image_id, cat, a.bbox, a.area, a.iscrowd, a.segmentation, prov,
                          {**dict(a.attributes), "restyled": style.name})


def _lab(rgb: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    px = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_RGB2LAB).reshape(3)


class PaintRestyler:
    """Repaint selected vehicles (weight-free): chroma to the style's colour, lightness kept."""

    def __init__(self, styles: Sequence[Style], category_names: Mapping[int, str], *, categories: Sequence[str] = ("car",),
                 min_box_px: int = 24, max_objects: int = 3, strength: float = 0.85, lightness_shift: float = 0.5):
        if any(s.color is None for s in styles):
            raise ValueError(f"paint styles need a `color`, but {[s.name for s in styles if s.color is None]} have none")
        if relabel := [s.name for s in styles if s.category is not None]:
            # A white car is not an ambulance: a colour change never justifies a new label.
            raise ValueError(f"paint styles keep the vehicle's category, but {relabel} set one (use the diffusion restyler)")
        if not 0 < strength <= 1:
            raise ValueError(f"`strength` must be in (0, 1], but got {strength}")
        if not 0 <= lightness_shift <= 1:
            raise ValueError(f"`lightness_shift` must be in [0, 1], but got {lightness_shift}")
        self.selection = VehicleSelection(styles, category_names, categories, min_box_px, max_objects)
        self.strength, self.lightness_shift = strength, lightness_shift

    def restyle(self, image: np.ndarray, annotations: Sequence[Annotation], rng: np.random.Generator) -> Restyled:
        sel = self.selection
        out = image.copy()
        changed = np.zeros(image.shape[:2], bool)
        by_id, edits, rejected = {a.id: a for a in annotations}, [], []
        for a in sel.select(annotations):
            style = sel.styles[int(rng.integers(len(sel.styles)))]
            mask, how = vehicle_mask(image, a)
            if how == "box":  # a box-shaped coat of paint would recolour the road and sky around the car
                rejected.append({"annotation_id": a.id, "style": style.name,
                                 "reason": "no silhouette (polygon or GrabCut) to paint inside"})
                continue
            ys, xs = np.nonzero(mask)
            y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            m = mask[y1:y2, x1:x2]
            before = out[y1:y2, x1:x2]
            after, painted = self._paint(before, m, style.color)
            if painted < 0.15:
                rejected.append({"annotation_id": a.id, "style": style.name, "reason":
                                 f"too little paint: {painted:.0%} of the mask is body colour (windows, shadow?)"})
                continue
            out[y1:y2, x1:x2] = after
            changed[y1:y2, x1:x2] |= m
            scores = {"painted_frac": round(painted, 3), "mask_pixels": int(m.sum()), "mask_method": how}
            prov = Provenance(method="restyle", source="paint", seed=0, params={
                "style": style.name, "color": list(style.color), "strength": self.strength,
                "original_category": sel.names.get(a.category_id), **scores})
            by_id[a.id] = sel.relabel(a, style, prov)
            edits.append({"annotation_id": a.id, "style": style.name, "category": sel.names.get(by_id[a.id].category_id),
                          **scores})
        tags = {"restyled_vehicles": len(edits)} if edits else {}
        return Restyled(out, tuple(by_id[a.id] for a in annotations), tags, tuple(edits), tuple(rejected), changed)

    def _paint(self, crop: np.ndarray, m: np.ndarray, color: tuple[int, int, int]) -> tuple[np.ndarray, float]:
        lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        L = lab[..., 0]
        # Body paint: neither the near-black of tyres/windows/shadow nor blown-out highlights.
        body = m & (L > 12) & (L < 94)
        frac = float(body.sum() / max(m.sum(), 1))
        w = cv2.GaussianBlur(body.astype(np.float32), (0, 0), 1.5) * m * self.strength
        target = _lab(color)
        ref_L = float(np.median(L[body])) if body.any() else 50.0
        new = lab.copy()
        new[..., 0] = L + w * self.lightness_shift * (target[0] - ref_L)
        new[..., 1] = lab[..., 1] * (1 - w) + target[1] * w
        new[..., 2] = lab[..., 2] * (1 - w) + target[2] * w
        rgb = cv2.cvtColor(new, cv2.COLOR_LAB2RGB)
        after = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
        after[~m] = crop[~m]  # bit-identical outside the mask, whatever the colour round trip did
        return after, frac
