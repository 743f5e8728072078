"""Run configuration: pydantic models (`extra="forbid"`), loaded from YAML with `safe_load`.

A config file is held to `datasets.io.read_yaml`'s limits (1 MiB, 1,000,000 nodes once aliases are expanded,
100 levels) before anything walks it: `_resolve_paths` visits every expanded node, so a few hundred bytes of
nested aliases would otherwise keep it busy for minutes.

One config per run; the resolved config (defaults filled in, paths absolute) is saved beside the output
as `config.yaml`, so a run folder says exactly what produced it. Sections live in `generate.py` and
`experiment.py`; this module holds the whole run's `Config` and the YAML loading.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from roadsynth.config.base import Section
from roadsynth.config.experiment import (  # noqa: F401  (re-exported: `from roadsynth.config import ...`)
    ARMS,
    DatasetSource,
    DetectorConfig,
    ExperimentConfig,
    RealDataConfig,
    StarterConfig,
)
from roadsynth.config.generate import (  # noqa: F401
    CameraConfig,
    CutoutSource,
    DetectorCheckConfig,
    DetectorWeights,
    DiffusionWeatherConfig,
    EgoConfig,
    GenerateConfig,
    InpaintConfig,
    InsertConfig,
    PseudoLabelConfig,
    SceneSource,
    VehicleRestyleConfig,
    WeatherConfig,
)
from roadsynth.datasets.io import InputFileError, atomic_write_text, read_yaml

M = TypeVar("M", bound=BaseModel)


class OrchestrationConfig(Section):
    """How the Prefect flows run their tasks. `threads` needs nothing; `dask` needs the `dask` extra
    (a LocalCluster, or an existing scheduler at `address`); `ray` needs the `ray` extra."""

    task_runner: Literal["threads", "dask", "ray"] = "threads"
    workers: int = Field(2, ge=1)
    address: str | None = Field(None, description="existing Dask scheduler / Ray cluster address")
    max_in_flight: int = Field(8, ge=1, description="chunks submitted at once (keeps huge runs off the scheduler)")
    gpus_per_task: float = Field(0.0, ge=0, description="Ray: GPU share per generation task (inpaint on GPUs)")


class Config(Section):
    name: str = "roadsynth-run"
    generate: GenerateConfig
    experiment: ExperimentConfig | None = None
    orchestration: OrchestrationConfig = OrchestrationConfig()

    @model_validator(mode="after")
    def _check_doses(self) -> "Config":
        e = self.experiment
        if e is not None and e.doses and max(e.doses) > self.generate.n_images:
            raise ValueError(f"the largest of `experiment.doses` must be at most `generate.n_images` "
                             f"({self.generate.n_images}), but got {max(e.doses)}")
        return self

    def digest(self) -> str:
        """Stable hash of what determines the generated data (the `generate` section): chunk reuse and
        manifests. How it runs (`orchestration`) or what is done with it (`experiment`) is left out, so the
        same data made on threads or on a Dask cluster carries the same digest."""
        data = self.generate.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_PATH_KEYS = {"path", "images_root", "label_maps", "images_dir", "segmenter"}
# Model paths only under the diffusion sections: the detector's `model` is a model name.
_MODEL_PATH_KEYS = {"model", "config", "controlnet", "weights"}
_MODEL_SECTIONS = {"inpaint", "restyle", "diffusion", "detector_check"}
# The detector's `model` is an architecture name (yolo11n.yaml), its `weights` a file.
_SECTION_PATH_KEYS = {"detector": {"weights"}, "experiment": {"reuse_dir", "cutouts_segmenter"}, "ego": {"masks"},
                      "pseudo_labels": {"weights"}, "insert": {"same_objects_as"}}


def _resolve_paths(node: object, base: Path, parent: str = "") -> object:
    """Make every relative path-like string absolute against the config file's folder."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            is_path = (k in _PATH_KEYS or (parent in _MODEL_SECTIONS and k in _MODEL_PATH_KEYS)
                       or k in _SECTION_PATH_KEYS.get(parent, ()))
            if is_path and isinstance(v, str) and v:
                p = Path(v).expanduser()
                out[k] = str(p if p.is_absolute() else (base / p).resolve())
            else:
                out[k] = _resolve_paths(v, base, k)
        return out
    if isinstance(node, list):
        return [_resolve_paths(v, base, parent) for v in node]
    return node


class ConfigError(ValueError):
    pass


def load_model(path: str | Path, model: type[M]) -> M:
    """A YAML file as `model` (safe_load; relative paths resolved against the file's folder)."""
    path = Path(path)
    try:
        raw = read_yaml(path, "config file")
    except (FileNotFoundError, InputFileError) as e:  # missing, not a regular file, not YAML, or past a limit
        raise ConfigError(str(e)) from None
    return validate_model(raw, path, model)


def validate_model(raw: object, path: Path, model: type[M]) -> M:
    """`raw` (a YAML document as read from `path`, or an edit of it) as `model`, relative paths resolved
    against `path`'s folder; ConfigError lists every invalid field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, but got {type(raw).__name__}")
    try:
        return model.model_validate(_resolve_paths(raw, Path(path).parent.resolve()))
    except ValidationError as e:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                 + (f", but got {err['input']!r}" if err["type"] not in ("missing", "extra_forbidden")
                    and not isinstance(err.get("input"), (dict, list)) else "") for err in e.errors()]
        raise ConfigError(f"{path}: invalid config:\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path) -> Config:
    return load_model(path, Config)


def run_config(path: str | Path) -> Config:
    """A run's config, parsed once per process: the CLI, the flows and their tasks in one process share it
    (parsed again only when the file changed: keyed by its resolved path, mtime and size)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError:
        return load_config(path)  # which says what is wrong with it
    return _run_config(str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _run_config(path: str, mtime_ns: int, size: int) -> Config:
    return load_config(path)


def save_config(cfg: BaseModel, path: Path) -> None:
    """The resolved config (defaults filled in, paths absolute) as YAML, written atomically."""
    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
