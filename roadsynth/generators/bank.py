"""A reusable cut-out bank from a labelled dataset: build, score, gate, save (`roadsynth cutouts`).

Masks come from the dataset where it has them (COCO polygons, MSRC segment maps, Weizmann figure-ground)
and from the box by GrabCut otherwise (every other format roadsynth reads). Every cut-out carries its
mask quality score (generators/mask_score.py); with `min_quality` the low scorers are refused, and kept
in the folder marked `kept: false`, so a person can review them. The folder is a `kind: bank` source.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from roadsynth.datasets.io import atomic_write_json, atomic_write_text, read_input
from roadsynth.generators.cutouts import CutoutBank, read_index
from roadsynth.generators.cutout_sources import from_coco_polygons, from_msrc, from_weizmann

MASK_FORMATS = ("coco", "msrc", "weizmann")  # formats whose masks are the dataset's own
DECISIONS = "decisions.csv"  # a person's review of a bank, beside its index (like MSRC's exclude.csv)
MAX_DECISIONS_BYTES = 16 << 20


def build_from_dataset(fmt: str, src: Path, *, images_root: Path | None = None,
                       class_map: Mapping[str, str] | None = None, segmenter: Path | None = None,
                       **reader_options) -> CutoutBank:
    """Cut-outs of `src` in format `fmt`; `class_map` (dataset class -> bank class) picks and renames the
    classes (default: every class, as named). `segmenter`: a box segmenter folder that cuts the masks of a
    box-only format (default GrabCut); mask formats keep their own masks."""
    if fmt == "msrc":
        bank = from_msrc(src, list(class_map) if class_map else ("cow", "sheep", "dog", "horse"))
    elif fmt == "weizmann":
        bank = from_weizmann(src)
    elif fmt == "coco":
        if images_root is None:
            raise ValueError("`images_root` is required for coco cut-outs")
        from roadsynth.datasets.io import read_json

        names = [c["name"] for c in read_json(src, "COCO instances file").get("categories", [])]
        bank = from_coco_polygons(src, images_root, list(class_map) if class_map else names)
    else:
        from roadsynth.config.experiment import DatasetSource
        from roadsynth.datasets.registry import read_dataset
        from roadsynth.generators.cutout_sources import build_bank_from_boxes

        split = read_dataset(DatasetSource(format=fmt, path=src, images_root=images_root, **reader_options))
        mapping = dict(class_map) if class_map else {c.name: c.name for c in split.dataset.categories}
        return build_bank_from_boxes(split.dataset, split.images_root, mapping, segmenter=segmenter)
    if class_map:  # mask formats name their own classes: rename after the fact
        bank = CutoutBank([replace(c, category=class_map.get(c.category, c.category)) for c in bank.cutouts],
                          bank.problems)
    return bank


def save_bank(bank: CutoutBank, out: Path, min_quality: float | None = None) -> dict:
    """Save `bank` into `out` (kept and refused cut-outs, `index.json`) with a `manifest.json` of counts;
    returns the manifest."""
    low = [c for c in bank.cutouts if min_quality is not None and c.quality is not None and c.quality < min_quality]
    low_ids = {id(c) for c in low}
    kept = CutoutBank([c for c in bank.cutouts if id(c) not in low_ids], bank.problems)
    refused = bank.unsure + low
    kept.save(out, refused=refused)
    every = bank.cutouts + bank.unsure
    scores = sorted(c.quality for c in every if c.quality is not None)
    reasons = dict(bank.refused) | ({f"mask quality below {min_quality:g}": len(low)} if low else {})
    manifest = {
        "cutouts": len(every), "kept": len(kept.cutouts), "refused": len(refused),
        "min_quality": min_quality, "refused_per_reason": dict(sorted(reasons.items())),
        "kept_per_class": dict(sorted(Counter(c.category for c in kept.cutouts).items())),
        "refused_per_class": dict(sorted(Counter(c.category for c in refused).items())),
        "mask_methods": dict(sorted(Counter(c.mask_method for c in every).items())),
        "quality_quartiles": [scores[int(q * (len(scores) - 1))] for q in (0.25, 0.5, 0.75)] if scores else None,
        "problems": bank.problems,
    }
    atomic_write_json(out / "manifest.json", manifest, indent=1)
    return manifest


def read_decisions(folder: Path) -> dict[str, str]:
    """Cut-out id -> "accept" | "reject" from a bank's `decisions.csv` (columns id, decision; more columns,
    such as the category and score the review page writes for a person reading it, are ignored). No file:
    nothing reviewed."""
    path = Path(folder) / DECISIONS
    if not path.exists():
        return {}
    text = read_input(path, "bank review decisions", MAX_DECISIONS_BYTES).decode("utf-8", errors="replace")
    rows = list(csv.DictReader(io.StringIO(text)))
    out = {}
    for k, r in enumerate(rows, start=2):
        decision = (r.get("decision") or "").strip().lower()
        if not r.get("id") or decision not in ("accept", "reject"):
            raise ValueError(f"{path} line {k}: expected columns id, decision (accept or reject), "
                             f"but got {dict(r)}")
        out[r["id"]] = decision
    return out


def save_decision(folder: Path, cutout_id: str, decision: str | None) -> Path:
    """Record a person's `decision` ("accept", "reject"; None forgets it) on one cut-out of the bank in
    `folder`, rewriting `decisions.csv` whole (atomically); returns its path."""
    if decision not in ("accept", "reject", None):
        raise ValueError(f"`decision` must be accept, reject or None, but got {decision!r}")
    folder = Path(folder)
    entries = {str(e["id"]): e for e in read_index(folder)}
    if cutout_id not in entries:
        raise ValueError(f"{folder}: no cut-out {cutout_id!r} in its index.json")
    decisions = read_decisions(folder)
    if decision is None:
        decisions.pop(cutout_id, None)
    else:
        decisions[cutout_id] = decision
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "decision", "category", "quality"])
    for cid, d in sorted(decisions.items()):
        e = entries.get(cid, {})
        w.writerow([cid, d, e.get("category", ""), e.get("quality", "")])
    atomic_write_text(folder / DECISIONS, buf.getvalue())
    return folder / DECISIONS


SORTS = ("score, lowest first", "score, highest first", "category")


def on_grey(rgb: np.ndarray, alpha: np.ndarray, size: int = 160, grey: int = 128) -> np.ndarray:
    """A cut-out (`alpha` in [0, 1], or a bool mask) over a neutral grey square of `size` pixels: the
    background it carries shows against it (the review page, the README's gallery)."""
    a = alpha.astype(np.float32)[..., None]
    out = (rgb.astype(np.float32) * a + grey * (1 - a)).astype(np.uint8)
    h, w = out.shape[:2]
    s = size / max(h, w)
    out = cv2.resize(out, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), grey, np.uint8)
    y, x = (size - out.shape[0]) // 2, (size - out.shape[1]) // 2
    canvas[y:y + out.shape[0], x:x + out.shape[1]] = out
    return canvas


