"""Detectors behind one small protocol; each library lives in its own adapter module, imported on demand.

A new backend is one new module with a class that satisfies `Detector` and has `from_config(cfg)`, plus
one line in `make_detector`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roadsynth.detectors.base import DatasetSplit, Detector, Prediction

if TYPE_CHECKING:
    from roadsynth.config import DetectorConfig

__all__ = ["DatasetSplit", "Detector", "Prediction", "make_detector"]


def make_detector(cfg: "DetectorConfig") -> Detector:
    """The detector named by `cfg.kind`, configured from `cfg` (its library is imported only when used)."""
    if cfg.kind == "yolo":
        from roadsynth.detectors.yolo_ultralytics import YoloDetector

        return YoloDetector.from_config(cfg)
    raise ValueError(f"`detector.kind` must be one of ['yolo'], but got {cfg.kind!r}")
