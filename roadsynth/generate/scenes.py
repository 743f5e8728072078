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
from roadsynth.datasets.registry import FORMATS
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


def ground_model(cam: CameraConfig, width: int, height: int, fit: FitResult | None = None,
                 calibration: dict | None = None) -> GroundModel:
    """Explicit intrinsics > the frame's own calibration (a `camera` block from a KITTI, nuScenes or
    Cityscapes import) > explicit horizon > fit (if it succeeded) > fallback, scaled to this frame."""
    if cam.fx is not None:
        return GroundCamera(cam.fx, cam.fy, cam.cx, cam.cy, cam.height_m, math.radians(cam.pitch_deg),
                            source="camera-config")
    if calibration is not None and all(isinstance(calibration.get(k), (int, float))
                                       for k in ("fx", "fy", "cx", "cy", "height_m")):
        c = calibration
        return GroundCamera(float(c["fx"]), float(c["fy"]), float(c["cx"]), float(c["cy"]), float(c["height_m"]),
                            math.radians(float(c.get("pitch_deg", 0.0))), source="calibration")
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


def trusted_label_map(record: ImageRecord, src: SceneSource) -> Path | None:
    """A record's label map, when the source's own reader named one inside a folder the config declares
    (`label_maps`, or a Cityscapes root): a data file's `label_map` key is never a path roadsynth opens."""
    lm = record.attributes.get("label_map")
    if not lm:
        return None
    # The folder the config declares vouches for any format (an imported Cityscapes or BDD100K COCO names the
    # original label maps); a Cityscapes root vouches for its own gtFine.
    own = src.format in FORMATS and FORMATS[src.format].label_maps_in_path
    roots = [Path(r).resolve() for r in (src.label_maps, src.path if own else None) if r]
    path = Path(str(lm)).resolve()
    if not any(path.is_relative_to(r) for r in roots):
        hint = ("declare the folder that holds it as the scene source's `label_maps` to use it" if not src.label_maps
                else f"it is not inside `label_maps` ({src.label_maps})")
        raise ValueError(f"image {record.id} ({record.file_name}) of scene source `{src.name}` names a label map "
                         f"({lm!r}) outside the folders the config declares; refused: {hint}")
    return path


def ego_mask(src: SceneSource, record: ImageRecord, width: int, height: int) -> ego.EgoMask:
    """The ego vehicle of one frame from its source's `ego` config, or from its label map where the dataset
    labels it (Cityscapes' `ego vehicle`); none otherwise."""
    e = src.ego
    if e is None:
        lm = trusted_label_map(record, src) if record.attributes.get("ego_values") else None
        if lm is not None:
            m = np.isin(read_label_map(lm), list(record.attributes["ego_values"]))
            if m.shape == (height, width) and m.any():
                return ego.EgoMask(m, "label-map")
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

    lm = trusted_label_map(frame.record, src)
    if lm is not None:
        values = frame.record.attributes.get("road_values") or src.road_values
        return minus_ego(regions.from_mask(road_mask(read_label_map(lm), list(values)), "annotation"))
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
