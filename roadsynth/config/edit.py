"""Edits that the UI makes to a user's config, written as a new file beside it.

The user's own file is never rewritten: comments and layout are theirs, and a YAML round trip would lose
them. The edit goes into `<name>.ego.yaml` in the same folder (so relative paths keep their meaning),
marked on its first line as roadsynth's; a file of that name without the mark is not overwritten.
Editing the written file again updates it in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from roadsynth.datasets.io import atomic_write_text, read_input, read_yaml

MARK = "# written by roadsynth ui"


def ego_config_path(config_path: Path) -> Path:
    config_path = Path(config_path)
    if config_path.name.endswith(".ego.yaml"):
        return config_path
    return config_path.with_name(f"{config_path.stem}.ego.yaml")


def _ours(path: Path) -> bool:
    return read_input(path, "config file", 1 << 20).startswith(MARK.encode())


def with_ego_polygon(config_path: Path, source: str, polygon: Sequence[tuple[float, float]],
                     frame: str = "") -> Path:
    """A copy of the config at `config_path` whose scene source `source` has `ego: {polygon: ...}` (pixels),
    checked as a config, written atomically to `ego_config_path(config_path)`; returns that path."""
    from roadsynth.config import Config, validate_model

    config_path = Path(config_path)
    raw = read_yaml(config_path, "config file")
    scenes = (raw.get("generate") or {}).get("scenes") if isinstance(raw, dict) else None
    entry = next((s for s in scenes or [] if isinstance(s, dict) and s.get("name") == source), None)
    if entry is None:
        raise ValueError(f"{config_path}: no scene source named {source!r} under `generate.scenes`")
    if len(polygon) < 3:
        raise ValueError(f"an ego polygon needs at least 3 points, but got {len(polygon)}")
    entry["ego"] = {"polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in polygon]}
    entry.pop("ego_in_view", None)  # "no ego vehicle in view" no longer holds
    validate_model(raw, config_path, Config)  # the edited document, checked as the file itself would be
    out = ego_config_path(config_path)
    if out.exists() and not _ours(out):
        raise ValueError(f"{out}: exists and was not written by roadsynth; refusing to overwrite it")
    where = f" on {frame}" if frame else ""
    text = f"{MARK} from {config_path.name}: the ego polygon of scene source `{source}`, drawn{where}\n"
    atomic_write_text(out, text + yaml.safe_dump(raw, sort_keys=False))
    return out
