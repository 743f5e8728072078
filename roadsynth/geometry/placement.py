"""Place objects where they could really be: standing on the ground region, sized by the ground model,
not covering existing objects, possibly behind nearer ones, possibly cut by the image border.

Depth order on a flat ground is the bottom row: an existing object whose box reaches lower in the image
stands nearer to the camera. A nearer existing object may hide part of the new one (it is listed in
`occluders` and the visible box is clipped where it covers a whole side); a new object may not cover a
farther existing one beyond `max_cover_existing`, because that would silently falsify its label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from roadsynth.datasets.records import Box
from roadsynth.geometry.camera import GroundModel
from roadsynth.geometry.priors import DEFAULT_PRIORS, SizePrior, prior_for
from roadsynth.geometry.records import Placement
from roadsynth.geometry.regions import GroundRegion

ANIMALS = ("deer", "cow", "horse", "sheep", "dog")


@dataclass(frozen=True)
class ObjectRequest:
    category: str
    aspect: float | None = None  # w/h of the object to draw (e.g. the chosen cut-out); None = from the prior
    params: Mapping[str, object] = field(default_factory=dict)  # carried into Placement.params (e.g. cutout id)


@dataclass(frozen=True)
class PlacementConfig:
    """Where objects may go; also the `generate.placement` section of a run config (validated by pydantic).

    `mode: geometry` stands objects on the ground region at the size the ground model gives; `mode: random`
    is the context-free ablation (Simple Copy-Paste style): a log-uniform pixel height between
    `min_pixel_height` and `random_max_height_frac` of the frame, a uniform position with the box inside
    the frame. Both keep the label-hygiene rules (never cover existing objects beyond
    `max_cover_existing`, new objects never overlap beyond `max_iou_new`).
    """

    __pydantic_config__ = {"extra": "forbid"}  # unknown YAML keys are errors (a plain dict: no pydantic import)

    mode: Literal["geometry", "random"] = "geometry"
    min_distance_m: float = 3.0
    max_distance_m: float = 80.0
    min_pixel_height: float = 12.0
    max_occluded: float = 0.4  # fraction of the new box nearer existing objects may cover
    max_cover_existing: float = 0.0  # fraction of a farther existing box the new object may cover
    max_iou_new: float = 0.0  # between new placements
    allow_truncation: bool = True
    min_visible: float = 0.6  # visible fraction of a truncated box
    roadside_classes: tuple[str, ...] = ANIMALS
    roadside_prob: float = 0.3
    roadside_band_px: int = 25
    tries: int = 200
    random_max_height_frac: float = 0.5
    priors: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # per-class size prior overrides

    def __post_init__(self) -> None:
        if not 0 <= self.min_distance_m < self.max_distance_m:
            raise ValueError(f"distances must satisfy 0 <= min_distance_m < max_distance_m, but got "
                             f"{self.min_distance_m}, {self.max_distance_m}")
        for name in ("max_occluded", "max_cover_existing", "max_iou_new", "min_visible", "roadside_prob"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], but got {v}")
        if not 0 < self.random_max_height_frac <= 1:
            raise ValueError(f"`random_max_height_frac` must be in (0, 1], but got {self.random_max_height_frac}")
        if self.min_pixel_height < 1 or self.tries < 1 or self.roadside_band_px < 0:
            raise ValueError(f"`min_pixel_height` and `tries` must be >= 1 and `roadside_band_px` >= 0, but got "
                             f"{self.min_pixel_height}, {self.tries}, {self.roadside_band_px}")


def _clip_by(visible: Box, occ: Box) -> Box:
    """Shrink `visible` where `occ` covers a whole side of it (otherwise the box is unchanged)."""
    x1, y1, x2, y2 = visible.xyxy()
    covers_width = occ.x <= x1 and occ.x2 >= x2
    covers_height = occ.y <= y1 and occ.y2 >= y2
    if covers_width and occ.y2 >= y2 and occ.y > y1:
        y2 = occ.y
    elif covers_width and occ.y <= y1 and occ.y2 < y2:
        y1 = occ.y2
    elif covers_height and occ.x2 >= x2 and occ.x > x1:
        x2 = occ.x
    elif covers_height and occ.x <= x1 and occ.x2 < x2:
        x1 = occ.x2
    return Box.from_xyxy(x1, y1, x2, y2)


def _feasible_rows(camera: GroundModel, region: GroundRegion, cfg: PlacementConfig) -> np.ndarray:
    rows = np.nonzero(region.mask.any(axis=1))[0]
    rows = rows[rows > camera.horizon_row + 1]
    if rows.size and camera.distance_for_row(float(rows[-1])) is not None:
        d = np.array([camera.distance_for_row(float(r)) or np.inf for r in rows])
        rows = rows[(d >= cfg.min_distance_m) & (d <= cfg.max_distance_m)]
    return rows


def _sample_row(rows: np.ndarray, camera: GroundModel, rng: np.random.Generator) -> int:
    # Uniform in distance when the camera gives distances (far objects are common on real roads and
    # are what detectors miss); uniform over rows otherwise.
    d_near = camera.distance_for_row(float(rows[-1]))
    d_far = camera.distance_for_row(float(rows[0]))
    if d_near is None or d_far is None:
        return int(rows[rng.integers(rows.size)])
    target = camera.row_for_distance(float(rng.uniform(d_near, d_far)))
    return int(rows[np.argmin(np.abs(rows - target))])


def _settle(req: ObjectRequest, p: Placement | None, why: str, tries: int, placed: list[Placement],
            unplaced: list[tuple[str, str]]) -> None:
    """A request's outcome: placed, or unplaced with the last reason its tries ran into."""
    if p is None:
        unplaced.append((req.category, f"{why} (after {tries} tries)"))
    else:
        placed.append(p)


