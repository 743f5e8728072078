"""The learned box-to-mask step: a small U-Net that roadsynth trains itself (generators/segmenter_train.py)
on bundled instance masks, and its loading and prediction. The torch adapter of the box segmenter.

It sees the box with a margin (segmenter_data.box_crop, the same crop it was trained on) and returns, for
each pixel, the probability that it belongs to the object the box was drawn around; `certainty` says how
sure it was, and masks below the floor its manifest names are refused. Weights are a
safetensors file (tensors only, nothing is unpickled) beside a manifest that says what the model was
trained on and how it scored on masks it never saw.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from roadsynth.generators.segmenter_data import MARGIN, box_crop, crop_window

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"


def build_unet(widths: tuple[int, ...] = (16, 32, 64, 128)):
    """A U-Net of len(widths) levels (two 3x3 convolutions each, batch norm, ReLU), one logit per pixel."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.ModuleList(block(c_in, c) for c_in, c in zip((3, *widths[:-1]), widths))
            self.up = nn.ModuleList(block(widths[k] + widths[k + 1], widths[k]) for k in range(len(widths) - 1))
            self.head = nn.Conv2d(widths[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for k, down in enumerate(self.down):
                x = down(x if k == 0 else nn.functional.max_pool2d(x, 2))
                skips.append(x)
            for k in reversed(range(len(self.up))):
                x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.up[k](torch.cat([skips[k], x], 1))
            return self.head(x)

    return UNet()


def normalise(crops: np.ndarray):
    """uint8 N x H x W x 3 crops -> float N x 3 x H x W tensor, each crop scaled by its own mean and spread:
    photos differ in exposure far more than the training set can show."""
    import torch

    return standardise(torch.from_numpy(np.ascontiguousarray(crops)).float().permute(0, 3, 1, 2) / 255.0)


def standardise(x):
    """Float N x 3 x H x W crops in [0, 1], each scaled by its own mean and spread (training and prediction)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(0.02)
    return (x - mean) / std


class BoxSegmenter:
    """Load once, then `probabilities(rgb, box)` per object. Thread-safe (task-runner threads share it)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        wpath = folder / WEIGHTS
        if not wpath.is_file():
            raise FileNotFoundError(f"{wpath}: box segmenter weights not found")
        from roadsynth.datasets.io import read_json

        self.manifest: dict[str, Any] = read_json(folder / MANIFEST, "box segmenter manifest") \
            if (folder / MANIFEST).is_file() else {}
        cfg = self.manifest.get("model", {})
        self.size = int(cfg.get("size", 128))
        self.margin = float(cfg.get("margin", MARGIN))
        self.threshold = float(cfg.get("threshold", 0.5))  # chosen on the tuning instances when it was trained
        # Masks less certain than this are refused (chosen on the tuning instances too); None: none refused.
        self.min_certainty = None if cfg.get("min_certainty") is None else float(cfg["min_certainty"])
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self.net = build_unet(tuple(cfg.get("widths", (16, 32, 64, 128))))
        try:
            self.net.load_state_dict(load_file(str(wpath)))
        except (SafetensorError, RuntimeError, OSError, ValueError) as e:
            raise ValueError(f"{wpath}: not weights of this box segmenter: {e}") from None
        self.net.eval()
        self._torch = torch
        self._lock = threading.Lock()

    def probabilities(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Per-pixel object probability over the box's integer rows/columns (x1..x2, y1..y2 rounded out)."""
        torch = self._torch
        crop, _ = box_crop(rgb, box, self.size, self.margin)
        with self._lock, torch.inference_mode():
            x = normalise(np.stack([crop, crop[:, ::-1]]))
            logits = self.net(x)[:, 0].numpy()
        # The mirror image is as likely a photo: averaging both halves the model's left-right whims.
        p = 0.5 * (_sigmoid(logits[0]) + _sigmoid(logits[1][:, ::-1]))
        return _uncrop(p, box, self.margin, rgb.shape[:2])


def certainty(p: np.ndarray) -> float:
    """1 - the share of the box's pixels whose probability is between 0.2 and 0.8. On the tuning instances
    it ranks masks by their IoU against the true mask (the manifest's `tuning.certainty_iou_rank_correlation`,
    on masks it did not train on): an unsure segmenter is a wrong one."""
    return float(1.0 - np.mean((p > 0.2) & (p < 0.8))) if p.size else 0.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _uncrop(p: np.ndarray, box, margin: float, shape: tuple[int, int]) -> np.ndarray:
    """The crop's probabilities back on the box's integer pixels of the photo."""
    import cv2

    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = crop_window(box, margin)
    full = cv2.resize(p.astype(np.float32), (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_LINEAR)
    H, W = shape
    ix1, iy1 = max(int(np.floor(x1)), 0), max(int(np.floor(y1)), 0)
    ix2, iy2 = min(int(np.ceil(x2)), W), min(int(np.ceil(y2)), H)
    return full[iy1 - cy1 : iy2 - cy1, ix1 - cx1 : ix2 - cx1]


_LOADED: dict[str, BoxSegmenter] = {}
_LOADED_LOCK = threading.Lock()


def load_segmenter(folder: str | Path) -> BoxSegmenter:
    """One model per folder and process."""
    key = str(Path(folder).resolve())
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = BoxSegmenter(folder)
        return _LOADED[key]
