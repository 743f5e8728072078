"""Leakage checks: a test image must never reach training, not as a copy, a near-copy, a generated
frame's background or a cut-out's source.

Near-duplicates are found with a perceptual hash (pHash, 64 bits): re-encodes, resizes and small crops
stay within a few bits, different photos are ~32 bits apart. The threshold (<= 6 bits) was chosen on the
bundled data, where the closest pair of genuinely different images is far above it.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from roadsynth.datasets.records import Dataset

NEAR_DUPLICATE_BITS = 6


@dataclass(frozen=True)
class Leak:
    kind: str  # duplicate | near-duplicate | background | cutout-source
    test_file: str
    train_file: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: test {self.test_file} ~ train {self.train_file}" + (f" ({self.detail})" if self.detail else "")


def phash(path: Path) -> int:
    import imagehash

    with Image.open(path) as im:
        return int(str(imagehash.phash(im.convert("RGB"))), 16)


def _hashes(paths: list[Path]) -> np.ndarray:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return np.array(list(pool.map(phash, paths)), dtype=np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    count = np.zeros(x.shape, np.int64)
    for _ in range(64):
        count += (x & np.uint64(1)).astype(np.int64)
        x >>= np.uint64(1)
    return count


def near_duplicates(test: list[Path], train: list[Path], max_bits: int = NEAR_DUPLICATE_BITS) -> list[Leak]:
    if not test or not train:
        return []
    ht, hr = _hashes(test), _hashes(train)
    leaks = []
    for i, h in enumerate(ht):
        dist = _popcount(hr ^ h)
        for j in np.nonzero(dist <= max_bits)[0]:
            kind = "duplicate" if dist[j] == 0 else "near-duplicate"
            leaks.append(Leak(kind, str(test[i]), str(train[j]), f"pHash distance {int(dist[j])} bits"))
    return leaks


def provenance_leaks(test_paths: Iterable[Path], generated: Dataset) -> list[Leak]:
    """Generated frames whose background is a test image (by resolved path), and objects whose cut-out was
    cut from one (cut-out sources record the file name only, so by name)."""
    test_paths = [Path(p).resolve() for p in test_paths]
    test_set, test_names = {str(p) for p in test_paths}, {p.name for p in test_paths}
    leaks = []
    for im in generated.images:
        bg = im.attributes.get("background_path")
        if bg and str(Path(bg).resolve()) in test_set:
            leaks.append(Leak("background", bg, im.file_name))
    for a in generated.annotations:
        if a.provenance is None:
            continue
        m = re.match(r"^[a-z]+:(.+?)(#.*)?$", a.provenance.source)
        if m and Path(m.group(1)).name in test_names:
            leaks.append(Leak("cutout-source", Path(m.group(1)).name, f"annotation {a.id}", a.provenance.source))
    return leaks


def manifest_leaks(test_paths: list[Path], manifest: dict, max_bits: int = NEAR_DUPLICATE_BITS) -> list[Leak]:
    """Test images a starter detector trained on, from its manifest (detectors/starter.py): the same bytes
    (SHA-256) or a near-duplicate picture (pHash), without needing the starter's images on disk."""
    import hashlib

    seen = manifest.get("images", [])
    by_sha = {m["sha256"]: m["file"] for m in seen if "sha256" in m}
    hashes = np.array([int(m["phash"], 16) for m in seen if "phash" in m], dtype=np.uint64)
    files = [m["file"] for m in seen if "phash" in m]
    leaks = []
    test_hashes = _hashes(test_paths) if len(hashes) else np.zeros(len(test_paths), np.uint64)
    for path, h in zip(test_paths, test_hashes):
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if sha in by_sha:
            leaks.append(Leak("starter-duplicate", str(path), by_sha[sha], "same bytes"))
            continue
        if len(hashes):
            dist = _popcount(hashes ^ h)
            j = int(np.argmin(dist))
            if dist[j] <= max_bits:
                leaks.append(Leak("starter-near-duplicate", str(path), files[j], f"pHash distance {int(dist[j])} bits"))
    return leaks
