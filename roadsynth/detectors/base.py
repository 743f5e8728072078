"""The `Detector` interface: train on COCO splits, predict COCO-style boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from roadsynth.datasets.records import Box, Dataset


@dataclass(frozen=True)
class DatasetSplit:
    dataset: Dataset
    images_root: Path


@dataclass(frozen=True)
class Prediction:
    image_id: int
    category_id: int  # the training dataset's COCO category id
    box: Box  # original image pixels
    score: float


class Detector(Protocol):
    def train(self, train: DatasetSplit, val: DatasetSplit, run_dir: Path, seed: int) -> Path:
        """Train and return the weights file."""
        ...

    def predict(self, weights: Path, images: Sequence[tuple[int, Path]]) -> list[Prediction]:
        ...
