"""Resumable output: one file per finished chunk, written atomically and last, and only roadsynth's own
temp files swept after a crash."""

from __future__ import annotations

from pathlib import Path

from roadsynth import __version__
from roadsynth.datasets.io import TEMP_PREFIX, read_json_record

CHUNK_FORMAT = 2  # chunk files hold COCO image and annotation records (datasets.coco's own dict form)


def chunk_path(out_dir: Path, chunk_index: int) -> Path:
    return Path(out_dir) / "chunks" / f"{chunk_index:05d}.json"


def chunk_done(out_dir: Path, chunk_index: int, digest: str) -> bool:
    """A chunk file is written last and atomically; it counts only if the same config and the same
    roadsynth version produced it (new code may draw different pixels from the same config)."""
    payload = read_json_record(chunk_path(out_dir, chunk_index), "chunk record")
    return (payload is not None and payload.get("config_digest") == digest
            and payload.get("roadsynth_version") == __version__ and payload.get("format") == CHUNK_FORMAT)


def sweep_temp_files(out_dir: Path) -> int:
    """Remove roadsynth's own atomic-write temp files (`.roadsynth-<name>.<random>.tmp`) a killed run left.

    A SIGKILL can land mid-write, where no cleanup runs; the final files were never replaced, so the
    resumed run rewrites them. Only for a folder no other run is writing to; a user's own `.*.tmp` files
    are never touched.
    """
    out_dir = Path(out_dir)
    pattern = f"{TEMP_PREFIX}*.tmp"
    stale = [p for sub in ("images", "chunks", "quarantine") for p in (out_dir / sub).glob(pattern)]
    stale += list(out_dir.glob(pattern))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
