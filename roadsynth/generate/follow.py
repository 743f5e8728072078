"""Insert the same objects as another generated dataset, frame by frame (`insert.same_objects_as`).

The placement ablation compares two arms that may differ only in where objects go. Run independently, they
do not insert the same number: geometry-placed objects far down the road are small and more of them fail
verification than randomly placed ones. So the ablation arm reads the objects the other arm inserted in each
frame (category and cut-out), places exactly those with its own placement mode, and re-places and re-inserts
any that were not placed or were rejected, a few rounds, until each frame holds as many as the original.
Frames are matched by output index and checked by seed: both runs must plan the same frames.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping

from roadsynth.datasets.coco import read_coco
from roadsynth.generators.base import Insertion
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.geometry.placement import ObjectRequest, Placement
from roadsynth.generate.scenes import SceneFrame

INSERTED_BY = ("paste", "inpaint")  # provenance methods of inserted objects (not restyles, not pseudo-labels)
FILL_ROUNDS = 5

Followed = Mapping[int, tuple[int | None, list[tuple[str, str | None]]]]


def load_followed(path: Path) -> dict[int, tuple[int | None, list[tuple[str, str | None]]]]:
    """Output image id -> (frame seed, [(category, cut-out id)] of its inserted objects) of a generated dataset."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: `same_objects_as` names no generated annotations.json (generate that "
                                "dataset first)")
    ds = read_coco(path)
    names = {c.id: c.name for c in ds.categories}
    out = {}
    for im in ds.images:
        objs = [(names[a.category_id], a.provenance.params.get("cutout_id")) for a in ds.annotations_of(im.id)
                if a.provenance is not None and a.provenance.method in INSERTED_BY]
        out[im.id] = (im.attributes.get("seed"), objs)
    return out


def followed_requests(followed: Followed, index: int, seed: int, bank: CutoutBank) -> list[ObjectRequest]:
    """The requests of output frame `index`: the followed dataset's objects there, with their cut-outs' shapes."""
    entry = followed.get(index + 1)
    if entry is None:  # the followed run made no image here (the frame failed there too, or was not planned)
        return []
    their_seed, objs = entry
    if their_seed is not None and their_seed != seed:
        raise ValueError(f"output image {index + 1}: the followed dataset made it with seed {their_seed}, this run "
                         f"with {seed}; `same_objects_as` needs the same scenes, seed and n_images")
    out = []
    for category, cutout_id in objs:
        cut = bank.get(cutout_id) if cutout_id else None
        out.append(ObjectRequest(category, cut.aspect if cut else None, {"cutout_id": cut.id} if cut else {}))
    return out


def fill_in(requests: list[ObjectRequest], results: list, place: Callable[[list[ObjectRequest], list], tuple],
            insert: Callable[[list[Placement], list], list], rounds: int = FILL_ROUNDS) -> tuple[list, list]:
    """Re-place and re-insert the requests that `results` did not insert, up to `rounds` times.

    `place(pending, inserted)` -> (placements, unplaced) places requests around the objects inserted so far;
    `insert(placements, inserted)` -> results draws them on the frame (behind the nearer of `inserted`).
    Returns all results (first attempts' rejections included, so the log keeps them) and what stayed
    unplaced after the last round."""
    results = list(results)
    pending = _pending(requests, results)
    unplaced: list[tuple[str, str]] = []
    for _ in range(rounds):
        if not pending:
            break
        inserted = [r for r in results if isinstance(r, Insertion)]
        placed, unplaced = place(pending, inserted)
        if placed:
            results += insert(placed, inserted)
        pending = _pending(requests, results)  # against all requests: a match is one to one
    return results, unplaced if pending else []


def _pending(requests: list[ObjectRequest], results: list) -> list[ObjectRequest]:
    """The requests no insertion in `results` answers (matched by cut-out id and category, one to one)."""
    done = [(r.placement.params.get("cutout_id"), r.placement.category) for r in results if isinstance(r, Insertion)]
    out = []
    for req in requests:
        key = (req.params.get("cutout_id"), req.category)
        if key in done:
            done.remove(key)
        else:
            out.append(req)
    return out


def with_boxes(frame: SceneFrame, inserted: list) -> SceneFrame:
    """A SceneFrame whose existing boxes include the objects inserted so far, so placement keeps new ones off
    them and lists the nearer ones as occluders. Their ids follow the source's own (never the ego key)."""
    first = max((i for i, _ in frame.boxes), default=0) + 1
    return replace(frame, boxes=list(frame.boxes) + [(first + k, r.box) for k, r in enumerate(inserted)])