class BankReview:
    """A saved bank under review by a person: every cut-out (also the gate's refusals) with its score, its
    gate verdict and the person's decision, which `decide` saves to `decisions.csv` at once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.entries = {str(e["id"]): e for e in read_index(self.folder)}
        self.bank = CutoutBank.load(self.folder, include_refused=True)
        self.decisions = read_decisions(self.folder)

    def __len__(self) -> int:
        return len(self.bank.cutouts)

    def ids(self, sort: str = SORTS[0], category: str | None = None) -> list[str]:
        if sort not in SORTS:
            raise ValueError(f"`sort` must be one of {', '.join(SORTS)}, but got {sort!r}")
        cuts = [c for c in self.bank.cutouts if category in (None, "", "all") or c.category.lower() == category.lower()]
        score = {c.id: -1.0 if c.quality is None else c.quality for c in cuts}
        if sort == "category":
            cuts.sort(key=lambda c: (c.category.lower(), score[c.id]))
        else:
            cuts.sort(key=lambda c: score[c.id], reverse=sort == SORTS[1])
        return [c.id for c in cuts]

    def status(self, cutout_id: str) -> str:
        """`accepted` / `rejected` (a person's), else the gate's `kept` / `refused`."""
        d = self.decisions.get(cutout_id)
        if d is not None:
            return "accepted" if d == "accept" else "rejected"
        return "refused" if self.entries[cutout_id].get("kept") is False else "kept"

    def in_use(self, cutout_id: str) -> bool:
        """Whether a generation from this bank can paste it."""
        return self.status(cutout_id) in ("kept", "accepted")

    def caption(self, cutout_id: str) -> str:
        c = self.bank.get(cutout_id)
        q = "unscored" if c.quality is None else f"{c.quality:.2f}"
        sure = "" if c.certainty is None else f" · sure {c.certainty:.2f}"  # the box segmenter's own
        return f"{c.category} · {q}{sure} · {self.status(cutout_id)} · {cutout_id}"

    def thumbnail(self, cutout_id: str, size: int = 160) -> np.ndarray:
        c = self.bank.get(cutout_id)
        return on_grey(c.rgb, c.alpha, size)

    def decide(self, cutout_id: str, decision: str | None) -> Path:
        path = save_decision(self.folder, cutout_id, decision)
        self.decisions = read_decisions(self.folder)
        return path

    def summary(self) -> str:
        counts = Counter(self.status(i) for i in self.entries if self.bank.get(i) is not None)
        used = sum(self.in_use(i) for i in self.entries if self.bank.get(i) is not None)
        return (f"{len(self)} cut-outs: {counts['kept']} kept and {counts['refused']} refused by the quality gate, "
                f"{counts['accepted']} accepted and {counts['rejected']} rejected by you; {used} go into generations "
                f"(decisions: `{self.folder / DECISIONS}`)")
