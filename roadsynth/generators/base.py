"""The `Inserter` interface and its result types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from roadsynth.datasets.records import Box, Provenance
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
