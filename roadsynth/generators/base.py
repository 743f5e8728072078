"""The `Inserter` and `Restyler` interfaces and their result types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from roadsynth.datasets.records import Annotation, Box, Provenance
from roadsynth.geometry.records import Placement


@dataclass(frozen=True)
class Insertion:
    """An object that was drawn into the frame and passed verification."""

    placement: Placement
    box: Box  # tight box of the visible object pixels, refit after drawing
    # Visible object pixels (bool) inside `window` = (x1, y1, x2, y2) of the frame: a crop, because a
    # full-frame mask per object costs more memory traffic than drawing the object (see frame_mask).
    mask: np.ndarray = field(repr=False)
    window: tuple[int, int, int, int]
    provenance: Provenance
    scores: dict[str, Any] = field(default_factory=dict)  # verifier measurements
    # True when `mask` follows the object's outline (a pasted cut-out, or inpainting inside a cut-out
    # silhouette); False for a box or ellipse inpainting region, which is not an instance mask.
    mask_is_silhouette: bool = True

    def frame_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The visible object pixels as an HxW bool mask of a frame of `shape` (H, W[, C])."""
        full = np.zeros(shape[:2], bool)
        x1, y1, x2, y2 = self.window
        full[y1:y2, x1:x2] = self.mask
        return full


@dataclass(frozen=True)
class Rejection:
    """An object that could not be inserted, with a reason a person can act on."""

    placement: Placement
    reason: str
    scores: dict[str, Any] = field(default_factory=dict)


Occluders = Mapping[int, "Box | np.ndarray"]  # annotation id -> box or full-frame bool mask of a nearer object


class Inserter(Protocol):
    def insert_many(self, images: Sequence[np.ndarray], placements: Sequence[Sequence[Placement]],
                    rngs: Sequence[np.random.Generator], occluders: Sequence[Occluders],
                    jpeg_qualities: Sequence[int | None] | None = None,
                    ) -> list[tuple[np.ndarray, list[Insertion | Rejection]]]:
        """The frames of a chunk at once (so a diffusion backend can batch across frames): for each frame,
        the edited HxWx3 uint8 image and one result per placement, in order. Each frame's `rng` alone
        decides its objects, so results do not depend on how frames are grouped into calls.
        `jpeg_qualities`: each frame's own JPEG quality (None when unknown), for texture matching."""
        ...


@dataclass(frozen=True)
class Restyled:
    """A restyled frame: its labels (same boxes unless a change is recorded) and what was done to it.

    `tags` go into the image's COCO record (e.g. `{"condition": "fog", "severity": 2}`) so evaluation can
    slice by them; `edits` has one entry per changed object and `rejected` one per object an edit was
    tried on and refused (the object keeps its original pixels and label).
    """

    image: np.ndarray = field(repr=False)
    annotations: tuple[Annotation, ...]
    tags: dict[str, Any] = field(default_factory=dict)
    edits: tuple[dict[str, Any], ...] = ()
    rejected: tuple[dict[str, Any], ...] = ()
    # HxW bool: where pixels may have changed (object edits); None for whole-frame effects.
    mask: np.ndarray | None = field(default=None, repr=False)


class Restyler(Protocol):
    def restyle(self, image: np.ndarray, annotations: Sequence[Annotation], rng: np.random.Generator) -> Restyled:
        """Return the edited HxWx3 uint8 image and its annotations."""
        ...
