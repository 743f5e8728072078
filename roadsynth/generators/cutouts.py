"""A bank of real object cut-outs (tight RGB crop + alpha), saved and loaded as a folder.

`Cutout` is one object cut from a photo, with where it came from and how far its mask can be trusted;
`CutoutBank` holds them by category, gates them by mask quality, and saves/loads a bank folder (one RGBA
PNG per cut-out and `index.json`, with a person's review in `decisions.csv`). The sources they are cut
from (MSRC, Weizmann, COCO polygons, box-only datasets) are read in `cutout_sources.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from roadsynth.datasets.io import atomic_write_bytes, atomic_write_json, inside, read_json


BUILT_REFUSED = "refused when the bank was built"  # `kept: false` in a saved bank's index


@dataclass(frozen=True)
class Cutout:
    id: str
    category: str
    rgb: np.ndarray  # HxWx3 uint8, tight crop around the object
    alpha: np.ndarray  # HxW float32 in [0, 1]
    source: str  # file (+ instance) it was cut from
    mask_method: str  # polygon | mask-image | segment-map | grabcut | ellipse
    # Where it came from, for the `real+sources` control (the photo itself, as a training image): the source
    # image's file, its (width, height), and the object's box in it (x, y, w, h pixels). None: unknown.
    source_path: str | None = None
    source_size: tuple[int, int] | None = None
    source_box: tuple[int, int, int, int] | None = None
    # Every labelled object of the source photo, (category, box), where the source knows them (COCO, box
    # datasets): the photo with its labels as they are, also the objects the bank could not cut out.
    source_labels: tuple[tuple[str, tuple[int, int, int, int]], ...] | None = None
    # How far the mask can be trusted, from the photo alone (generators/mask_score.py); None: not scored.
    quality: float | None = None
    # A person's decision in the bank's review (`decisions.csv`): "accept" keeps it whatever its score,
    # "reject" never reaches a generation; None: not reviewed.
    review: str | None = None
    # The box segmenter's certainty in its mask (box_segmenter.certainty); None: another mask method.
    certainty: float | None = None

    @property
    def aspect(self) -> float:
        return self.rgb.shape[1] / self.rgb.shape[0]


def make_cutout(rgb: np.ndarray, mask: np.ndarray, category: str, source: str, method: str, id_: str,
                source_path: str | Path | None = None, box: Sequence[float] | None = None,
                certainty: float | None = None) -> Cutout | None:
    """A cut-out from a full-frame `mask` on its photo, scored against `box` (x, y, w, h: the labelled box
    a derived mask came from; default the mask's own box)."""
    from roadsynth.generators.mask_score import cutout_quality

    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return Cutout(id_, category, np.ascontiguousarray(rgb[y1:y2, x1:x2]),
                  mask[y1:y2, x1:x2].astype(np.float32), source, method,
                  str(Path(source_path).resolve()) if source_path is not None else None,
                  (int(rgb.shape[1]), int(rgb.shape[0])), (x1, y1, x2 - x1, y2 - y1),
                  quality=cutout_quality(rgb, mask, None if box is None else tuple(box))["score"],
                  certainty=None if certainty is None else round(float(certainty), 4))


class CutoutBank:
    """Cut-outs by category and id. `problems`: source files that could not be used, one line each (a bad image
    in a cut-out folder is skipped and reported; the run goes on). `unsure`: cut-outs their own mask step
    refused (below the box segmenter's certainty floor), counted in `refused` by whoever built the bank: never
    pasted, but a saved bank keeps them for review."""

    def __init__(self, cutouts: Iterable[Cutout] = (), problems: Iterable[str] = (),
                 refused: Mapping[str, int] | None = None, unsure: Iterable[Cutout] = ()):
        self.cutouts = list(cutouts)
        self.problems = list(problems)
        self.refused = dict(refused or {})  # reason -> cut-outs left out by a gate (`gate`)
        self.unsure = list(unsure)
        # Category names match case-insensitively (a config's `Horse` finds the Weizmann `horse` cut-outs), as
        # everywhere else in roadsynth; the first spelling seen is the one reported.
        self._by_cat: dict[str, list[Cutout]] = {}
        self._names: dict[str, str] = {}
        self._by_id = {c.id: c for c in self.cutouts}
        for c in self.cutouts:
            self._by_cat.setdefault(c.category.lower(), []).append(c)
            self._names.setdefault(c.category.lower(), c.category)

    def __len__(self) -> int:
        return len(self.cutouts)

    @property
    def categories(self) -> list[str]:
        return sorted(self._names.values())

    def by_category(self, name: str) -> list[Cutout]:
        return self._by_cat.get(name.lower(), [])

    def get(self, cutout_id: str) -> Cutout | None:
        return self._by_id.get(cutout_id)

    def sample(self, category: str, rng: np.random.Generator, max_aspect: float | None = None,
               exclude: Iterable[str] = ()) -> Cutout | None:
        """A random cut-out of `category`; with `max_aspect` (w/h), preferably one no wider than that; not one
        of `exclude` (ids) while others are left."""
        pool = self.by_category(category)
        exclude = set(exclude)
        if exclude:
            pool = [c for c in pool if c.id not in exclude] or pool
        if max_aspect is not None:
            pool = [c for c in pool if c.aspect <= max_aspect] or pool
        return pool[int(rng.integers(len(pool)))] if pool else None

    def counts(self) -> dict[str, int]:
        return {self._names[k]: len(v) for k, v in sorted(self._by_cat.items())}

    @classmethod
    def concat(cls, banks: Iterable["CutoutBank"]) -> "CutoutBank":
        banks = list(banks)
        refused: dict[str, int] = {}
        for b in banks:
            for k, n in b.refused.items():
                refused[k] = refused.get(k, 0) + n
        return cls((c for b in banks for c in b.cutouts), (p for b in banks for p in b.problems), refused,
                   (c for b in banks for c in b.unsure))

    def gate(self, min_quality: float) -> "CutoutBank":
        """The cut-outs scoring at least `min_quality`; the others are counted in `refused` by reason.
        Unscored cut-outs (banks saved before scores existed) are kept, and so are the ones a person accepted
        in review: the score is a guess from the photo, the person saw the cut-out."""
        kept, refused = [], dict(self.refused)
        for c in self.cutouts:
            if c.quality is not None and c.quality < min_quality and c.review != "accept":
                key = f"mask quality below {min_quality:g}"
                refused[key] = refused.get(key, 0) + 1
            else:
                kept.append(c)
        return CutoutBank(kept, self.problems, refused, self.unsure)

    def save(self, folder: str | Path, refused: Iterable[Cutout] = ()) -> None:
        """One RGBA PNG per cut-out + `index.json` (written last, so a folder with an index is complete).
        `refused` cut-outs (a quality gate's) are saved too, marked `kept: false`, so they can be reviewed;
        `load` leaves them out."""
        folder = Path(folder)
        index = []
        for i, (c, kept) in enumerate([(c, True) for c in self.cutouts] + [(c, False) for c in refused]):
            name = f"{i:05d}.png"
            rgba = np.dstack([c.rgb, np.round(c.alpha * 255).astype(np.uint8)])
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
            atomic_write_bytes(folder / name, buf.tobytes())
            index.append({"file": name, "id": c.id, "category": c.category, "source": c.source,
                          "mask_method": c.mask_method, "source_path": c.source_path,
                          "source_size": list(c.source_size) if c.source_size else None,
                          "source_box": list(c.source_box) if c.source_box else None,
                          "source_labels": [[k, list(b)] for k, b in c.source_labels] if c.source_labels else None,
                          "quality": c.quality, "certainty": c.certainty, "kept": kept})
        atomic_write_json(folder / "index.json", index, indent=1)

    @classmethod
    def load(cls, folder: str | Path, include_refused: bool = False) -> "CutoutBank":
        """A saved bank with its review applied: cut-outs a person rejected (`decisions.csv`) are left out and
        counted in `refused`, ones they accepted are in even where the bank's gate refused them (the others
        the gate refused are counted too). With
        `include_refused`, every cut-out of the index, each with its `review` (for the review page)."""
        from roadsynth.generators.bank import read_decisions

        folder = Path(folder)
        index = read_index(folder)
        decisions = read_decisions(folder)
        out, refused = [], {}
        for e in index:
            review = decisions.get(str(e.get("id")))
            if not include_refused:
                if review == "reject":
                    refused["rejected in review"] = refused.get("rejected in review", 0) + 1
                    continue
                if e.get("kept") is False and review != "accept":
                    # The reason is in the bank's manifest.json; a run from the bank counts them too.
                    refused[BUILT_REFUSED] = refused.get(BUILT_REFUSED, 0) + 1
                    continue
            with Image.open(inside(folder, e["file"], f"{folder / 'index.json'} entry {e.get('id')!r}")) as im:
                rgba = np.asarray(im.convert("RGBA"))
            size, box, labels = e.get("source_size"), e.get("source_box"), e.get("source_labels")
            out.append(Cutout(e["id"], e["category"], np.ascontiguousarray(rgba[..., :3]),
                              rgba[..., 3].astype(np.float32) / 255.0, e["source"], e["mask_method"],
                              e.get("source_path"), tuple(size) if size else None, tuple(box) if box else None,
                              tuple((k, tuple(b)) for k, b in labels) if labels else None, e.get("quality"),
                              review, e.get("certainty")))
        return cls(out, refused=refused)


def read_index(folder: Path) -> list[dict]:
    """A saved bank's `index.json`: one entry per cut-out (file, id, category, quality, kept, ...)."""
    try:
        index = read_json(folder / "index.json", "cut-out bank index")
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: not a cut-out bank (no index.json)") from None
    if not isinstance(index, list) or not all(isinstance(e, dict) for e in index):
        raise ValueError(f"{folder / 'index.json'}: expected a list of cut-out entries, but got {type(index).__name__}")
    return index