def place_objects(
    image_size: tuple[int, int], camera: GroundModel, region: GroundRegion, existing: Sequence[tuple[int, Box]],
    requests: Sequence[ObjectRequest], rng: np.random.Generator, config: PlacementConfig = PlacementConfig(), *,
    roadside: GroundRegion | None = None, priors: Mapping[str, SizePrior] = DEFAULT_PRIORS,
) -> tuple[list[Placement], list[tuple[str, str]]]:
    """Returns the placements and, for each request that could not be placed, (category, reason)."""
    W, H = image_size
    if region.mask.shape != (H, W):
        raise ValueError(f"region mask is {region.mask.shape[1]}x{region.mask.shape[0]}, image is {W}x{H}")
    rows_main = _feasible_rows(camera, region, config)
    rows_side = _feasible_rows(camera, roadside, config) if roadside is not None else np.array([], int)
    placed: list[Placement] = []
    unplaced: list[tuple[str, str]] = []
    for req in requests:
        try:
            prior = prior_for(priors, req.category)
        except KeyError as e:
            unplaced.append((req.category, str(e.args[0])))
            continue
        use_side = (req.category.lower() in config.roadside_classes and rows_side.size > 0
                    and rng.random() < config.roadside_prob)
        reg, rows = (roadside, rows_side) if use_side else (region, rows_main)
        if rows.size == 0:
            unplaced.append((req.category, f"no ground rows within {config.min_distance_m}-{config.max_distance_m} m "
                                           f"in the {reg.source} region"))
            continue
        p, why = None, "no free ground position"
        for _ in range(config.tries):
            y = _sample_row(rows, camera, rng)
            xs = np.nonzero(reg.mask[y])[0]
            x = float(xs[rng.integers(xs.size)]) + float(rng.random())
            y_c = y + float(rng.random())
            real_h = prior.sample_height(rng)
            h = camera.pixel_height(real_h, y_c)
            if h < config.min_pixel_height:
                why = f"too small: {h:.1f} px < min_pixel_height {config.min_pixel_height}"
                continue
            aspect = req.aspect or prior.sample_aspect(rng)
            box = Box(x - h * aspect / 2, y_c - h, h * aspect, h)
            visible = box.clip(W, H)
            truncated = visible.area < box.area - 1e-6
            if truncated and (not config.allow_truncation or visible.area < config.min_visible * box.area):
                why = "too much of the object outside the image"
                continue
            occluders, covered, ok = [], 0.0, True
            for ann_id, b in existing:
                inter = visible.intersection(b)
                if inter <= 0:
                    continue
                if b.y2 > y_c:  # nearer: may hide part of the new object
                    occluders.append(ann_id)
                    covered += inter
                elif inter > config.max_cover_existing * b.area:
                    ok, why = False, "would cover a farther existing object"
                    break
            if not ok:
                continue
            if covered > config.max_occluded * visible.area:
                why = f"occluded more than {config.max_occluded:.0%} by nearer objects"
                continue
            if any(box.iou(q.box) > config.max_iou_new for q in placed):
                why = "overlaps another new object"
                continue
            for ann_id, b in existing:
                if ann_id in occluders:
                    visible = _clip_by(visible, b)
            p = Placement(
                category=req.category, box=box, contact=(x, y_c), distance_m=camera.distance_for_row(y_c),
                real_height_m=real_h, scale_source=camera.source, region_source=reg.source,
                occluders=tuple(occluders), visible_box=visible, truncated=truncated,
                params={"horizon_row": round(camera.horizon_row, 2), "aspect": round(aspect, 3),
                        "pixel_height": round(h, 2), "roadside": use_side, **dict(req.params)},
            )
            break
        _settle(req, p, why, config.tries, placed, unplaced)
    return placed, unplaced


def place_random(
    image_size: tuple[int, int], existing: Sequence[tuple[int, Box]], requests: Sequence[ObjectRequest],
    rng: np.random.Generator, config: PlacementConfig = PlacementConfig(), *,
    priors: Mapping[str, SizePrior] = DEFAULT_PRIORS,
) -> tuple[list[Placement], list[tuple[str, str]]]:
    """Context-free placement (the ablation of `place_objects`): random size and position, no ground model.

    Existing objects are never covered (beyond `max_cover_existing`) and new ones never overlap (beyond
    `max_iou_new`), so the labels stay true; nothing else constrains where an object goes.
    """
    W, H = image_size
    lo, hi = config.min_pixel_height, config.random_max_height_frac * H
    placed: list[Placement] = []
    unplaced: list[tuple[str, str]] = []
    if hi < lo:
        return [], [(r.category, f"frame too small: {hi:.1f} px < min_pixel_height {lo}") for r in requests]
    for req in requests:
        if req.aspect is None and req.category.lower() not in priors:
            unplaced.append((req.category, f"no aspect: no cut-out and no size prior for `{req.category}`"))
            continue
        aspect = req.aspect or prior_for(priors, req.category).sample_aspect(rng)
        p, why = None, "no free position"
        for _ in range(config.tries):
            h = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            w = h * aspect
            if w >= W:
                why = "too wide for the frame"
                continue
            x, y = float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h))
            box = Box(x, y, w, h)
            if any(box.intersection(b) > config.max_cover_existing * b.area for _, b in existing):
                why = "would cover an existing object"
                continue
            if any(box.iou(q.box) > config.max_iou_new for q in placed):
                why = "overlaps another new object"
                continue
            p = Placement(category=req.category, box=box, contact=box.bottom_center, scale_source="random",
                          region_source="random", visible_box=box,
                          params={"aspect": round(aspect, 3), "pixel_height": round(h, 2), **dict(req.params)})
            break
        _settle(req, p, why, config.tries, placed, unplaced)
    return placed, unplaced
