"""Ultralytics YOLO adapter: the only module that imports ultralytics.

Offline by construction: before importing Ultralytics it sets (with `os.environ.setdefault`, so a user
can override) `YOLO_OFFLINE`, a private `YOLO_CONFIG_DIR` and `NO_ALBUMENTATIONS_UPDATE`, and puts a
font where Ultralytics' `check_font` looks, because that check downloads Arial.ttf whatever
`YOLO_OFFLINE` says. Models are built from a model yaml (random init) or from weights the user owns.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from roadsynth.datasets.io import atomic_write_json
from roadsynth.datasets.records import Box
from roadsynth.datasets.yolo import write_yolo_splits
from roadsynth.detectors.base import DatasetSplit, Prediction


def apply_offline_defaults(config_dir: Path | None = None) -> Path:
    config_dir = Path(os.environ.setdefault(
        "YOLO_CONFIG_DIR", str(config_dir or Path.home() / ".cache" / "roadsynth" / "ultralytics")))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    return config_dir


def check_model_source(model: str) -> str:
    p = Path(model).expanduser()
    if p.suffix in (".yaml", ".yml"):
        return model  # Ultralytics resolves bundled model yamls (yolo11n.yaml) from its package
    if p.suffix == ".pt":
        if not p.exists():
            raise FileNotFoundError(
                f"`model` must be a model yaml (e.g. yolo11n.yaml) or an existing local weights file, but got {model} "
                "(not found; roadsynth never downloads weights)")
        return str(p.resolve())
    raise ValueError(f"`model` must end in .yaml or .pt, but got {model!r}")


class YoloDetector:
    def __init__(self, model: str = "yolo11n.yaml", *, imgsz: int = 256, epochs: int = 5, batch: int = 16,
                 workers: int = 0, device: str = "cpu", val_during_training: bool = False,
                 extra_train_args: dict[str, Any] | None = None, conf: float = 0.001, max_det: int = 100):
        self.model = check_model_source(model)
        self.imgsz, self.epochs, self.batch, self.workers, self.device = imgsz, epochs, batch, workers, device
        self.val_during_training = val_during_training
        self.extra = dict(extra_train_args or {})
        self.conf, self.max_det = conf, max_det

    def train(self, train: DatasetSplit, val: DatasetSplit, run_dir: Path, seed: int) -> Path:
        run_dir = Path(run_dir).resolve()
        # Stable class mapping: categories sorted by COCO id; saved so predictions map back to ids.
        cats = sorted(train.dataset.categories, key=lambda c: c.id)
        data_yaml = write_yolo_splits(
            {"train": (train.dataset, train.images_root), "val": (val.dataset, val.images_root)},
            run_dir / "data", [c.name for c in cats])
        classes = [{"index": i, "category_id": c.id, "name": c.name} for i, c in enumerate(cats)]
        atomic_write_json(run_dir / "classes.json", classes, indent=1)
        apply_offline_defaults()
        from ultralytics import YOLO

        model = YOLO(self.model)
        args = dict(data=str(data_yaml), epochs=self.epochs, imgsz=self.imgsz, batch=self.batch, workers=self.workers,
                    device=self.device, seed=seed, deterministic=True, plots=False, amp=False, cache=False,
                    project=str(run_dir), name="train", exist_ok=True, verbose=False, val=self.val_during_training)
        model.train(**{**args, **self.extra})
        weights_dir = Path(model.trainer.save_dir) / "weights"
        weights = weights_dir / "best.pt" if (weights_dir / "best.pt").exists() else weights_dir / "last.pt"
        if not weights.exists():
            raise RuntimeError(f"{weights_dir}: Ultralytics finished without writing weights")
        shutil.copyfile(run_dir / "classes.json", weights.with_name("classes.json"))
        return weights

    def predict(self, weights: Path, images: Sequence[tuple[int, Path]], batch: int = 16) -> list[Prediction]:
        classes = json.loads(Path(weights).with_name("classes.json").read_text())
        to_category = {c["index"]: c["category_id"] for c in classes}
        apply_offline_defaults()
        from ultralytics import YOLO

        model = YOLO(str(weights))
        out: list[Prediction] = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            results = model.predict([str(p) for _, p in chunk], imgsz=self.imgsz, conf=self.conf, iou=0.7,
                                    device=self.device, max_det=self.max_det, verbose=False)
            for (image_id, _), r in zip(chunk, results):
                boxes = r.boxes
                for xyxy, cls, score in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist()):
                    out.append(Prediction(image_id, to_category[int(cls)], Box.from_xyxy(*xyxy), float(score)))
        return out
