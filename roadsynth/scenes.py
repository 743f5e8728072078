"""Per-source and per-frame geometry from the config: ground model, ground region, placements.

The ground model of a source is resolved once (a fit over all its labelled frames is per camera, not
per frame); regions are per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from roadsynth.config import CameraConfig, SceneSource
from roadsynth.datasets.label_maps import read_label_map, road_mask
from roadsynth.datasets.records import Box, Dataset, ImageRecord
from roadsynth.geometry import regions
from roadsynth.geometry.camera import GroundCamera, GroundModel, LinearHorizon
from roadsynth.geometry.fit import FitResult, fit_linear_horizon
from roadsynth.geometry.placement import ObjectRequest, PlacementConfig, place_objects, place_random
from roadsynth.geometry.priors import priors_from_config
from roadsynth.geometry.records import Placement


@dataclass(frozen=True)
class SceneFrame:
    record: ImageRecord
    width: int
    height: int
    boxes: list[tuple[int, Box]]  # existing annotations (id, box)
    labelled: list[tuple[str, Box]] = ()  # (category name, box) for fitting


def ground_model(cam: CameraConfig, width: int, height: int, fit: FitResult | None = None) -> GroundModel:
    """Explicit intrinsics > explicit horizon > fit (if it succeeded) > fallback, scaled to this frame."""
    if cam.fx is not None:
        return GroundCamera(cam.fx, cam.fy, cam.cx, cam.cy, cam.height_m, math.radians(cam.pitch_deg),
                            source="camera-config")
    if cam.horizon_frac is not None:
        return LinearHorizon(cam.horizon_frac * height, cam.height_m, source="camera-config")
    if fit is not None and fit.ok:
        return fit.model
    return LinearHorizon(cam.fallback_horizon_frac * height, cam.height_m, source="fallback")


def fit_source_camera(ds: Dataset, cam: CameraConfig) -> FitResult | None:
    """Fit one ground model over every labelled frame of a source (one camera, one image size)."""
    if not cam.fit or cam.fx is not None or cam.horizon_frac is not None:
        return None
    sizes = {(im.width, im.height) for im in ds.images}
    if len(sizes) != 1:
        return FitResult(None, False, f"frames have {len(sizes)} different sizes; fit needs one camera", 0, 0, None)
    (w, h), = sizes
    names = {c.id: c.name for c in ds.categories}
    boxes = [(names[a.category_id], a.bbox) for a in ds.annotations]
    return fit_linear_horizon(boxes, h, image_width=w)


def ground_region(frame: SceneFrame, src: SceneSource, camera: GroundModel, rgb: np.ndarray) -> regions.GroundRegion:
    lm = frame.record.attributes.get("label_map")
    if lm:
        return regions.from_mask(road_mask(read_label_map(Path(lm)), src.road_values), "annotation")
    if src.camera.ground_polygon:
        return regions.from_polygon(src.camera.ground_polygon, frame.width, frame.height)
    est = regions.estimate(rgb, camera.horizon_row)
    return est if est.area_fraction() > 0.01 else regions.lower_image(frame.width, frame.height, camera.horizon_row)


def place_for_frame(frame: SceneFrame, camera: GroundModel, region: regions.GroundRegion,
                    requests: Sequence[ObjectRequest], rng: np.random.Generator, cfg: PlacementConfig,
                    ) -> tuple[list[Placement], list[tuple[str, str]], regions.GroundRegion | None]:
    priors = priors_from_config(cfg.priors)
    if cfg.mode == "random":
        placed, unplaced = place_random((frame.width, frame.height), frame.boxes, requests, rng, cfg, priors=priors)
        return placed, unplaced, None
    side = regions.roadside(region, camera.horizon_row, cfg.roadside_band_px) if cfg.roadside_prob > 0 else None
    placed, unplaced = place_objects((frame.width, frame.height), camera, region, frame.boxes, requests, rng, cfg,
                                     roadside=side, priors=priors)
    return placed, unplaced, side
