"""The box segmenter's training config (generators/segmenter_train.py; configs/box_segmenter.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from roadsynth.config.base import Section


class SegmenterSource(Section):
    """Instance masks: MSRC-v2 segment maps, Weizmann figure-ground masks, a COCO instances file (with
    `images_dir`) or an Ultralytics segmentation folder (`yolo-seg`: images/ and labels/). `parity` keeps
    every other instance in the source's own order (even: 0, 2, 4, ...)."""

    kind: Literal["msrc", "weizmann", "coco", "yolo-seg"]
    path: Path
    images_dir: Path | None = None
    parity: Literal["even", "odd"] | None = None

    @model_validator(mode="after")
    def _images_dir(self) -> "SegmenterSource":
        if self.kind == "coco" and self.images_dir is None:
            raise ValueError("a `coco` source needs `images_dir`, the folder its file names are relative to")
        return self


class SegmenterConfig(Section):
    """A small U-Net that turns a box into a mask, trained on `sources`.

    `tuning`: that many animal instances (Weizmann, MSRC) of the sources are kept out of training. The mask
    threshold is chosen on them, and so is the certainty floor below which the segmenter refuses its own
    mask: the one that refuses the `refuse_share` least certain tuning instances. `validation` sources are
    never trained or tuned on: the manifest reports the model's figures on them (all masks, and those the
    floor keeps), after dropping every validation photo that is a near-duplicate (pHash) of a training photo;
    benchmarks/mask_quality.py puts GrabCut's beside them.
    """

    name: str = "box-segmenter"
    sources: list[SegmenterSource] = Field(..., min_length=1)
    validation: list[SegmenterSource] = []
    size: int = Field(96, ge=32, le=512, multiple_of=16, description="crop side the network sees, pixels")
    widths: list[int] = Field([16, 32, 64, 128], min_length=2, max_length=6)
    epochs: int = Field(60, ge=1)
    batch: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    tuning: int = Field(40, ge=0)
    refuse_share: float = Field(0.15, ge=0, lt=0.5, description="share of tuning instances the floor refuses")
    min_area: int = Field(1500, ge=1)
    seed: int = 0
    threads: int = Field(2, ge=1)
