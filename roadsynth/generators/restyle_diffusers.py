"""Diffusion restyling (diffusers img2img, optional ControlNet): vehicles inside their masks, whole-frame weather.

Vehicle restyle: each selected vehicle gets a square context window, resized to the model's native
size, denoised from its own pixels at `strength` (0.7 keeps pose and outline, changes make and paint),
and pasted back ONLY inside its mask (COCO polygon, else a GrabCut silhouette in the box, else the box),
feathered inwards, so every pixel outside the mask is bit-identical to the input. Each edit is measured:
the edge maps inside the mask before vs after (boundary F-score, `verify.edge_fscore`) say whether the
outline survived; an edit below `min_edge_fscore`, one that grew new texture (edge density x `max_edge_ratio`)
or that barely changed anything is refused and the vehicle keeps
its pixels and label. A style may change the category (e.g. "an ambulance" -> ambulance).

Weather by diffusion: the whole frame is styled at a reduced working size and upsampled, and the
frame's own high-frequency detail (frame - blur(frame)) is added back, so edges stay where they were.

Weights are never downloaded. An img2img pipeline needs a 4-channel UNet (a text-to-image checkpoint);
an inpainting checkpoint's 9-channel UNet cannot be used here.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Annotation, Provenance
from roadsynth.generators.base import Restyled
from roadsynth.generators.inpaint_diffusers import (
    apply_offline_defaults,
    check_steps,
    finish_pipeline,
    local_model_path,
    pipeline_lock,
    resolve_device,
    run_batched,
    single_file_config,
)
from roadsynth.generators.restyle import Style, VehicleSelection, vehicle_mask
from roadsynth.generators.verify import edge_scores


@lru_cache(maxsize=2)
def load_img2img_pipeline(model: str, device: str = "auto", controlnet: str | None = None, config: str | None = None):
    """Img2img (or ControlNet img2img) pipeline from a local folder or single file; loaded once per process."""
    path = local_model_path(model)
    if controlnet is not None and not Path(controlnet).expanduser().exists():
        raise FileNotFoundError(f"`controlnet` must be a local diffusers ControlNet folder, but {controlnet!r} does not exist")
    apply_offline_defaults()
    import torch
    from diffusers import (
        AutoPipelineForImage2Image,
        ControlNetModel,
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionImg2ImgPipeline,
    )

    device, dtype = resolve_device(device)
    kw = {} if dtype == torch.float32 else {"torch_dtype": dtype}
    cn = ControlNetModel.from_pretrained(Path(controlnet).expanduser(), local_files_only=True, **kw) if controlnet else None
    if path.is_dir():
        if cn is not None:
            pipe = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(path, controlnet=cn, local_files_only=True, **kw)
        else:
            pipe = AutoPipelineForImage2Image.from_pretrained(path, local_files_only=True, **kw)
    else:
        cls = StableDiffusionControlNetImg2ImgPipeline if cn is not None else StableDiffusionImg2ImgPipeline
        extra = {"controlnet": cn} if cn is not None else {}
        pipe = cls.from_single_file(path, config=single_file_config(path, config), local_files_only=True, **extra, **kw)
    in_ch = pipe.unet.config.in_channels
    if in_ch != 4:
        raise ValueError(f"{path}: img2img needs a 4-channel UNet, but this checkpoint's UNet has {in_ch} input channels "
                         "(an inpainting checkpoint?); use a text-to-image checkpoint for restyling")
    return finish_pipeline(pipe, device)


class _Img2Img:
    """Shared pipeline call: batches of native-size crops, per-item seeds, OOM -> halve the batch."""

    def __init__(self, model: str | Path | Any, *, steps: int, guidance_scale: float, strength: float,
                 native: int | None, batch_size: int, negative_prompt: str, device: str, controlnet: str | None,
                 config: str | None):
        if not 0 < strength <= 1:
            raise ValueError(f"`strength` must be in (0, 1], but got {strength}")
        check_steps(steps, strength)
        if isinstance(model, (str, Path)):
            self.pipe = load_img2img_pipeline(str(model), device, controlnet, config)
        else:
            self.pipe = model
        self.model_id = str(model) if isinstance(model, (str, Path)) else getattr(self.pipe, "name_or_path", "pipeline")
        self.controlnet = controlnet is not None or hasattr(self.pipe, "controlnet")
        self.steps, self.guidance, self.strength = steps, guidance_scale, strength
        self.native = native or int(self.pipe.unet.config.sample_size * getattr(self.pipe, "vae_scale_factor", 8))
        if self.native % 8:
            raise ValueError(f"`native` must be a multiple of 8, but got {self.native}")
        self.batch_size, self.negative = max(batch_size, 1), negative_prompt

    def run(self, crops: list[np.ndarray], prompts: list[str], seeds: list[int],
            size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Styled crops at `size` (w, h; default native square), in order."""
        import torch
        from PIL import Image

        w, h = size or (self.native, self.native)

        def call(idx: range) -> list[np.ndarray]:
            imgs = [cv2.resize(crops[i], (w, h), interpolation=cv2.INTER_AREA) for i in idx]
            kw: dict[str, Any] = {}
            if self.controlnet:  # the outline the model must keep, from the crop itself
                kw["control_image"] = [Image.fromarray(np.repeat(cv2.Canny(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), 60, 160)
                                                                 [..., None], 3, axis=2)) for im in imgs]
            with pipeline_lock(self.pipe):
                res = self.pipe(prompt=[prompts[i] for i in idx], negative_prompt=[self.negative] * len(idx),
                                image=[Image.fromarray(im) for im in imgs], strength=self.strength,
                                num_inference_steps=self.steps, guidance_scale=self.guidance, output_type="np",
                                generator=[torch.Generator("cpu").manual_seed(seeds[i]) for i in idx], **kw)
            return [np.clip(np.round(np.asarray(g) * 255), 0, 255).astype(np.uint8) for g in res.images]

        return run_batched(len(crops), self.batch_size, call)[0]


