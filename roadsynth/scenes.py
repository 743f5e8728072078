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
from roadsynth.geometry import ego, regions
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


def ego_mask(src: SceneSource, record: ImageRecord, width: int, height: int) -> ego.EgoMask:
    """The ego vehicle of one frame from its source's `ego` config (none when not configured)."""
    e = src.ego
    if e is None:
        return ego.none(width, height)
    if e.polygon is not None:
        return ego.from_polygon(e.polygon, width, height)
    if e.bottom_frac is not None:
        return ego.bottom_band(e.bottom_frac, width, height)
    root = Path(e.masks).resolve()
    path = (root / record.file_name).with_suffix(".png").resolve()
    if not path.is_relative_to(root):  # a file name with ../ must not pick a file outside the masks folder
        raise ValueError(f"frame {record.file_name!r}: its ego mask would lie outside {root}")
    if not path.is_file():
        return ego.none(width, height, f"no mask file {path.name} in {root}")
    return ego.from_image(path, width, height)


def ground_region(frame: SceneFrame, src: SceneSource, camera: GroundModel, rgb: np.ndarray,
                  ego_vehicle: ego.EgoMask | None = None) -> regions.GroundRegion:
    """Where objects may stand in this frame, never on the ego vehicle. RegionError when the estimate
    fails and the source does not ask for the explicit `lower-image` fallback."""
    off_ego = None if ego_vehicle is None or not ego_vehicle.any else ego_vehicle.mask

    def minus_ego(r: regions.GroundRegion) -> regions.GroundRegion:
        return r if off_ego is None else regions.GroundRegion(r.mask & ~off_ego, r.source)

    lm = frame.record.attributes.get("label_map")
    if lm:
        # Only a label-map source's own index names label maps, inside its declared folder: a data file's
        # `label_map` key is never a path roadsynth opens.
        if src.format != "label_maps" or src.label_maps is None or \
                not Path(lm).resolve().is_relative_to(Path(src.label_maps).resolve()):
            raise ValueError(f"image {frame.record.id} ({frame.record.file_name}) of scene source `{src.name}` "
                             f"names a label map ({lm!r}) outside the source's `label_maps` folder; refused")
        return minus_ego(regions.from_mask(road_mask(read_label_map(Path(lm)), src.road_values), "annotation"))
    if src.camera.ground_polygon:
        return minus_ego(regions.from_polygon(src.camera.ground_polygon, frame.width, frame.height))
    try:
        return regions.estimate(rgb, camera.horizon_row, ego=off_ego)
    except regions.RegionError as e:
        if src.region_failure != "lower-image":
            raise
        return regions.lower_image(frame.width, frame.height, camera.horizon_row, off_ego, reason=str(e))


def place_for_frame(frame: SceneFrame, camera: GroundModel, region: regions.GroundRegion,
                    requests: Sequence[ObjectRequest], rng: np.random.Generator, cfg: PlacementConfig,
                    ego_vehicle: ego.EgoMask | None = None,
                    ) -> tuple[list[Placement], list[tuple[str, str]], regions.GroundRegion | None]:
    priors = priors_from_config(cfg.priors)
    if cfg.mode == "random":
        placed, unplaced = place_random((frame.width, frame.height), frame.boxes, requests, rng, cfg, priors=priors)
        return placed, unplaced, None
    side = regions.roadside(region, camera.horizon_row, cfg.roadside_band_px) if cfg.roadside_prob > 0 else None
    if side is not None and ego_vehicle is not None and ego_vehicle.any:  # the verge band, not the bonnet
        side = regions.GroundRegion(side.mask & ~ego_vehicle.mask, side.source)
    placed, unplaced = place_objects((frame.width, frame.height), camera, region, frame.boxes, requests, rng, cfg,
                                     roadside=side, priors=priors)
    return placed, unplaced, side
