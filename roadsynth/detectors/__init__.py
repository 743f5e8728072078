"""Detectors behind one small protocol; each library lives in its own adapter module, imported on demand
(`from roadsynth.detectors.yolo_ultralytics import YoloDetector`)."""

from roadsynth.detectors.base import DatasetSplit, Detector, Prediction

__all__ = ["DatasetSplit", "Detector", "Prediction"]
