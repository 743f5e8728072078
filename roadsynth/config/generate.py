"""The `generate` section: scene sources, cut-outs, insertion, appearance steps, placement."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from roadsynth.config.base import ReaderOptions, Section
from roadsynth.datasets.registry import FORMATS, FRAME_FORMATS, SCENE_FORMATS
from roadsynth.datasets.sampling import SceneFilter
from roadsynth.generators.conditions import CONDITIONS as WEATHER_CONDITIONS
from roadsynth.generators.harmonize import MatchConfig
from roadsynth.generators.realism import RealismLimits
from roadsynth.generators.restyle import Style
from roadsynth.geometry.placement import PlacementConfig


class CameraConfig(Section):
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


class EgoConfig(Section):
    """The ego vehicle in view (bonnet, dashboard): nothing is placed or drawn on it. Give one of:
    `polygon` (pixels, for a source from one camera), `bottom_frac` (the bottom fraction of every frame)
    or `masks` (a folder with one mask image per frame at the frame's relative path with a .png suffix,
    nonzero = ego; a frame without one has no ego vehicle in view, and its record says so)."""

    polygon: list[tuple[float, float]] | None = None
    bottom_frac: float | None = Field(None, gt=0, lt=1)
    masks: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> "EgoConfig":
        given = [k for k in ("polygon", "bottom_frac", "masks") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"`ego` needs exactly one of polygon, bottom_frac, masks, but got {given or 'none'}")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError(f"`ego.polygon` needs at least 3 points, but got {len(self.polygon)}")
        return self


class DetectorWeights(Section):
    """A detector you already have, used as it is (never trained): a weights file of `kind` (for yolo, any
    Ultralytics weights file), built by `detectors.make_detector` and loaded with `Detector.load`."""

    kind: Literal["yolo"] = "yolo"
    weights: Path
    imgsz: int = Field(640, ge=32, multiple_of=32)
    device: str = "cpu"
    min_score: float = Field(0.25, ge=0, le=1)


class PseudoLabelConfig(DetectorWeights):
    """Find the existing objects of unlabelled frames with detector weights you have (the bundled starter
    knows Bus, Car, Motorcycle, Truck). Found objects are never covered by inserted ones and are written as
    labels marked `pseudo-label` in their provenance (with the score)."""

    classes: dict[str, str] = Field(..., min_length=1, description="detector class -> output category; "
                                                                   "detections of other classes are ignored")
    min_score: float = Field(0.35, ge=0, le=1)


class SceneSource(ReaderOptions):
    """Where background road frames come from.

    `format: label_maps` is a folder of frames with per-pixel label PNGs (CamVid style): `road_values`
    give the drivable ground, and connected blobs of `object_values` become (approximate) boxes.
    """

    name: str
    format: Literal[SCENE_FORMATS]
    path: Path  # images folder (label_maps/folder); for a dataset format what its reader says (`Format.path`)
    images_root: Path | None = None  # the images folder, for the formats that need one (coco, bdd100k)
    label_maps: Path | None = None
    road_values: list[int] = [3]
    object_values: dict[int, str] = {}
    min_object_px: int = 150
    scene_regex: str | None = Field(None, description="regex; group 1 of a match on the file name = scene id")
    camera: CameraConfig = CameraConfig(horizon_frac=0.45)
    filter: SceneFilter = SceneFilter()
    ego: EgoConfig | None = Field(None, description="the ego vehicle in view (dashcam bonnet, dashboard)")
    ego_in_view: bool | None = Field(
        None, description="false: no part of the ego vehicle is in these frames (silences the warning that a "
                          "folder / COCO / YOLO source without `ego` gets); true requires `ego`")
    pseudo_labels: PseudoLabelConfig | None = Field(None, description="a detector for frames without labels")
    labels_complete: bool | None = Field(
        None, description="are the source's existing objects all labelled? Default: yes for coco/yolo, and for "
                          "label maps with `object_values`; no for plain folders (the output records it per image)")
    region_failure: Literal["skip", "fail", "lower-image"] = Field(
        "skip", description="when a frame's drivable region cannot be found or is implausible: skip the frame "
                            "(listed in the manifest with the reason), fail the run, or use the image below the "
                            "horizon minus the ego vehicle (recorded as such on every placement)")

    @model_validator(mode="after")
    def _check_ego(self) -> "SceneSource":
        if self.ego_in_view and self.ego is None:
            raise ValueError(f"scene source `{self.name}`: `ego_in_view: true` needs an `ego` mask (polygon, "
                             "bottom_frac or masks)")
        return self

    @property
    def ego_warning(self) -> str | None:
        """One line for a source whose frames may show the ego vehicle with nothing to say where: plain
        folders and box datasets give no drivable-area labels, so the ground estimate can run onto a bonnet."""
        if self.ego is not None or self.ego_in_view is False or not (
                self.format == "folder" or (self.format in FORMATS and FORMATS[self.format].any_camera)):
            return None
        return (f"scene source `{self.name}` ({self.format}) has no `ego` mask: if a bonnet or dashboard is in view, "
                "objects can be placed on it. Give `ego: {polygon: [[x, y], ...]}` (pixels), `{bottom_frac: 0.2}` or "
                "`{masks: FOLDER}`, or `ego_in_view: false` if no part of the car is in these frames")

    @property
    def labels_known(self) -> bool:
        """Whether every existing object of the source's frames has a label (from the source or a detector)."""
        if self.labels_complete is not None:
            return self.labels_complete
        if self.pseudo_labels is not None:
            return True
        return self.format not in FRAME_FORMATS or (self.format == "label_maps" and bool(self.object_values))


