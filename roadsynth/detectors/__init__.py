"""Detectors behind one small protocol; each library lives in its own adapter module, imported on demand.

A new backend is one new module with a class that satisfies `Detector` and has `from_config(cfg)`, plus
one line in `make_detector`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roadsynth.detectors.base import DatasetSplit, Detector, Frames, Prediction

if TYPE_CHECKING:
    from roadsynth.config import DetectorConfig, DetectorWeights

__all__ = ["DatasetSplit", "Detector", "Frames", "Prediction", "make_detector"]


def make_detector(cfg: "DetectorConfig | DetectorWeights") -> Detector:
    """The detector named by `cfg.kind`, configured from `cfg` (its library is imported only when used): an
    experiment's `detector` section to train, or a detector you have (`pseudo_labels`, `detector_check`) to
    `load` its weights and predict on frames."""
    if cfg.kind == "yolo":
        from roadsynth.detectors.yolo_ultralytics import YoloDetector

        return YoloDetector.from_config(cfg)
    raise ValueError(f"`detector.kind` must be one of ['yolo'], but got {cfg.kind!r}")
