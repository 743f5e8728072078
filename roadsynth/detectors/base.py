"""The `Detector` interface: train on COCO splits, predict boxes in COCO terms.

Everything crossing this interface speaks the dataset's own COCO category ids and original image
pixels, so a detector library's class indices and letterboxed coordinates never leak out of its adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from roadsynth.datasets.records import Box, DatasetSplit


@dataclass(frozen=True)
class Prediction:
    image_id: int  # the COCO image id the caller passed in
    category_id: int  # the training dataset's COCO category id (not a class index)
    box: Box  # x, y, w, h in original image pixels (EXIF orientation applied)
    score: float


class Detector(Protocol):
    def train(self, train: DatasetSplit, val: DatasetSplit, run_dir: Path, seed: int, progress=None) -> Path:
        """Train on `train`, select/early-stop on `val`, write everything under `run_dir`; return the weights file.

        `progress`, when given, has `batch()` (called after every optimiser batch) and `epoch_end(epoch)`."""
        ...

    def predict(self, weights: Path, images: Sequence[tuple[int, Path]]) -> list[Prediction]:
        """Predictions for `(image_id, path)` pairs; every returned `image_id` is one of those given."""
        ...