class CutoutSource(Section):
    """A source of real object cut-outs; `bank` is a folder saved by `CutoutBank.save`."""

    kind: Literal["msrc", "weizmann", "coco", "yolo", "bank"]
    path: Path
    images_dir: Path | None = None  # coco only
    categories: list[str] | None = None  # msrc / coco: which classes to take
    class_map: dict[str, str] | None = None  # yolo: dataset class name -> roadsynth category
    min_area: int = 1500
    segmenter: Path | None = Field(None, description="yolo: a box segmenter folder (`roadsynth train-segmenter`, e.g. "
                                                     "models/box_segmenter) that cuts the masks; default GrabCut")

    @model_validator(mode="after")
    def _segmenter_for_boxes(self) -> "CutoutSource":
        if self.segmenter is not None and self.kind != "yolo":
            raise ValueError(f"`segmenter` cuts masks from boxes, so only a `yolo` source takes one, but got kind "
                             f"{self.kind!r} (whose masks are its own)")
        return self


class InpaintConfig(Section):
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
    mask_shape: Literal["box", "ellipse", "cutout"] | None = Field(
        None, description="the region repainted: the cut-out's silhouette (cutout; the default when the run has "
                          "cut-out sources), an ellipse (the default without) or the whole box")
    feather_px: float = Field(3.0, ge=0, le=50)
    device: str = "auto"


class DetectorCheckConfig(DetectorWeights):
    """Score each inserted object with a detector you trust (weights you have, e.g. trained on real data of
    these classes); scores are stored in the provenance, objects are kept."""

    class_map: dict[str, str] = Field({}, description="inserted category -> the detector's class name (default: same)")
    min_iou: float = Field(0.5, ge=0, le=1)


class InsertConfig(Section):
    method: Literal["paste", "inpaint"] = "paste"
    inpaint: InpaintConfig | None = None
    detector_check: DetectorCheckConfig | None = None
    categories: dict[str, float] = Field(..., description="category -> sampling weight")
    objects_per_image: tuple[int, int] = (1, 2)
    blend: Literal["feather", "poisson", "none"] = "feather"
    feather_px: float = Field(2.0, ge=0, le=50)
    match: MatchConfig | None = Field(MatchConfig(), description="appearance matching of pasted objects to the "
                                                                 "scene (tone, colour, sharpness, noise, JPEG, "
                                                                 "alpha); null pastes them as cut")
    realism_limits: RealismLimits | None = Field(None, description="reject objects whose realism scores stay out "
                                                                   "of these bounds after matching")
    shadow: bool = True
    cutout_min_quality: float | None = Field(
        None, ge=0, le=1, description="refuse cut-outs whose mask quality score (generators/mask_score.py: colour "
                                      "separation from the background ring, background leak, reach of the box "
                                      "sides, fill) is below this; the manifest counts them (`cutouts_refused`)")
    same_objects_as: Path | None = Field(
        None, description="a generated dataset's annotations.json (same scenes, seed and n_images): each frame "
                          "inserts the objects that dataset's frame holds (categories and cut-outs), placed by this "
                          "run's placement and re-placed until all are in; the experiment's real+random arm uses it")

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
            missing = sorted({c for c in self.categories if c.lower() not in {p.lower() for p in self.inpaint.prompts}})
            if missing:
                raise ValueError(f"`inpaint.prompts` has no prompt for {missing}")
        return self


class DiffusionWeatherConfig(Section):
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


class WeatherConfig(Section):
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


class VehicleRestyleConfig(Section):
    """Restyle existing vehicles inside their masks: `paint` (weight-free recolour) or `diffusion` (a local
    img2img checkpoint with a 4-channel UNet, optional ControlNet)."""

    method: Literal["paint", "diffusion"] = "paint"
    model: Path | None = None
    styles: list[Style] = Field(..., min_length=1)
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


class GenerateConfig(Section):
    seed: int = Field(0, ge=0)
    scenes: list[SceneSource]
    n_images: int = Field(50, ge=1, le=10_000_000, description="more than 10 million: split into several runs")
    cutouts: list[CutoutSource] = []
    insert: InsertConfig | None = Field(None, description="objects to insert; None = restyle/weather only")
    restyle: VehicleRestyleConfig | None = None
    weather: WeatherConfig | None = None
    placement: PlacementConfig = PlacementConfig()
    # A chunk holds its frames in memory until their objects are inserted (one batch for a diffusion inserter).
    chunk_size: int = Field(16, ge=1, le=1024, description="frames per chunk: one task, one resume unit")
    jpeg_quality: int = Field(92, ge=50, le=100)
    max_image_pixels: int = Field(100_000_000, ge=10_000, description="larger frames are refused (one line each)")

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        if self.insert is None and self.restyle is None and self.weather is None:
            raise ValueError("`generate` must have at least one of `insert`, `restyle`, `weather`")
        return self
