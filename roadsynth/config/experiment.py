"""The `experiment` section (real data, arms, detector, compute) and the starter detector's config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from roadsynth.config.base import ReaderOptions, Section
from roadsynth.datasets.registry import DATASET_FORMATS
from roadsynth.generators.conditions import CONDITIONS as WEATHER_CONDITIONS


class DatasetSource(ReaderOptions):
    """A labelled dataset on disk: a YOLO root (with data.yaml), a COCO file plus its images folder, or a public
    driving dataset in its own layout (with the readers' `version`, `split`, `class_map`)."""

    format: Literal[DATASET_FORMATS]
    path: Path  # what it is depends on the format (`Format.path`): a dataset root or a labels file
    images_root: Path | None = None  # the images folder, for the formats that need one (coco, bdd100k)


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


class DetectorConfig(Section):
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


class StarterConfig(Section):
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


ARMS = ("real", "real+generated", "real+random", "real+sources", "real-more-epochs", "generated-only")
# The methods that add generated (or source) images, so take a dose each when `doses` are given.
DOSED = ("real+generated", "real+random", "real+sources")


class ExperimentConfig(Section):
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
    cutouts_segmenter: Path | None = Field(
        None, description="a box segmenter folder (`roadsynth train-segmenter`) that cuts the `cutouts_from_real` "
                          "masks from their boxes; default GrabCut")
    arms: list[Literal[ARMS]] = ["real", "real+generated"]
    target_classes: list[str] | None = Field(
        None, description="classes the verdict is about (default: the `real.long_tail` keys)")
    seeds: list[int] = [0, 1, 2]
    doses: list[int] = Field(
        [], description="generated images per dosed arm (real+generated, real+random, real+sources), e.g. "
                        "[0, 32, 64, 128]: one arm per method and dose, nested (a dose's images are the first ones "
                        "of every larger dose's), from one generation of `generate.n_images`. Dose 0 is the `real` "
                        "arm. Empty: one dose, every generated image")
    detector: DetectorConfig = DetectorConfig()
    compute: Literal["equal-steps", "equal-epochs"] = Field(
        "equal-steps", description="equal-steps: every arm trains as many optimiser steps as the largest arm does "
                                   "in `detector.epochs` epochs; equal-epochs: every arm trains `detector.epochs`")
    reuse_dir: Path | None = Field(
        None, description="finished arm x seed trainings, keyed by content, reused across experiments "
                          "(default ~/.cache/roadsynth/trained; set `reuse: false` to always retrain)")
    reuse: bool = True
    parallel: int | None = Field(
        None, ge=1, description="trainings run at once on this machine (threads runner; default: the cores' "
                                "worth at `threads_per_training` each). Never changes a result")
    threads_per_training: int | None = Field(
        None, ge=1, description="CPU threads of each training (default: the cores shared by as many trainings as "
                                "can run at once). Part of the training's reuse key: CPU reductions may round "
                                "differently with another thread count")
    gpus_per_training: float = Field(0.0, ge=0, description="Ray: GPUs reserved per training; Dask: the worker "
                                                           "resource `GPU` each training asks for")
    unlabelled_frames: Literal["refuse", "warn"] = Field(
        "refuse", description="generated images whose background's existing objects are not all labelled "
                              "(`labels_complete: false`) teach a detector that those objects are background: "
                              "refuse to train on them, or train and say so in the report")
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
        if len(set(self.doses)) != len(self.doses) or any(d < 0 for d in self.doses) or (
                self.doses and max(self.doses) == 0):
            raise ValueError(f"`doses` must be distinct non-negative integers with one above 0, but got {self.doses}")
        if "real+sources" in self.arms and self.cutouts_from_real:
            raise ValueError("`real+sources` adds the cut-outs' source photos, but with `cutouts_from_real` those "
                             "photos are already in the real arm; drop the arm or use an external cut-out bank")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"`seeds` must be distinct non-negative integers, but got {self.seeds}")
        return self

    @property
    def positive_doses(self) -> list[int]:
        return sorted(d for d in self.doses if d > 0)

    @property
    def arm_names(self) -> list[str]:
        """The arms trained: each dosed method once per positive dose (`real+generated@32`), the others as named."""
        out = []
        for arm in self.arms:
            out += [f"{arm}@{d}" for d in self.positive_doses] if arm in DOSED and self.doses else [arm]
        return out

    @property
    def targets(self) -> list[str]:
        return list(self.target_classes) if self.target_classes is not None else list(self.real.long_tail)
