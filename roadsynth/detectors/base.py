"""The `Detector` interface: train on COCO splits, predict boxes in COCO terms.

Everything crossing this interface speaks the dataset's own COCO category ids and original image
pixels, so a detector library's class indices and letterboxed coordinates never leak out of its adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from roadsynth.datasets.records import Box, DatasetSplit

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Prediction:
    """One detection: what every caller of a detector gets (the experiment's scoring, the pseudo-labeller, the
    detector check, the UI)."""

    image_id: int  # the COCO image id the caller passed in; on in-memory frames, the frame's index
    # The training dataset's COCO category id (not a class index); for weights roadsynth did not train (no
    # classes.json beside them), the class index + 1.
    category_id: int
    box: Box  # x, y, w, h in original image pixels (EXIF orientation applied)
    score: float
    name: str = ""  # the class name the weights carry


class Frames(Protocol):
    """Weights loaded once, predicting on in-memory RGB frames (`Detector.load`)."""

    names: list[str]  # the weights' class names, by class index

    def __call__(self, frames: Sequence[np.ndarray]) -> list[list[Prediction]]:
        """Per frame, its predictions (image_id = the frame's index in `frames`)."""
        ...


class Detector(Protocol):
    def train(self, train: DatasetSplit, val: DatasetSplit, run_dir: Path, seed: int, progress=None) -> Path:
        """Train on `train`, select/early-stop on `val`, write everything under `run_dir`; return the weights file.

        `progress`, when given, has `batch()` (called after every optimiser batch) and `epoch_end(epoch)`."""
        ...

    def predict(self, weights: Path, images: Sequence[tuple[int, Path]]) -> list[Prediction]:
        """Predictions for `(image_id, path)` pairs; every returned `image_id` is one of those given."""
        ...

    def load(self, weights: Path, min_score: float = 0.0) -> Frames:
        """Any weights file of this detector's kind (trained by roadsynth or not) ready for in-memory frames,
        keeping predictions that score at least `min_score`."""
        ...
