"""The `Inserter` and `Restyler` interfaces and their result types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from roadsynth.datasets.records import Annotation, Box, Provenance
from roadsynth.geometry.records import Placement


@dataclass(frozen=True)
class Insertion:
    """An object that was drawn into the frame and passed verification."""

    placement: Placement
    box: Box  # tight box of the visible object pixels, refit after drawing
    mask: np.ndarray = field(repr=False)  # HxW bool, full-frame, visible object pixels
    provenance: Provenance
    scores: dict[str, Any] = field(default_factory=dict)  # verifier measurements


@dataclass(frozen=True)
class Rejection:
    """An object that could not be inserted, with a reason a person can act on."""

    placement: Placement
    reason: str
    scores: dict[str, Any] = field(default_factory=dict)


class Inserter(Protocol):
    def insert(
        self, image: np.ndarray, placements: Sequence[Placement], rng: np.random.Generator
    ) -> tuple[np.ndarray, list[Insertion | Rejection]]:
        """Return the edited HxWx3 uint8 image and one result per placement, in order."""
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
