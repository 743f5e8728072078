"""Finished trainings, kept by content, so a later experiment reuses an arm x seed it would only repeat.

A training is determined by its train and val data (every record, in order, and every image's bytes),
the detector config (with the epochs the compute plan chose), the starting weights' bytes, the seed, the
library versions and roadsynth's own training code (the source of the modules between a split and its
weights: a change there, such as moving trainings into child processes, changes the weights without
changing the version number). The SHA-256 of all that is the key; the cache folder `<root>/<key>/` holds the
weights, their class mapping and what went into the key. Changing only the generation config therefore
retrains only the arms that contain generated data.

Entries are written to a temp folder and renamed into place, so a crash never leaves half an entry; a
folder without its `entry.json` is not an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from roadsynth import __version__
from roadsynth.datasets.io import TEMP_PREFIX, atomic_write_json, read_json_record
from roadsynth.datasets.records import DatasetSplit

DEFAULT_ROOT = Path.home() / ".cache" / "roadsynth" / "trained"
ENTRY = "entry.json"
# The modules between a split and its weights: the child process that trains, the detector adapter, the
# YOLO export and the records and files it writes. Everything else a training depends on is in the key
# itself (the detector section, seed, threads, the splits' records and image bytes); the experiment's
# planning and report code is not, so editing them keeps every cached training.
TRAINING_CODE = ("detectors/child.py", "detectors/yolo_ultralytics.py", "datasets/yolo.py", "datasets/records.py",
                 "datasets/io.py")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_fingerprint(sp: DatasetSplit) -> str:
    """SHA-256 of a split's records in order (ids, sizes, boxes, classes) and of its image bytes."""
    h = hashlib.sha256()
    h.update(json.dumps([[c.id, c.name] for c in sp.dataset.categories]).encode())
    by_image = sp.dataset.annotations_by_image()
    for im in sp.dataset.images:
        anns = [[a.category_id, [round(v, 2) for v in a.bbox.xywh()], a.iscrowd] for a in by_image.get(im.id, [])]
        h.update(json.dumps([im.id, im.width, im.height, anns]).encode())
        h.update(file_sha256(Path(sp.images_root) / im.file_name).encode())
    return h.hexdigest()


def training_key(detector: dict[str, Any], train: DatasetSplit, val: DatasetSplit, seed: int) -> tuple[str, dict]:
    """(key, the description it hashes) for a training of `detector` (a config dump) on these splits."""
    weights = detector.get("weights")
    desc = {
        "detector": {k: v for k, v in detector.items() if k != "weights"},
        "weights_sha256": file_sha256(Path(weights)) if weights else None,
        "train": split_fingerprint(train),
        "val": split_fingerprint(val),
        "seed": seed,
        "versions": {"roadsynth": __version__, **{d: library_version(d) for d in ("ultralytics", "torch")}},
        "training_code_sha256": training_code_sha256(),
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32], desc


def training_code_sha256() -> str:
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + (package / name).read_bytes())
    return h.hexdigest()


class TrainedCache:
    """Weights of finished trainings under `root/<key>/` (weights.pt, classes.json, entry.json)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry (with `weights`, an absolute path) or None when this training was never finished."""
        folder = self.root / key
        entry = read_json_record(folder / ENTRY, "training cache entry")
        weights = folder / "weights.pt"
        if entry is None or not weights.is_file() or file_sha256(weights) != entry.get("weights_sha256"):
            return None  # damaged or tampered with: retrain rather than trust it
        return {**entry, "weights": str(weights)}

    def put(self, key: str, weights: Path, desc: dict, extra: dict[str, Any]) -> None:
        """Store a finished training; its classes.json must sit beside `weights`."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{key}.", dir=self.root))
        try:
            shutil.copyfile(weights, tmp / "weights.pt")
            shutil.copyfile(Path(weights).with_name("classes.json"), tmp / "classes.json")
            atomic_write_json(tmp / ENTRY, {"key": key, "weights_sha256": file_sha256(tmp / "weights.pt"),
                                            "description": desc, **extra}, indent=1)
            try:
                os.replace(tmp, self.root / key)
            except OSError:  # another process stored the same training first: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def link_or_copy(src: Path, dst: Path) -> None:
    """`dst` with `src`'s bytes: a hard link where the filesystem allows, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def library_version(dist: str) -> str | None:
    """An installed distribution's version (None when it is not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
