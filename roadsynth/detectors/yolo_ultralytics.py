"""Ultralytics YOLO adapter: the only module that imports ultralytics (lazily, inside functions).

Offline by construction. Before importing Ultralytics, `apply_offline_defaults` sets (with
`os.environ.setdefault`, so a user's own values win) `YOLO_OFFLINE`, `YOLO_CONFIG_DIR`,
`NO_ALBUMENTATIONS_UPDATE` and `HF_HUB_OFFLINE`, and puts a font where Ultralytics' `check_font` looks:
`check_det_dataset` downloads Arial.ttf whatever `YOLO_OFFLINE` or `plots=False` say. Models come from a
model yaml (random init) or from a weights file the user already has; a bare `yolo11n.pt` is refused
because Ultralytics would download it.

Class mapping: the training dataset's categories sorted by COCO id give class indices 0..K-1. The
mapping is kept in `run_dir/data/classes.json` and copied next to the weights, so `predict` turns class
indices back into COCO category ids with nothing but the weights path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from roadsynth.datasets.io import atomic_write_bytes, atomic_write_json, inside, load_image, read_json
from roadsynth.datasets.records import Box
from roadsynth.datasets.yolo import write_yolo_splits
from roadsynth.detectors.base import DatasetSplit, Prediction

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def apply_offline_defaults(config_dir: Path | None = None) -> Path:
    """Environment for an offline Ultralytics; call before `import ultralytics`. Returns YOLO_CONFIG_DIR.

    `config_dir` defaults to ~/.cache/roadsynth/ultralytics; an exported YOLO_CONFIG_DIR takes precedence.
    """
    default = Path(config_dir) if config_dir is not None else Path.home() / ".cache" / "roadsynth" / "ultralytics"
    config = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(default.expanduser().resolve())))
    # ULTRALYTICS_SAFE_LOAD: weights files load with torch's weights_only unpickler (known classes only).
    for key in ("YOLO_OFFLINE", "NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE", "ULTRALYTICS_SAFE_LOAD"):
        os.environ.setdefault(key, "1")
    # Ultralytics appends "Ultralytics" to YOLO_CONFIG_DIR; check_font looks there first.
    _place_fonts(config / "Ultralytics")
    return config


def _place_fonts(folder: Path) -> None:
    missing = [name for name in FONT_NAMES if not (folder / name).is_file()]
    if not missing:
        return
    import matplotlib  # a dependency anyway; its DejaVuSans covers what Ultralytics draws

    data = (Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf").read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing:
        atomic_write_bytes(folder / name, data)


def _import_yolo():
    apply_offline_defaults()
    from ultralytics import YOLO
    from ultralytics.utils import USER_CONFIG_DIR

    # If ultralytics was imported earlier (before our env var), its config dir is another one: cover it too.
    _place_fonts(Path(USER_CONFIG_DIR))
    _restore_pillow_open()
    return YOLO


def pin_threads(threads: int) -> None:
    """This process's torch threads, kept: Ultralytics' `select_device` resets them to min(8, cores - 1) at
    every training, whatever the caller set (one thread on 2 cores)."""
    _import_yolo()
    import torch
    from ultralytics.utils import torch_utils

    torch.set_num_threads(threads)
    torch_utils.NUM_THREADS = threads


def _restore_pillow_open() -> None:
    """Put Pillow's own `Image.open` back. Importing Ultralytics replaces it, process-wide, with a wrapper
    that meets any unidentifiable file by trying to pip-install pi-heif (a network call) and then raising
    ModuleNotFoundError instead of Pillow's UnidentifiedImageError: a corrupt frame would stop a run instead
    of being skipped and reported."""
    import sys

    from PIL import Image

    original = getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", None)
    if original is not None and getattr(Image.open, "__module__", "") == "ultralytics.utils.patches":
        Image.open = original


class UnsafeWeightsError(ValueError):
    """A weights file that would run code (or reference unknown types) when unpickled."""


def load_yolo(weights: str | Path):
    """An Ultralytics model from a local weights file, loaded without executing code from it.

    A `.pt` file is a pickle: an ordinary `torch.load` runs whatever it names. The file is first read
    with torch's `weights_only` unpickler restricted to Ultralytics' model classes; anything else is
    refused before Ultralytics sees the file (which, with ULTRALYTICS_SAFE_LOAD set by
    `apply_offline_defaults`, loads it the same restricted way).
    """
    YOLO = _import_yolo()
    from ultralytics.nn.tasks import torch_safe_load

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file not found")
    try:
        torch_safe_load(str(weights), safe_only=True)
    except Exception as e:  # noqa: BLE001 - every way a file can fail the restricted load is a refusal
        raise UnsafeWeightsError(f"{weights}: refused: not a plain Ultralytics checkpoint, so loading it could run "
                                 f"code ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})") from None
    return YOLO(str(weights))


def check_model_source(model: str) -> str:
    """A model yaml name/path (random init) or an existing local weights file; never something to download."""
    p = Path(model).expanduser()
    if p.suffix in (".yaml", ".yml"):
        return model  # Ultralytics resolves bundled model yamls (yolo11n.yaml) from its package
    if p.suffix == ".pt":
        if not p.is_file():
            raise FileNotFoundError(
                f"`model` must be a model yaml (e.g. yolo11n.yaml) or an existing local weights file, but got {model} "
                "(not found; roadsynth never downloads weights)")
        return str(p.resolve())
    raise ValueError(f"`model` must be a model yaml (e.g. yolo11n.yaml) or a local .pt file, but got {model!r}")


class YoloDetector:
    """Train/predict with Ultralytics on CPU-friendly defaults (see `Detector` in base.py).

    `val=True` validates every epoch and returns best.pt (model selection on the val split, never the
    test split); `val=False` (the default, as in `DetectorConfig`) is ~20 % faster and returns the last
    epoch's weights. `train_args` are passed to `YOLO.train` last, so they override anything here.
    """

    def __init__(self, model: str = "yolo11n.yaml", *, weights: str | Path | None = None, imgsz: int = 256,
                 epochs: int = 5, batch: int = 16, workers: int = 0, device: str = "cpu", patience: int = 100,
                 val: bool = False, train_args: dict[str, Any] | None = None, conf: float = 0.001,
                 iou: float = 0.7, max_det: int = 300, predict_batch: int = 16):
        from roadsynth.config import DetectorConfig
        from roadsynth.config.base import check_limits

        check_limits(DetectorConfig, imgsz=imgsz, epochs=epochs, batch=batch, workers=workers)  # the config's limits
        if not 0.0 <= conf < 1.0:
            raise ValueError(f"`conf` must be in [0, 1), but got {conf}")
        self.model = check_model_source(model)
        self.weights = Path(check_model_source(str(weights))) if weights is not None else None
        self.imgsz, self.epochs, self.batch, self.workers, self.device = imgsz, epochs, batch, workers, device
        self.patience, self.val = patience, val
        self.extra = dict(train_args or {})
        # conf 0.001 / max_det 300 / NMS iou 0.7 are Ultralytics' own validation settings: COCO AP needs the
        # low-score tail, and COCOeval keeps the top 100 per image and category itself.
        self.conf, self.iou, self.max_det, self.predict_batch = conf, iou, max_det, predict_batch

    @classmethod
    def from_config(cls, cfg) -> "YoloDetector":
        """From a config section (`DetectorConfig` to train, `DetectorWeights` to load a detector you have):
        its fields are this constructor's parameters of the same names, so their defaults and limits live in
        the section; fields the constructor does not take (`kind`, a check's thresholds) stay with the caller."""
        from roadsynth.config.base import section_kwargs

        return cls(**section_kwargs(cfg, cls))

    def load(self, weights: Path, min_score: float = 0.0) -> "YoloFrames":
        return YoloFrames(weights, imgsz=self.imgsz, conf=min_score, device=self.device)

    def train(self, train: DatasetSplit, val: DatasetSplit, run_dir: Path, seed: int, progress=None) -> Path:
        run_dir = Path(run_dir).resolve()
        for name, split in (("train", train), ("val", val)):
            _check_split(name, split)
        cats = sorted(train.dataset.categories, key=lambda c: c.id)
        names = [c.name for c in cats]
        if len({n.lower() for n in names}) != len(names):
            # The YOLO export matches categories by (case-insensitive) name across splits.
            raise ValueError(f"category names must be unique ignoring case, but got {names}")
        data_dir = run_dir / "data"
        if data_dir.exists():
            if not (data_dir / "classes.json").is_file():
                raise FileExistsError(f"{data_dir}: exists but was not written by roadsynth; refusing to replace it")
            shutil.rmtree(data_dir)  # stale images from an earlier export would silently join training
        data_yaml = write_yolo_splits(
            {"train": (train.dataset, train.images_root), "val": (val.dataset, val.images_root)}, data_dir, names)
        classes = [{"index": i, "category_id": c.id, "name": c.name} for i, c in enumerate(cats)]
        atomic_write_json(data_dir / "classes.json", classes, indent=1)

        # Fine-tuning from weights: Ultralytics copies the class-head rows of classes whose names match the
        # data's (case-insensitive) and initialises the rest, so a starter's Car stays Car wherever it sits.
        # A `.pt` named as the model is a weights file like any other: the same pre-check before it is unpickled.
        start = self.weights if self.weights is not None else (self.model if str(self.model).endswith(".pt") else None)
        model = load_yolo(start) if start is not None else _import_yolo()(self.model)
        args = dict(data=str(data_yaml), epochs=self.epochs, imgsz=self.imgsz, batch=self.batch, workers=self.workers,
                    device=self.device, patience=self.patience, seed=seed, deterministic=True, plots=False,
                    amp=False, cache=False, project=str(run_dir), name="train", exist_ok=True, verbose=False,
                    val=self.val)
        if progress is not None:  # batches and epochs as they finish (detectors/child.py's ProgressFile)
            model.add_callback("on_train_batch_end", lambda trainer: progress.batch())
            model.add_callback("on_train_epoch_end", lambda trainer: progress.epoch_end(trainer.epoch + 1))
        model.train(**{**args, **self.extra})
        weights_dir = Path(model.trainer.save_dir) / "weights"
        weights = weights_dir / "best.pt" if (weights_dir / "best.pt").is_file() else weights_dir / "last.pt"
        if not weights.is_file():
            raise RuntimeError(f"{weights_dir}: Ultralytics finished without writing best.pt or last.pt")
        atomic_write_json(weights.with_name("classes.json"), classes, indent=1)
        return weights

    def predict(self, weights: Path, images: Sequence[tuple[int, Path]]) -> list[Prediction]:
        weights = Path(weights)
        to_category = load_class_map(weights)
        model = load_yolo(weights)
        if len(model.names) != len(to_category):
            raise ValueError(f"{weights}: the model has {len(model.names)} classes but its classes.json maps "
                             f"{len(to_category)}; were the weights trained by another run?")
        out: list[Prediction] = []
        for start in range(0, len(images), self.predict_batch):
            chunk = images[start : start + self.predict_batch]
            # Our own loader (EXIF applied, errors name the file) and arrays rather than paths: Ultralytics
            # sorts a list of paths, so results would come back in another order than `images`.
            bgr = [np.ascontiguousarray(load_image(path)[:, :, ::-1]) for _, path in chunk]
            results = model.predict(bgr, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device=self.device,
                                    max_det=self.max_det, verbose=False, stream=True)
            names = model.names
            for (image_id, _), r in zip(chunk, results):
                out += [Prediction(int(image_id), to_category[c], box, score, str(names[c])) for c, box, score in _boxes(r)]
        return out


def _boxes(result: Any) -> list[tuple[int, Box, float]]:
    """(class index, box, score) of one Ultralytics result; xyxy is already in original-image pixels."""
    b = result.boxes
    return [(int(c), Box.from_xyxy(*xyxy), float(s)) for xyxy, c, s in zip(b.xyxy.tolist(), b.cls.tolist(), b.conf.tolist())]


class YoloFrames:
    """Any Ultralytics weights file the user has (roadsynth-trained or not), loaded once, predicting on RGB
    frames (`Detector.load`): the pseudo-labeller, the detector check and the UI's detections view."""

    def __init__(self, weights: str | Path, *, imgsz: int = 640, conf: float = 0.05, device: str = "cpu"):
        self.model = load_yolo(weights)
        self.names = [str(self.model.names[i]) for i in sorted(self.model.names)]
        self.imgsz, self.conf, self.device = imgsz, conf, device
        try:  # roadsynth-trained weights say which COCO category each class index is
            self.category = load_class_map(Path(weights))
        except (FileNotFoundError, ValueError):
            self.category = {i: i + 1 for i in range(len(self.names))}

    def __call__(self, frames: Sequence[np.ndarray]) -> list[list[Prediction]]:
        bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in frames]  # Ultralytics takes arrays as BGR
        results = self.model.predict(bgr, imgsz=self.imgsz, conf=self.conf, device=self.device, verbose=False)
        return [[Prediction(k, self.category.get(c, c + 1), box, score, self.names[c]) for c, box, score in _boxes(r)]
                for k, r in enumerate(results)]


def load_class_map(weights: Path) -> dict[int, int]:
    """Class index -> COCO category id, from classes.json next to the weights (or in the run's data dir)."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file not found")
    candidates = [weights.with_name("classes.json")]
    if len(weights.parents) > 2:  # <run_dir>/train/weights/best.pt
        candidates.append(weights.parents[2] / "data" / "classes.json")
    for path in candidates:
        if path.is_file():
            try:
                return {int(c["index"]): int(c["category_id"]) for c in read_json(path, "class mapping")}
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: malformed class mapping ({type(e).__name__}: {e})") from None
    raise FileNotFoundError(f"{weights}: no classes.json next to the weights; roadsynth cannot map class indices "
                            "to COCO category ids for weights it did not train")


def _check_split(name: str, split: DatasetSplit) -> None:
    if not split.dataset.images:
        raise ValueError(f"the {name} split has no images")
    missing = [im.file_name for im in split.dataset.images
               if not inside(split.images_root, im.file_name, f"{name} image {im.id}").is_file()]
    if missing:
        raise FileNotFoundError(f"{split.images_root}: {len(missing)} {name} image(s) not found, e.g. {missing[:3]}")
