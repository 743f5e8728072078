"""Weather and lighting conditions on whole frames (albumentations 2.x): the only module importing it.

Every effect is pixel-level, so boxes keep their place; they still go through albumentations' bbox
processor (with clipping) so that a box leaving the frame is clipped, and any box the processor drops
is reported instead of vanishing. The condition and severity become tags on the image record, which the
evaluation can slice by.

Severity 1-3 maps to parameter ranges chosen by eye on the bundled CamVid/nuScenes frames (see the
gallery in docs/generators.md). albumentations 2.x silently ignores unknown (1.x) argument names with a warning, so
the tests run these constructors with warnings as errors.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from roadsynth.datasets.records import Annotation, Box
from roadsynth.generators.base import Restyled
from roadsynth.generators.conditions import CONDITIONS



def _albumentations():
    # Its import otherwise asks PyPI for a newer version (a network call at import time).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A


def condition_transforms(condition: str, severity: int, width: int) -> list[Any]:
    """The albumentations transforms (all with p=1) for one condition at severity 1 (light) .. 3 (heavy)."""
    if condition not in CONDITIONS:
        raise ValueError(f"`condition` must be one of {', '.join(CONDITIONS)}, but got {condition!r}")
    if severity not in (1, 2, 3):
        raise ValueError(f"`severity` must be 1, 2 or 3, but got {severity!r}")
    A = _albumentations()
    s = severity - 1
    if condition == "rain":
        return [
            A.RandomRain(rain_type=("drizzle", "heavy", "torrential")[s], slant_range=(-8, 8),
                         brightness_coefficient=(0.9, 0.8, 0.7)[s], blur_value=(3, 5, 5)[s], drop_width=1,
                         drop_length=max(int(width * (0.012, 0.02, 0.03)[s]), 4), p=1.0),
            A.RandomBrightnessContrast(brightness_limit=(-0.1 * severity, -0.05 * severity),
                                       contrast_limit=(-0.15, -0.05), p=1.0),
        ]
    if condition == "fog":
        lo, hi = ((0.3, 0.4), (0.5, 0.6), (0.7, 0.85))[s]
        return [A.RandomFog(fog_coef_range=(lo, hi), alpha_coef=0.08, p=1.0)]
    if condition == "snow":
        lo, hi = ((0.1, 0.15), (0.2, 0.3), (0.35, 0.45))[s]
        return [
            A.RandomSnow(snow_point_range=(lo, hi), brightness_coeff=(1.8, 2.2, 2.5)[s], method="bleach", p=1.0),
            A.RandomBrightnessContrast(brightness_limit=(0.0, 0.05), contrast_limit=(-0.25, -0.1), p=1.0),
        ]
    if condition == "sun_flare":
        return [
            A.RandomSunFlare(flare_roi=(0.1, 0.0, 0.9, 0.35), src_radius=int(width * (0.12, 0.2, 0.3)[s]),
                             num_flare_circles_range=((3, 5), (5, 8), (7, 10))[s], angle_range=(0, 1), p=1.0),
            # Veiling glare: stray light in the lens lifts the blacks and flattens contrast over the whole frame.
            A.RandomBrightnessContrast(brightness_limit=(0.03 * severity, 0.05 * severity),
                                       contrast_limit=(-0.12 * severity, -0.08 * severity), p=1.0),
        ]
    if condition == "shadow":
        n = ((1, 1), (1, 2), (2, 3))[s]
        lo, hi = ((0.3, 0.4), (0.45, 0.55), (0.6, 0.7))[s]
        return [A.RandomShadow(shadow_roi=(0, 0.5, 1, 1), num_shadows_limit=n, shadow_dimension=5,
                               shadow_intensity_range=(lo, hi), p=1.0)]
    if condition == "night":
        g = ((140, 160), (170, 190), (200, 230))[s]  # gamma > 1 darkens the mid-tones most, like low light
        return [
            A.RandomGamma(gamma_limit=g, p=1.0),
            A.RandomBrightnessContrast(brightness_limit=(-0.1 * severity, -0.08 * severity), contrast_limit=(-0.1, 0.0),
                                       p=1.0),
            A.RGBShift(r_shift_limit=(-10, -5), g_shift_limit=(-4, 0), b_shift_limit=(3, 8), p=1.0),
            A.GaussNoise(std_range=((0.01, 0.02), (0.015, 0.03), (0.02, 0.04))[s], p=1.0),  # sensor gain noise
        ]
    # overcast: flat, desaturated, slightly dim light
    return [
        A.RandomBrightnessContrast(brightness_limit=(-0.08 * severity, -0.04 * severity),
                                   contrast_limit=(-0.12 * severity, -0.08 * severity), p=1.0),
        A.HueSaturationValue(hue_shift_limit=(0, 0), sat_shift_limit=(-12 * severity, -8 * severity),
                             val_shift_limit=(0, 0), p=1.0),
    ]


@dataclass(frozen=True)
class WeatherRestyler:
    """Apply one condition at one severity to whole frames; labels pass through (clipped, never lost silently)."""

    condition: str
    severity: int = 2

    def __post_init__(self) -> None:
        condition_transforms(self.condition, self.severity, 640)  # validate the arguments up front

    def restyle(self, image: np.ndarray, annotations: Sequence[Annotation], rng: np.random.Generator) -> Restyled:
        A = _albumentations()
        H, W = image.shape[:2]
        seed = int(rng.integers(0, 2**31 - 1))
        # Boxes are clipped to the frame first (albumentations rejects boxes past the edge before clipping
        # in some transforms); a box with no area left inside the frame is reported, not silently dropped.
        clipped = [a.bbox.clip(W, H) for a in annotations]
        keep = [i for i, b in enumerate(clipped) if b.w > 0 and b.h > 0]
        with warnings.catch_warnings():
            # A weather-only Compose has no geometric transform for its bbox processor: that is the point here.
            warnings.filterwarnings("ignore", message="Got processor for bboxes")
            aug = A.Compose(condition_transforms(self.condition, self.severity, W),
                            bbox_params=A.BboxParams(format="coco", label_fields=["index"], clip=True, min_area=0.0,
                                                     min_visibility=0.0), seed=seed)
            out = aug(image=np.ascontiguousarray(image), bboxes=[clipped[i].xywh() for i in keep], index=keep)
        new_boxes = {int(i): Box(*map(float, b)) for b, i in zip(out["bboxes"], out["index"])}
        anns, rejected = [], []
        for i, a in enumerate(annotations):
            if i not in new_boxes:
                rejected.append({"annotation_id": a.id, "reason": "box lies outside the frame" if i not in keep
                                 else f"dropped by the {self.condition} transform's bbox processor"})
                continue
            b = new_boxes[i]
            # The processor round-trips boxes through normalised floats; a pixel-level effect moves nothing,
            # so the (clipped) input box is kept exactly rather than with 1e-7 px of float noise.
            if max(abs(u - v) for u, v in zip(b.xywh(), clipped[i].xywh())) < 1e-3:
                b = clipped[i]
            if b == a.bbox:
                anns.append(a)
            else:
                anns.append(Annotation(a.id, a.image_id, a.category_id, b, b.area, a.iscrowd, a.segmentation,
                                       a.provenance, {**dict(a.attributes), "clipped": True}))
        tags = {"condition": self.condition, "severity": self.severity,
                "condition_source": {"method": "albumentations", "version": A.__version__, "seed": seed}}
        return Restyled(np.ascontiguousarray(out["image"], dtype=np.uint8), tuple(anns), tags, (), tuple(rejected))
