"""Output folders: roadsynth writes only into folders it owns.

A folder is roadsynth's when it is empty (or new) or holds the marker `.roadsynth.json` that every run
writes first (what kind of output, from which config digest). Anything else is a user's folder: a run
refuses it and names what is in it, unless told `--overwrite`, and even then never deletes a file it
did not write. Re-running over a previous output of the same config resumes it; a different config is
refused, or with `--overwrite` the old outputs roadsynth wrote there are removed first, so no stale
image or chunk of the old run survives into the new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from roadsynth import __version__
from roadsynth.datasets.io import TEMP_PREFIX, atomic_write_json, read_json

MARKER = ".roadsynth.json"
# What each kind of run writes at the top of its folder (removed on --overwrite with another config).
OWNED = {
    "generate": ("images", "chunks", "quarantine", "annotations.json", "manifest.json", "config.yaml",
                 "curated.json", "placements.json", "restyle_config.yaml"),
    "experiment": ("splits", "arms", "runs", "plots", "generated", "generated_random", "real_cutouts",
                   "config.yaml", "generated_config.yaml", "generated_random_config.yaml", "metrics.json",
                   "runs.csv", "report.md", "report.html"),
    "import": ("images", "annotations.json"),
    "place": ("placements.json",),
    "export": ("images", "labels", "annotations.json", "data.yaml"),
    "starter": ("weights.pt", "classes.json", "manifest.json", "config.yaml", "training_curve.csv", "images", "run"),
}


class OutputFolderError(ValueError):
    """An output folder roadsynth must not write into (the message says why and what to do)."""


def read_marker(folder: Path) -> dict | None:
    # A marker is a few dozen bytes; anything big, odd (a FIFO) or broken makes the folder a user's.
    try:
        marker = read_json(Path(folder) / MARKER, "output marker", max_bytes=1 << 20)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def claim(folder: str | Path, kind: str, digest: str | None = None, *, overwrite: bool = False) -> Path:
    """Make `folder` this run's output folder, or refuse. Returns it (created when missing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in folder.iterdir())
    marker = read_marker(folder)
    if entries and marker is None:
        if not overwrite:
            shown = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
            raise OutputFolderError(
                f"{folder}: not empty and not a roadsynth output (it holds {shown}); choose an empty folder, or pass "
                "--overwrite to write into it anyway (roadsynth deletes nothing it did not write)")
        # Writing "anyway" must not replace the user's own files under the names this run writes.
        clash = [n for n in OWNED.get(kind, ()) if (folder / n).exists() or (folder / n).is_symlink()]
        if clash:
            raise OutputFolderError(
                f"{folder}: not a roadsynth output, and it already holds {', '.join(clash)}, which this {kind} run "
                "would replace; --overwrite never replaces a user's files: move them or choose another folder")
    elif marker is not None and (marker.get("kind") != kind or (digest and marker.get("digest") != digest)):
        what = (f"a `{marker.get('kind')}` output" if marker.get("kind") != kind
                else f"the {kind} output of another config (digest {marker.get('digest')}, this one {digest})")
        if not overwrite:
            raise OutputFolderError(f"{folder}: holds {what}; a run resumes only the same config. Choose another "
                                    "folder, or pass --overwrite to replace the outputs roadsynth wrote there")
        remove_owned(folder, marker.get("kind", kind))
    atomic_write_json(folder / MARKER, {"kind": kind, "digest": digest, "roadsynth_version": __version__}, indent=1)
    return folder


def remove_owned(folder: Path, kind: str) -> list[str]:
    """Delete what a `kind` run writes (and roadsynth's temp files) from `folder`; nothing else."""
    removed = []
    for name in OWNED.get(kind, ()):
        p = folder / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        else:
            continue
        removed.append(name)
    for p in folder.glob(f"{TEMP_PREFIX}*.tmp"):
        p.unlink(missing_ok=True)
    return removed
