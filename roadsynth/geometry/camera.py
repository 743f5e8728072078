"""Ground models: where the horizon is, and how tall an object of H metres looks at a given image row.

Flat ground, zero roll. Two models share one small interface (`horizon_row`, `pixel_height`,
`distance_for_row`, `row_for_distance`, `describe`):

- `GroundCamera`: a pinhole camera (fx, fy, cx, cy) mounted `height_m` above the road and pitched down
  by `pitch_rad`. A ground point at forward distance Z projects to row
  y = cy + fy * (h cos t - Z sin t) / (h sin t + Z cos t).
- `LinearHorizon`: what can be recovered from boxes alone (Hoiem et al., "Putting Objects in
  Perspective"): h_px = (y_bottom - y_horizon) * H / cam_height. It is the zero-pitch limit of the
  pinhole model; with a focal length it also gives distances (Z = fy * cam_height / (y - y_horizon)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from roadsynth.datasets.io import read_json


class GroundModel(Protocol):
    source: str

    @property
    def horizon_row(self) -> float: ...

    def pixel_height(self, real_h: float, y_bottom: float) -> float: ...

    def distance_for_row(self, y: float) -> float | None: ...

    def row_for_distance(self, z: float) -> float | None: ...

    def describe(self) -> dict: ...


def _check_positive(name: str, v: float) -> None:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be finite and > 0, but got {v}")


@dataclass(frozen=True)
class GroundCamera:
    fx: float
    fy: float
    cx: float
    cy: float
    height_m: float
    pitch_rad: float = 0.0  # positive = pitched down towards the road
    source: str = "camera-config"

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "height_m"):
            _check_positive(name, getattr(self, name))
        for name in ("cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"`{name}` must be finite, but got {getattr(self, name)}")
        if not -math.radians(30) <= self.pitch_rad <= math.radians(30):
            raise ValueError(f"`pitch_deg` must be in [-30, 30], but got {math.degrees(self.pitch_rad):.1f}")

    @property
    def horizon_row(self) -> float:
        return self.cy - self.fy * math.tan(self.pitch_rad)

    def _row(self, depth_below_camera: float, z: float) -> float | None:
        s, c = math.sin(self.pitch_rad), math.cos(self.pitch_rad)
        zc = depth_below_camera * s + z * c
        if zc <= 1e-6:
            return None  # behind the camera
        return self.cy + self.fy * (depth_below_camera * c - z * s) / zc

    def row_for_distance(self, z: float) -> float | None:
        return self._row(self.height_m, z)

    def distance_for_row(self, y: float) -> float | None:
        t = (y - self.cy) / self.fy
        s, c = math.sin(self.pitch_rad), math.cos(self.pitch_rad)
        denom = t * c + s
        if denom <= 1e-9:
            return None  # at or above the horizon
        return self.height_m * (c - t * s) / denom

    def pixel_height(self, real_h: float, y_bottom: float) -> float:
        z = self.distance_for_row(y_bottom)
        if z is None:
            return 0.0
        top = self._row(self.height_m - real_h, z)
        return 0.0 if top is None else y_bottom - top

    def describe(self) -> dict:
        return {"model": "pinhole", "source": self.source, "horizon_row": round(self.horizon_row, 2),
                "height_m": self.height_m, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "pitch_deg": round(math.degrees(self.pitch_rad), 3)}


@dataclass(frozen=True)
class LinearHorizon:
    y_horizon: float
    cam_height_m: float
    fy: float | None = None
    source: str = "camera-config"

    def __post_init__(self) -> None:
        _check_positive("height_m", self.cam_height_m)
        if not math.isfinite(self.y_horizon):
            raise ValueError(f"`y_horizon` must be finite, but got {self.y_horizon}")
        if self.fy is not None:
            _check_positive("fy", self.fy)

    @property
    def horizon_row(self) -> float:
        return self.y_horizon

    def pixel_height(self, real_h: float, y_bottom: float) -> float:
        return max(y_bottom - self.y_horizon, 0.0) * real_h / self.cam_height_m

    def distance_for_row(self, y: float) -> float | None:
        if self.fy is None or y <= self.y_horizon:
            return None
        return self.fy * self.cam_height_m / (y - self.y_horizon)

    def row_for_distance(self, z: float) -> float | None:
        if self.fy is None or z <= 0:
            return None
        return self.y_horizon + self.fy * self.cam_height_m / z

    def describe(self) -> dict:
        return {"model": "linear-horizon", "source": self.source, "horizon_row": round(self.y_horizon, 2),
                "height_m": round(self.cam_height_m, 4), **({"fy": self.fy} if self.fy else {})}


def read_kitti_calib(path: str | Path) -> dict[str, np.ndarray]:
    out = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, vals = line.split(":", 1)
        try:
            out[key.strip()] = np.array([float(v) for v in vals.split()])
        except ValueError:
            raise ValueError(f"{path}: line `{key}` is not a list of numbers") from None
    if "P2" not in out or out["P2"].size != 12:
        raise ValueError(f"{path}: no 3x4 `P2` matrix")
    return out


def from_kitti_calib(path: str | Path, height_m: float = 1.65) -> GroundCamera:
    """KITTI camera 2. The mounting height is not in calib files (about 1.65 m on the KITTI car)."""
    p2 = read_kitti_calib(path)["P2"].reshape(3, 4)
    return GroundCamera(p2[0, 0], p2[1, 1], p2[0, 2], p2[1, 2], height_m, 0.0, source="kitti-calib")


def from_nuscenes(entry: dict) -> GroundCamera:
    """One camera of the nuScenes calibration JSON: K (3x3) and cam2ego (4x4, ego z up, origin on the ground)."""
    k = np.asarray(entry["K"], float)
    cam2ego = np.asarray(entry["cam2ego"], float)
    forward = cam2ego[:3, 2]  # camera z axis in ego coordinates
    pitch = math.asin(float(np.clip(-forward[2] / np.linalg.norm(forward), -1, 1)))
    return GroundCamera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], float(cam2ego[2, 3]), pitch, source="nuscenes-calib")


def from_intrinsics_json(path: str | Path, height_m: float, pitch_deg: float = 0.0) -> GroundCamera:
    """The Udacity-style `camera_intrinsics_derived.json` (K only): mounting height and pitch must be given."""
    d = read_json(path, "camera intrinsics file")
    try:
        k = np.asarray(d["K"], float)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: no 3x3 `K` matrix in the camera intrinsics file "
                         f"({type(e).__name__}: {e})") from None
    if k.shape != (3, 3):
        raise ValueError(f"{path}: `K` must be a 3x3 matrix, but got shape {k.shape}")
    return GroundCamera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], height_m, math.radians(pitch_deg), source="intrinsics+config")