class VehicleRestyler(_Img2Img):
    """Restyle selected vehicles inside their masks; geometry and background kept, failures refused."""

    def __init__(self, model: str | Path | Any, styles: Sequence[Style], category_names: Mapping[int, str], *,
                 categories: Sequence[str] = ("car",), min_box_px: int = 24, max_objects: int = 3,
                 strength: float = 0.7, steps: int = 30, guidance_scale: float = 7.5, native: int | None = None,
                 context: float = 1.3, batch_size: int = 4, feather_px: float = 2.0, min_edge_fscore: float = 0.35,
                 max_edge_ratio: float = 2.5,
                 min_change: float = 4.0, negative_prompt: str = "blurry, deformed, cartoon", device: str = "auto",
                 controlnet: str | None = None, config: str | None = None):
        super().__init__(model, steps=steps, guidance_scale=guidance_scale, strength=strength, native=native,
                         batch_size=batch_size, negative_prompt=negative_prompt, device=device, controlnet=controlnet,
                         config=config)
        if not 0 <= min_edge_fscore <= 1:
            raise ValueError(f"`min_edge_fscore` must be in [0, 1], but got {min_edge_fscore}")
        if context < 1:
            raise ValueError(f"`context` must be >= 1, but got {context}")
        self.selection = VehicleSelection(styles, category_names, categories, min_box_px, max_objects)
        self.context, self.feather_px, self.min_change = context, feather_px, min_change
        self.min_edge_fscore, self.max_edge_ratio = min_edge_fscore, max_edge_ratio

    def restyle(self, image: np.ndarray, annotations: Sequence[Annotation], rng: np.random.Generator) -> Restyled:
        H, W = image.shape[:2]
        sel = self.selection
        jobs = []
        for a in sel.select(annotations):
            style = sel.styles[int(rng.integers(len(sel.styles)))]
            seed = int(rng.integers(0, 2**31 - 1))
            side = min(max(int(math.ceil(max(a.bbox.w, a.bbox.h) * self.context)), 32), W, H)
            cx, cy = a.bbox.center
            x1 = int(np.clip(round(cx - side / 2), 0, W - side))
            y1 = int(np.clip(round(cy - side / 2), 0, H - side))
            mask, how = vehicle_mask(image, a)
            jobs.append((a, style, seed, (x1, y1, x1 + side, y1 + side), mask, how))
        crops = [image[y1:y2, x1:x2] for *_, (x1, y1, x2, y2), _, _ in jobs]
        styled = self.run(crops, [j[1].prompt for j in jobs], [j[2] for j in jobs])
        out = image.copy()
        changed = np.zeros((H, W), bool)
        by_id, edits, rejected = {a.id: a for a in annotations}, [], []
        for (a, style, seed, (x1, y1, x2, y2), mask, how), gen in zip(jobs, styled):
            gen = cv2.resize(gen, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
            m = mask[y1:y2, x1:x2]
            before = out[y1:y2, x1:x2]
            alpha = m.astype(np.float32)
            if self.feather_px > 0:  # inwards only: alpha is exactly 0 outside the mask
                alpha = cv2.GaussianBlur(alpha, (0, 0), self.feather_px / 2) * m
            after = np.clip(np.round(before * (1 - alpha[..., None]) + gen * alpha[..., None]), 0, 255).astype(np.uint8)
            fscore, density = edge_scores(before, after, m)
            scores = {"edge_fscore": round(fscore, 3), "edge_density_ratio": round(density, 2),
                      "mean_change_in_mask": round(float(cv2.absdiff(before, after)[m].mean()) if m.any() else 0.0, 2),
                      "mask_pixels": int(m.sum()), "mask_method": how}
            if scores["edge_fscore"] < self.min_edge_fscore:
                rejected.append({"annotation_id": a.id, "style": style.name, "scores": scores,
                                 "reason": f"geometry drift: edge F-score {scores['edge_fscore']} < {self.min_edge_fscore}"})
                continue
            if scores["edge_density_ratio"] > self.max_edge_ratio:
                rejected.append({"annotation_id": a.id, "style": style.name, "scores": scores,
                                 "reason": f"new texture: {scores['edge_density_ratio']}x the edges inside the mask "
                                           f"> {self.max_edge_ratio}x"})
                continue
            if scores["mean_change_in_mask"] < self.min_change:
                rejected.append({"annotation_id": a.id, "style": style.name, "scores": scores,
                                 "reason": f"unchanged: mean change {scores['mean_change_in_mask']} < {self.min_change}"})
                continue
            out[y1:y2, x1:x2] = after
            changed[y1:y2, x1:x2] |= m
            prov = Provenance(method="restyle", source=self.model_id, seed=seed, params={
                "style": style.name, "prompt": style.prompt, "strength": self.strength, "steps": self.steps,
                "guidance_scale": self.guidance, "controlnet": self.controlnet, "window": [x1, y1, x2, y2],
                "native": self.native, "original_category": sel.names.get(a.category_id), **scores})
            by_id[a.id] = sel.relabel(a, style, prov)
            edits.append({"annotation_id": a.id, "style": style.name, "category": sel.names.get(by_id[a.id].category_id),
                          **scores})
        tags = {"restyled_vehicles": len(edits)} if edits else {}
        return Restyled(out, tuple(by_id[a.id] for a in annotations), tags, tuple(edits), tuple(rejected), changed)


class DiffusionWeather(_Img2Img):
    """Whole-frame condition by img2img at a reduced working size, plus the frame's own detail."""

    def __init__(self, model: str | Path | Any, condition: str, prompt: str, *, strength: float = 0.45,
                 steps: int = 30, guidance_scale: float = 7.5, work_px: int = 512, detail: float = 0.7,
                 negative_prompt: str = "blurry, cartoon, painting", device: str = "auto", controlnet: str | None = None,
                 config: str | None = None):
        super().__init__(model, steps=steps, guidance_scale=guidance_scale, strength=strength, native=None,
                         batch_size=1, negative_prompt=negative_prompt, device=device, controlnet=controlnet,
                         config=config)
        if not 0 <= detail <= 1:
            raise ValueError(f"`detail` must be in [0, 1], but got {detail}")
        self.condition, self.prompt, self.work_px, self.detail = condition, prompt, work_px, detail

    def restyle(self, image: np.ndarray, annotations: Sequence[Annotation], rng: np.random.Generator) -> Restyled:
        H, W = image.shape[:2]
        s = self.work_px / max(H, W)
        w, h = max(int(round(W * s / 8)) * 8, 8), max(int(round(H * s / 8)) * 8, 8)
        seed = int(rng.integers(0, 2**31 - 1))
        [gen] = self.run([image], [self.prompt], [seed], size=(w, h))
        up = cv2.resize(gen, (W, H), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        # The working size loses fine detail; put the frame's own back (what a blur at that scale removes).
        sigma = max(1.0 / s / 2, 0.5)
        hf = image.astype(np.float32) - cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
        out = np.clip(np.round(up + self.detail * hf), 0, 255).astype(np.uint8)
        tags = {"condition": self.condition, "condition_source": {
            "method": "diffusion", "model": self.model_id, "prompt": self.prompt, "strength": self.strength,
            "seed": seed, "work_size": [w, h]}}
        return Restyled(out, tuple(annotations), tags)
