"""Occlusion between objects: nearer existing objects hide parts of new ones, and new objects drawn later
(nearer) hide parts of earlier (farther) ones. `draw_far_to_near` is the drawing skeleton every inserter
shares."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Box
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.verify import mask_box, u8_mask
from roadsynth.geometry.records import Placement


def draw_far_to_near(placements: Sequence[Placement], results: list[Insertion | Rejection | None],
                     draw: Callable[[int], Insertion | Rejection], min_visible_px: int) -> None:
    """The drawing skeleton every inserter shares, in place on `results`.

    Objects are drawn far to near (by ground-contact row), so a nearer one covers a farther one; then
    each farther object's mask and box are trimmed to what the nearer ones left visible (and rejected
    below `min_visible_px`). Indices whose result is already decided (a `Rejection`) are skipped.
    """
    drawn: list[int] = []
    for i in sorted(range(len(placements)), key=lambda k: placements[k].contact[1]):
        if results[i] is not None:
            continue
        results[i] = r = draw(i)
        if isinstance(r, Insertion):
            drawn.append(i)
    trim_occluded(results, drawn, min_visible_px)


def occluded(shape: tuple[int, int], origin: tuple[int, int], occluders: Mapping[int, Box | np.ndarray]) -> np.ndarray:
    """HxW bool over a crop whose top-left is `origin` in the frame: where a nearer existing object (or the
    ego vehicle) is. Nothing an inserter draws (object, shadow) may change these pixels."""
    return hide_occluded(np.ones(shape, bool), origin, occluders) == 0


def hide_occluded(weights: np.ndarray, origin: tuple[int, int], occluders: Mapping[int, Box | np.ndarray]) -> np.ndarray:
    """Zero `weights` (an object's alpha or bool mask, a crop whose top-left is `origin` in the frame)
    wherever a nearer existing object is: a box, or a full-frame bool mask. In place; returned for chaining."""
    x0, y0 = origin
    h, w = weights.shape
    for occ in occluders.values():
        if isinstance(occ, Box):
            x1, y1 = int(np.floor(occ.x)) - x0, int(np.floor(occ.y)) - y0
            x2, y2 = int(np.ceil(occ.x2)) - x0, int(np.ceil(occ.y2)) - y0
            weights[max(y1, 0) : max(min(y2, h), 0), max(x1, 0) : max(min(x2, w), 0)] = 0
        else:
            weights[occ[y0 : y0 + h, x0 : x0 + w]] = 0
    return weights


def trim_occluded(results: list, drawn: Sequence[int], min_visible_px: int) -> None:
    """In place: objects drawn later (nearer) hide parts of earlier (farther) ones.

    `drawn` holds the indices of `results` (Insertions) in drawing order, far to near. Each farther
    object's mask loses the pixels of every nearer object's mask where their windows overlap; its box
    is refit, and it becomes a Rejection when fewer than `min_visible_px` pixels stay visible.
    """
    for k, i in enumerate(drawn):
        r = results[i]
        trimmed = False
        for j in drawn[k + 1 :]:
            near = results[j]
            x1, y1 = max(r.window[0], near.window[0]), max(r.window[1], near.window[1])
            x2, y2 = min(r.window[2], near.window[2]), min(r.window[3], near.window[3])
            if x2 > x1 and y2 > y1:
                (ax, ay), (bx, by) = r.window[:2], near.window[:2]
                r.mask[y1 - ay : y2 - ay, x1 - ax : x2 - ax] &= ~near.mask[y1 - by : y2 - by, x1 - bx : x2 - bx]
                trimmed = True
        if not trimmed:
            continue
        local = mask_box(r.mask)
        if local is None or cv2.countNonZero(u8_mask(r.mask)) < min_visible_px:
            results[i] = Rejection(r.placement, "occluded by a nearer inserted object", r.scores)
        else:
            box = Box(local.x + r.window[0], local.y + r.window[1], local.w, local.h)
            results[i] = Insertion(r.placement, box, r.mask, r.window, r.provenance,
                                   {**r.scores, "occluded_by_new": box != r.box}, r.mask_is_silhouette)
