"""Run configuration: pydantic models (`extra="forbid"`), loaded from YAML with `safe_load`.

One config per run; the resolved config (defaults filled in, paths absolute) is saved beside the output
as `config.yaml`, so a run folder says exactly what produced it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from roadsynth.datasets.io import atomic_write_text
from roadsynth.geometry.placement import PlacementConfig
from roadsynth.generators.weather import CONDITIONS as WEATHER_CONDITIONS  # albumentations loads lazily there


M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Model):
    """How the ground model of a scene source is obtained (the chosen source is recorded on every placement).

    In order: explicit intrinsics (`fx`, `fy`, `cx`, `cy`) + `height_m` + `pitch_deg` -> pinhole model;
    else `horizon_frac` + `height_m` -> linear horizon model; else, with `fit: true`, a robust fit over the
    source's labelled objects of known height; else the fallback (`fallback_horizon_frac`, `height_m`).
    """

    height_m: float = Field(1.4, description="camera mounting height above the road, metres")
    horizon_frac: float | None = Field(None, description="horizon row as a fraction of image height (0 = top)")
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    pitch_deg: float = 0.0
    fit: bool = False
    fallback_horizon_frac: float = 0.5
    ground_polygon: list[tuple[float, float]] | None = Field(
        None, description="static drivable polygon in pixels (used when a frame has no label map)")

    @field_validator("height_m")
    @classmethod
    def _height(cls, v: float) -> float:
        if not 0.2 <= v <= 10:
            raise ValueError(f"`height_m` must be in [0.2, 10], but got {v}")
        return v

    @field_validator("horizon_frac", "fallback_horizon_frac")
    @classmethod
    def _horizon(cls, v: float | None) -> float | None:
        if v is not None and not -0.5 <= v <= 1.0:
            raise ValueError(f"`horizon_frac` must be in [-0.5, 1.0], but got {v}")
        return v

    @field_validator("pitch_deg")
    @classmethod
    def _pitch(cls, v: float) -> float:
        if not -30 <= v <= 30:
            raise ValueError(f"`pitch_deg` must be in [-30, 30], but got {v}")
        return v

    @model_validator(mode="after")
    def _intrinsics(self) -> "CameraConfig":
        given = [v is not None for v in (self.fx, self.fy, self.cx, self.cy)]
        if any(given) and not all(given):
            raise ValueError("camera intrinsics need all of `fx`, `fy`, `cx`, `cy` (or none)")
        if all(given) and (self.fx <= 0 or self.fy <= 0):
            raise ValueError(f"focal lengths must be > 0, but got fx={self.fx}, fy={self.fy}")
        return self


class SceneFilterConfig(_Model):
    """Which frames may serve as backgrounds (see `roadsynth.datasets.sampling.SceneFilter`)."""

    require_categories: list[str] = []
    exclude_categories: list[str] = []
    min_box_area: float = 0.0
    max_objects: int | None = None
    min_width: int = 0
    min_height: int = 0
    attributes: dict[str, str | int | float | bool] = {}


class SceneSource(_Model):
    """Where background road frames come from.

    `format: label_maps` is a folder of frames with per-pixel label PNGs (CamVid style): `road_values`
    give the drivable ground, and connected blobs of `object_values` become (approximate) boxes.
    """

    name: str
    format: Literal["label_maps", "coco", "yolo", "folder"]
    path: Path  # images folder (label_maps/folder), annotations json (coco), dataset root (yolo)
    images_root: Path | None = None  # coco only
    label_maps: Path | None = None
    road_values: list[int] = [3]
    object_values: dict[int, str] = {}
    min_object_px: int = 150
    scene_regex: str | None = Field(None, description="regex; group 1 of a match on the file name = scene id")
    camera: CameraConfig = CameraConfig(horizon_frac=0.45)
    filter: SceneFilterConfig = SceneFilterConfig()


class CutoutSource(_Model):
    """A source of real object cut-outs; `bank` is a folder saved by `CutoutBank.save`."""

    kind: Literal["msrc", "weizmann", "coco", "yolo", "bank"]
    path: Path
    images_dir: Path | None = None  # coco only
    categories: list[str] | None = None  # msrc / coco: which classes to take
    class_map: dict[str, str] | None = None  # yolo: dataset class name -> roadsynth category
    min_area: int = 1500


class InpaintConfig(_Model):
    """Diffusion bbox inpainting with a checkpoint the user owns (local folder, or file + local config)."""

    model: Path
    config: Path | None = None
    prompts: dict[str, str]
    negative_prompt: str = "blurry, deformed, cartoon"
    steps: int = Field(30, ge=1)
    guidance_scale: float = 7.5
    strength: float = Field(1.0, ge=0, le=1)
    native: int | None = None
    context: float = Field(2.0, ge=1)
    min_window_px: int = 96
    batch_size: int = Field(4, ge=1)
    mask_shape: Literal["box", "ellipse", "cutout"] = "cutout"
    feather_px: float = 3.0
    device: str = "auto"


class DetectorCheckConfig(_Model):
    """Score each inserted object with a detector you trust (an Ultralytics weights file you have, e.g. one
    trained on real data of these classes); scores are stored in the provenance, objects are kept."""

    weights: Path
    class_map: dict[str, str] = Field({}, description="inserted category -> the detector's class name (default: same)")
    min_score: float = Field(0.25, ge=0, le=1)
    min_iou: float = Field(0.5, ge=0, le=1)
    imgsz: int = Field(640, ge=32)
    device: str = "cpu"


class InsertConfig(_Model):
    method: Literal["paste", "inpaint"] = "paste"
    inpaint: InpaintConfig | None = None
    detector_check: DetectorCheckConfig | None = None
    categories: dict[str, float] = Field(..., description="category -> sampling weight")
    objects_per_image: tuple[int, int] = (1, 2)
    blend: Literal["feather", "poisson", "none"] = "feather"
    feather_px: float = 2.0
    harmonize: bool = True
    shadow: bool = True

    @model_validator(mode="after")
    def _check(self) -> "InsertConfig":
        lo, hi = self.objects_per_image
        if not 1 <= lo <= hi <= 50:
            raise ValueError(f"`objects_per_image` must satisfy 1 <= min <= max <= 50, but got {self.objects_per_image}")
        if not self.categories or any(w <= 0 for w in self.categories.values()):
            raise ValueError(f"`categories` must map at least one class to a positive weight, but got {self.categories}")
        if self.method == "inpaint" and self.inpaint is None:
            raise ValueError("`method: inpaint` needs an `inpaint` section (model path and prompts)")
        if self.inpaint is not None:
            missing = sorted(set(self.categories) - set(self.inpaint.prompts))
            if missing:
                raise ValueError(f"`inpaint.prompts` has no prompt for {missing}")
        return self


class DiffusionWeatherConfig(_Model):
    """Weather by img2img on the whole frame (a local text-to-image checkpoint: 4-channel UNet)."""

    model: Path
    prompts: dict[str, str] = Field(..., description="condition -> prompt, e.g. fog: 'a road in dense fog'")
    strength: float = Field(0.45, gt=0, le=1)
    steps: int = Field(30, ge=1)
    guidance_scale: float = 7.5
    work_px: int = Field(512, ge=64, multiple_of=8, description="longer side of the working size")
    detail: float = Field(0.7, ge=0, le=1, description="weight of the frame's own high-frequency detail added back")
    device: str = "auto"
    config: Path | None = None  # single-file checkpoints: local folder with the pipeline configs


class WeatherConfig(_Model):
    """Whole-frame conditions: each output frame draws one condition by weight (`clear` = unchanged)."""

    conditions: dict[str, float] = Field(..., description="condition (or `clear`) -> sampling weight")
    severity: tuple[int, int] = (1, 3)
    method: Literal["albumentations", "diffusion"] = "albumentations"
    diffusion: DiffusionWeatherConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> "WeatherConfig":
        unknown = sorted(set(self.conditions) - set(WEATHER_CONDITIONS) - {"clear"})
        if unknown:
            raise ValueError(f"`weather.conditions` must be among {', '.join(WEATHER_CONDITIONS)}, clear, but got {unknown}")
        if not self.conditions or any(w < 0 for w in self.conditions.values()) or sum(self.conditions.values()) <= 0:
            raise ValueError(f"`weather.conditions` must have non-negative weights summing to > 0, but got {self.conditions}")
        lo, hi = self.severity
        if not 1 <= lo <= hi <= 3:
            raise ValueError(f"`weather.severity` must satisfy 1 <= min <= max <= 3, but got {self.severity}")
        if self.method == "diffusion":
            if self.diffusion is None:
                raise ValueError("`weather.method: diffusion` needs a `weather.diffusion` section (model path and prompts)")
            missing = sorted(set(self.conditions) - {"clear"} - set(self.diffusion.prompts))
            if missing:
                raise ValueError(f"`weather.diffusion.prompts` has no prompt for {missing}")
        return self


class RestyleStyle(_Model):
    name: str
    prompt: str = Field("", description="diffusion: what the vehicle should become, e.g. 'a 1960s classic car'")
    color: tuple[int, int, int] | None = Field(None, description="paint: RGB paint colour")
    category: str | None = Field(None, description="category the vehicle becomes (e.g. ambulance); None keeps it")


class VehicleRestyleConfig(_Model):
    """Restyle existing vehicles inside their masks: `paint` (weight-free recolour) or `diffusion` (a local
    img2img checkpoint with a 4-channel UNet, optional ControlNet)."""

    method: Literal["paint", "diffusion"] = "paint"
    model: Path | None = None
    styles: list[RestyleStyle] = Field(..., min_length=1)
    categories: list[str] = Field(["car"], description="source categories that may be restyled")
    frame_prob: float = Field(0.5, ge=0, le=1, description="fraction of frames whose vehicles are restyled")
    max_objects: int = Field(2, ge=1)
    min_box_px: int = Field(24, ge=8)
    strength: float = Field(0.7, gt=0, le=1, description="diffusion: denoising strength; paint: colour strength")
    steps: int = Field(30, ge=1)
    guidance_scale: float = 7.5
    native: int | None = Field(None, multiple_of=8)
    context: float = Field(1.3, ge=1)
    batch_size: int = Field(4, ge=1)
    min_edge_fscore: float = Field(0.35, ge=0, le=1, description="refuse edits whose outline kept less than this "
                                                                "(boundary F-score of before/after edges in the mask)")
    max_edge_ratio: float = Field(2.5, gt=0, description="refuse edits with this many times the edges (new texture)")
    min_change: float = Field(4.0, ge=0, description="refuse edits that changed almost nothing (mean |diff| in mask)")
    controlnet: Path | None = Field(None, description="local ControlNet (canny) folder to hold the outline")
    device: str = "auto"
    config: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> "VehicleRestyleConfig":
        if self.method == "diffusion":
            if self.model is None:
                raise ValueError("`restyle.method: diffusion` needs `restyle.model` (a local img2img checkpoint)")
            if missing := [s.name for s in self.styles if not s.prompt]:
                raise ValueError(f"`restyle.method: diffusion` needs a `prompt` for styles {missing}")
        elif missing := [s.name for s in self.styles if s.color is None]:
            raise ValueError(f"`restyle.method: paint` needs a `color` for styles {missing}")
        elif relabel := [s.name for s in self.styles if s.category is not None]:
            raise ValueError(f"`restyle.method: paint` keeps categories (a colour change is not a new class), "
                             f"but styles {relabel} set one")
        return self


class GenerateConfig(_Model):
    seed: int = 0
    scenes: list[SceneSource]
    n_images: int = Field(50, ge=1)
    cutouts: list[CutoutSource] = []
    insert: InsertConfig | None = Field(None, description="objects to insert; None = restyle/weather only")
    restyle: VehicleRestyleConfig | None = None
    weather: WeatherConfig | None = None
    placement: PlacementConfig = PlacementConfig()
    chunk_size: int = Field(16, ge=1)
    jpeg_quality: int = Field(92, ge=50, le=100)

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        if self.insert is None and self.restyle is None and self.weather is None:
            raise ValueError("`generate` must have at least one of `insert`, `restyle`, `weather`")
        return self


class DatasetSource(_Model):
    """A labelled dataset on disk: a YOLO root (with data.yaml) or a COCO file plus its images folder."""

    format: Literal["yolo", "coco"]
    path: Path  # YOLO dataset root, or COCO annotations json
    images_root: Path | None = None  # coco only

    @model_validator(mode="after")
    def _check_source(self) -> "DatasetSource":
        if self.format == "coco" and self.images_root is None:
            raise ValueError(f"`images_root` is required for format coco ({self.path})")
        return self


class RealDataConfig(DatasetSource):
    """The real data of an experiment: this dataset is the training pool.

    With a fixed `test` set (your frozen evaluation set, any supported format) only the pool is split
    (into train and val, or train alone when `val` is given too) and thinned; without one, the pool is
    split into train / val / test by scene. Class names are matched across sets by (case-insensitive) name.
    """

    test: DatasetSource | None = None
    val: DatasetSource | None = None
    test_fraction: float = Field(0.3, gt=0, lt=1)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    split_seed: int = 0
    long_tail: dict[str, int] = Field({}, description="category -> number of TRAIN images kept that contain it")

    @model_validator(mode="after")
    def _check_sets(self) -> "RealDataConfig":
        if self.val is not None and self.test is None:
            raise ValueError("`real.val` needs `real.test` too (a fixed val set next to a split-off test set "
                             "would let the split decide what the fixed set was meant to hold out)")
        if any(k < 1 for k in self.long_tail.values()):
            raise ValueError(f"`long_tail` counts must be >= 1, but got {self.long_tail}")
        return self


class DetectorConfig(_Model):
    """The detector an experiment trains per arm and seed (and the starter is trained with).

    `model` is the architecture (a model yaml: random init); `weights` a local weights file to fine-tune
    from (the bundled starter or your own). Class heads are matched by name, so a starter that knows
    Car and Bus keeps them and learns the classes it lacks from scratch.
    """

    kind: Literal["yolo"] = "yolo"
    model: str = "yolo11n.yaml"
    weights: Path | None = None
    imgsz: int = Field(256, ge=32, multiple_of=32)
    epochs: int = Field(5, ge=1)
    batch: int = Field(16, ge=1)
    workers: int = Field(0, ge=0)
    device: str = "cpu"
    val: bool = Field(False, description="validate every epoch and keep the best epoch (slower on CPU); "
                                         "off: the last epoch's weights")
    train_args: dict[str, str | int | float | bool] = Field(
        {}, description="further Ultralytics train arguments (lr0, mosaic, ...), passed last")


class StarterConfig(_Model):
    """A starter detector that roadsynth trains itself: it knows common road classes, not the long tail.

    Images holding any `exclude_categories` box are dropped, and so is every file named in
    `exclude_images` (file name -> why: images reviewed by eye that show a long-tail object without a box).
    Only `classes` are kept; the rest of each image's boxes are dropped with their category.
    """

    name: str = "starter"
    sources: list[DatasetSource] = Field(..., min_length=1)
    classes: list[str] = Field(..., min_length=1)
    exclude_categories: list[str] = []
    exclude_images: dict[str, str] = Field({}, description="image file name -> reason it is left out")
    val_fraction: float = Field(0.15, gt=0, lt=1)
    split_seed: int = 0
    seed: int = 0
    detector: DetectorConfig


ARMS = ("real", "real+generated", "real+random", "real-more-epochs", "generated-only")


class ExperimentConfig(_Model):
    """Real vs real+generated, scored on a real test split; see roadsynth/experiment.py for the protocol.

    Arms: `real`; `real+generated` (objects placed by the scene geometry); `real+random` (the same
    cut-outs, numbers per class and blending at uniformly random positions and scales: the placement
    ablation); `real-more-epochs` (real data trained for as many steps as the largest arm: with
    `compute: equal-epochs` it separates a gain from data from a gain from training longer);
    `generated-only`.
    """

    real: RealDataConfig
    cutouts_from_real: dict[str, str] = Field(
        {}, description="real category -> roadsynth category: cut-outs of the long-tail class from the kept train images"
    )
    arms: list[Literal[ARMS]] = ["real", "real+generated"]
    target_classes: list[str] | None = Field(
        None, description="classes the verdict is about (default: the `real.long_tail` keys)")
    seeds: list[int] = [0, 1, 2]
    detector: DetectorConfig = DetectorConfig()
    compute: Literal["equal-steps", "equal-epochs"] = Field(
        "equal-steps", description="equal-steps: every arm trains as many optimiser steps as the largest arm does "
                                   "in `detector.epochs` epochs; equal-epochs: every arm trains `detector.epochs`")
    reuse_dir: Path | None = Field(
        None, description="finished arm x seed trainings, keyed by content, reused across experiments "
                          "(default ~/.cache/roadsynth/trained; set `reuse: false` to always retrain)")
    reuse: bool = True
    slice_by: list[str] = Field([], description="test-image attributes to report metrics per value of (e.g. condition)")
    test_conditions: list[str] = Field([], description="add a weathered copy of every test image per condition "
                                                       "(robustness slices; `condition` is then reported)")
    test_severity: int = Field(2, ge=1, le=3)
    eval_backend: Literal["faster", "pycocotools"] = "faster"
    bootstrap: int = Field(500, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        unknown = sorted(set(self.test_conditions) - set(WEATHER_CONDITIONS))
        if unknown:
            raise ValueError(f"`test_conditions` must be among {', '.join(WEATHER_CONDITIONS)}, but got {unknown}")
        if len(set(self.arms)) != len(self.arms) or "real" not in self.arms:
            raise ValueError(f"`arms` must list each arm once and include `real` (the baseline), but got {self.arms}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"`seeds` must be distinct non-negative integers, but got {self.seeds}")
        return self

    @property
    def targets(self) -> list[str]:
        return list(self.target_classes) if self.target_classes is not None else list(self.real.long_tail)


class OrchestrationConfig(_Model):
    """How the Prefect flows run their tasks. `threads` needs nothing; `dask` needs the `dask` extra
    (a LocalCluster, or an existing scheduler at `address`); `ray` needs the `ray` extra."""

    task_runner: Literal["threads", "dask", "ray"] = "threads"
    workers: int = Field(2, ge=1)
    address: str | None = Field(None, description="existing Dask scheduler / Ray cluster address")
    max_in_flight: int = Field(8, ge=1, description="chunks submitted at once (keeps huge runs off the scheduler)")
    gpus_per_task: float = Field(0.0, ge=0, description="Ray: GPU share per generation task (inpaint on GPUs)")


class Config(_Model):
    name: str = "roadsynth-run"
    generate: GenerateConfig
    experiment: ExperimentConfig | None = None
    orchestration: OrchestrationConfig = OrchestrationConfig()

    def digest(self) -> str:
        """Stable hash of what determines the generated data (the `generate` section): chunk reuse and
        manifests. How it runs (`orchestration`) or what is done with it (`experiment`) is left out, so the
        same data made on threads or on a Dask cluster carries the same digest."""
        data = self.generate.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_PATH_KEYS = {"path", "images_root", "label_maps", "images_dir"}
# Model paths only under the diffusion sections: the detector's `model` is a model name.
_MODEL_PATH_KEYS = {"model", "config", "controlnet", "weights"}
_MODEL_SECTIONS = {"inpaint", "restyle", "diffusion", "detector_check"}
# The detector's `model` is an architecture name (yolo11n.yaml), its `weights` a file.
_SECTION_PATH_KEYS = {"detector": {"weights"}, "experiment": {"reuse_dir"}}


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
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, but got {type(raw).__name__}")
    try:
        return model.model_validate(_resolve_paths(raw, path.parent.resolve()))
    except ValidationError as e:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"{path}: invalid config:\n  " + "\n  ".join(lines)) from None


def load_config(path: str | Path) -> Config:
    return load_model(path, Config)


def save_config(cfg: BaseModel, path: Path) -> None:
    """The resolved config (defaults filled in, paths absolute) as YAML, written atomically."""
    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
