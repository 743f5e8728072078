"""Glue between a scene source's config and the geometry package: camera model, ground region, placements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roadsynth.config import CameraConfig, PlacementSettings, SceneSource
from roadsynth.datasets.label_maps import read_label_map, road_mask
from roadsynth.datasets.records import Box, ImageRecord
from roadsynth.geometry.records import Placement

# Real-world heights (metres) used by the thin placement; the geometry package owns the full priors.
HEIGHT_M = {"ambulance": (2.5, 3.0), "fire truck": (3.0, 3.6), "police car": (1.4, 1.6), "deer": (0.9, 1.2),
            "cow": (1.3, 1.5), "horse": (1.5, 1.7), "sheep": (0.7, 0.9), "dog": (0.4, 0.7)}
ASPECT_WH = {"ambulance": 1.6, "fire truck": 2.2, "police car": 1.8, "deer": 1.2, "cow": 1.5, "horse": 1.3,
             "sheep": 1.3, "dog": 1.3}


@dataclass(frozen=True)
class SceneFrame:
    record: ImageRecord
    width: int
    height: int
    boxes: list[tuple[int, Box]]  # existing annotations (id, box)


@dataclass(frozen=True)
class LinearHorizon:
    """h_px = (y_bottom - y_horizon) * H / cam_height (flat ground, zero roll)."""

    y_horizon: float
    cam_height_m: float
    source: str

    def pixel_height(self, real_h: float, y_bottom: float) -> float:
        return (y_bottom - self.y_horizon) * real_h / self.cam_height_m

    def describe(self) -> dict:
        return {"model": "linear-horizon", "horizon_row": self.y_horizon, "height_m": self.cam_height_m,
                "source": self.source}


def ground_model(cam: CameraConfig, width: int, height: int) -> LinearHorizon:
    if cam.horizon_frac is not None:
        return LinearHorizon(cam.horizon_frac * height, cam.height_m, "camera-config")
    if cam.fy is not None and cam.cy is not None:
        y_h = cam.cy - cam.fy * np.tan(np.radians(cam.pitch_deg))
        return LinearHorizon(float(y_h), cam.height_m, "camera-config")
    raise ValueError("camera config needs `horizon_frac` or intrinsics (`fy`, `cy`)")


def ground_region(frame: SceneFrame, src: SceneSource, settings: PlacementSettings) -> tuple[np.ndarray | None, str]:
    """Drivable mask for the frame (from its label map) or None when the frame has none."""
    lm = frame.record.attributes.get("label_map")
    if lm:
        return road_mask(read_label_map(Path(lm)), src.road_values), "label-map"
    return None, "lower-image"


def place_for_frame(frame: SceneFrame, camera: LinearHorizon, region: tuple[np.ndarray | None, str],
                    requests: list[str], rng: np.random.Generator, settings: PlacementSettings,
                    ) -> tuple[list[Placement], list[tuple[str, str]]]:
    """Thin placement: contact point on the drivable ground below the horizon, size from the linear model."""
    mask, region_source = region
    lo, hi = settings.ground_band
    y_min = camera.y_horizon + lo * (frame.height - camera.y_horizon)
    y_max = hi * frame.height
    placed: list[Placement] = []
    unplaced: list[tuple[str, str]] = []
    for cat in requests:
        if cat not in HEIGHT_M:
            unplaced.append((cat, f"no size prior for category `{cat}`"))
            continue
        for _ in range(settings.tries):
            x = float(rng.uniform(0, frame.width))
            y = float(rng.uniform(y_min, y_max))
            if mask is not None and not mask[min(int(y), frame.height - 1), min(int(x), frame.width - 1)]:
                continue
            real_h = float(rng.uniform(*HEIGHT_M[cat]))
            h = camera.pixel_height(real_h, y)
            if h < settings.min_pixel_height:
                continue
            w = h * ASPECT_WH[cat]
            box = Box(x - w / 2, y - h, w, h)
            if box.x < 0 or box.x2 > frame.width or box.y < 0:
                continue
            if any(box.iou(b) > settings.max_iou_existing or box.intersection(b) > 0.0 for _, b in frame.boxes):
                continue
            if any(box.iou(p.box) > settings.max_iou_new or box.intersection(p.box) > 0.0 for p in placed):
                continue
            placed.append(Placement(
                category=cat, box=box, contact=(x, y), real_height_m=real_h, scale_source=camera.source,
                region_source=region_source, visible_box=box,
                params={"horizon_row": camera.y_horizon, "cam_height_m": camera.cam_height_m},
            ))
            break
        else:
            unplaced.append((cat, f"no free ground position found in {settings.tries} tries"))
    return placed, unplaced
