"""Deterministic splits that keep the frames of one scene together, and dataset filters."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from roadsynth.datasets.records import Dataset


def filter_dataset(ds: Dataset, image_ids: Iterable[int]) -> Dataset:
    keep = set(image_ids)
    return ds.with_(images=tuple(im for im in ds.images if im.id in keep),
                    annotations=tuple(a for a in ds.annotations if a.image_id in keep))


def split_dataset(ds: Dataset, fractions: dict[str, float], seed: int = 0) -> dict[str, Dataset]:
    """Split by scene (`ImageRecord.scene`): groups are shuffled with `seed`, then each goes to the split
    furthest below its target image count, so sizes track the fractions as closely as groups allow."""
    if not fractions or any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"`fractions` must be non-negative and sum to 1, but got {fractions}")
    groups: dict[str, list[int]] = defaultdict(list)
    for im in sorted(ds.images, key=lambda r: r.id):
        groups[im.scene].append(im.id)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = len(ds.images)
    assigned: dict[str, list[int]] = {name: [] for name in fractions}
    for k in order:
        ids = groups[keys[k]]
        name = max(fractions, key=lambda n: (fractions[n] * total - len(assigned[n]), fractions[n]))
        assigned[name].extend(ids)
    return {name: filter_dataset(ds, ids) for name, ids in assigned.items()}


def count_per_category(ds: Dataset) -> dict[str, int]:
    """Objects per category name (every category listed, zero counts included)."""
    names = {c.id: c.name for c in ds.categories}
    out = {c.name: 0 for c in ds.categories}
    for a in ds.annotations:
        out[names[a.category_id]] += 1
    return out
