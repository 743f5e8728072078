"""Diffusion bbox inpainting (diffusers): the only module that imports torch/diffusers for insertion.

Each object is generated in a context window around its box, resized to the model's native size (so
small boxes are upsampled and far objects get the model's full resolution), batched across objects and
frames, and pasted back ONLY inside its feathered shape mask: every pixel outside the mask is
bit-identical to the input, whatever the VAE does to the rest of the window. The verifier then refits a
tight box from the pixels that really changed, and rejects objects that came out empty or spilled.

Weights are never downloaded: the pipeline loads from a local folder (`save_pretrained` layout, e.g. a
downloaded stable-diffusion-inpainting checkpoint) or a single checkpoint file plus its local config.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import cv2
import numpy as np

from roadsynth.datasets.records import Box, Provenance
from roadsynth.generators.base import Insertion, Occluders, Rejection
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.generators.masks import ellipse_mask
from roadsynth.generators.occlusion import draw_far_to_near, hide_occluded
from roadsynth.generators.verify import verify_object
from roadsynth.geometry.records import Placement

MaskShape = Literal["box", "ellipse", "cutout"]


def apply_offline_defaults() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_NO_ADVISORY_WARNINGS", "1")


def resolve_device(device: str = "auto") -> tuple[str, Any]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32  # half precision on CPU is slower and unsupported by several kernels
    return device, dtype


def local_model_path(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"`model` must be a local diffusers folder or checkpoint file, but {model!r} does not exist "
            "(roadsynth never downloads weights; download the checkpoint yourself and pass its path)")
    return path


def single_file_config(path: Path, config: str | None) -> str:
    if config is None:
        raise ValueError(f"{path}: a single checkpoint file needs `config`: a local folder with the pipeline's "
                         "model_index.json and component configs (diffusers would otherwise fetch them)")
    return config


def finish_pipeline(pipe: Any, device: str) -> Any:
    """No safety checker, on `device`, channels_last UNet on CUDA, no progress bars."""
    import torch

    if getattr(pipe, "safety_checker", None) is not None:
        pipe.safety_checker = None  # synthetic training data: a blacked-out frame is a silent label error
    pipe = pipe.to(device)
    if device.startswith("cuda"):
        pipe.unet.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores; SDPA is the default
    pipe.set_progress_bar_config(disable=True)
    return pipe


_PIPE_LOCKS: dict[int, threading.Lock] = {}
_PIPE_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipe: Any) -> threading.Lock:
    """The lock of one pipeline object. A diffusers pipeline keeps per-call state (the scheduler's timesteps and
    step index, the guidance scale), and a process's pipeline is cached and shared: the threads of a threads task
    runner must take turns on it, or their denoising loops advance each other's schedulers."""
    with _PIPE_LOCKS_GUARD:
        return _PIPE_LOCKS.setdefault(id(pipe), threading.Lock())


def check_steps(steps: int, strength: float) -> None:
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, but got {steps}")
    if strength > 0 and int(steps * strength) < 1:  # diffusers runs int(steps * strength) denoising steps
        raise ValueError(f"`strength` x `steps` must give at least one denoising step, but got {strength} x {steps}")


def run_batched(n: int, batch_size: int, call: Callable[[range], list]) -> tuple[list, int]:
    """`call(indices)` over consecutive batches of at most `batch_size` items, in order; on CUDA out-of-memory
    the batch is halved and retried. Returns the concatenated results and the batch size that fitted."""
    import torch

    out: list = []
    batch, k = max(batch_size, 1), 0
    while k < n:
        idx = range(k, min(k + batch, n))
        try:
            out += call(idx)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            torch.cuda.empty_cache()
            batch = max(len(idx) // 2, 1)
            continue
        k += len(idx)
    return out, batch


@lru_cache(maxsize=2)
def load_inpaint_pipeline(model: str, device: str = "auto", config: str | None = None):
    """Load once per process (a worker keeps its pipeline for its lifetime)."""
    path = local_model_path(model)
    apply_offline_defaults()
    import torch
    from diffusers import AutoPipelineForInpainting, StableDiffusionInpaintPipeline

    device, dtype = resolve_device(device)
    # float32 is the default: passing it would only trip the torch_dtype -> dtype rename warning.
    kw = {} if dtype == torch.float32 else {"torch_dtype": dtype}
    if path.is_dir():
        pipe = AutoPipelineForInpainting.from_pretrained(path, local_files_only=True, **kw)
    else:
        pipe = StableDiffusionInpaintPipeline.from_single_file(path, config=single_file_config(path, config),
                                                               local_files_only=True, **kw)
    return finish_pipeline(pipe, device)


@dataclass(frozen=True)
class _Job:
    frame: int  # index of the frame in the call
    index: int  # placement index within the frame
    window: tuple[int, int, int, int]  # x1, y1, x2, y2 in the frame
    box: Box  # object box in window coordinates
    mask: np.ndarray  # window-sized bool shape mask
    prompt: str
    seed: int


class InpaintInserter:
    def __init__(self, model: str | Path | Any, prompts: Mapping[str, str], *, steps: int = 30,
                 guidance_scale: float = 7.5, strength: float = 1.0, native: int | None = None,
                 context: float = 2.0, min_window_px: int = 96, batch_size: int = 4, mask_shape: MaskShape | None = None,
                 bank: CutoutBank | None = None, feather_px: float = 3.0, negative_prompt: str = "blurry, deformed, cartoon",
                 device: str = "auto", config: str | Path | None = None, min_visible_px: int = 40):
        from roadsynth.config import InpaintConfig
        from roadsynth.config.base import check_limits

        check_limits(InpaintConfig, strength=strength, context=context, mask_shape=mask_shape, steps=steps,
                     batch_size=batch_size, feather_px=feather_px)  # the limits the config declares
        check_steps(steps, strength)
        if mask_shape is None:  # the cut-outs' silhouettes where there is a bank to take them from
            mask_shape = "cutout" if bank is not None else "ellipse"
        if mask_shape == "cutout" and bank is None:
            raise ValueError("`mask_shape='cutout'` needs a cut-out `bank` for the silhouettes")
        config = str(config) if config is not None else None
        self.pipe = load_inpaint_pipeline(str(model), device, config) if isinstance(model, (str, Path)) else model
        self.model_id = str(model) if isinstance(model, (str, Path)) else getattr(self.pipe, "name_or_path", "pipeline")
        self.prompts = {k.lower(): v for k, v in prompts.items()}
        self.steps, self.guidance, self.strength = steps, guidance_scale, strength
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        self.native = native or int(self.pipe.unet.config.sample_size * scale)
        if self.native % 8:
            raise ValueError(f"`native` must be a multiple of 8, but got {self.native}")
        self.context, self.min_window_px, self.batch_size = context, min_window_px, batch_size
        self.mask_shape, self.bank, self.feather_px, self.negative = mask_shape, bank, feather_px, negative_prompt
        self.min_visible_px = min_visible_px

    @classmethod
    def from_config(cls, d, bank: CutoutBank | None) -> "InpaintInserter":
        """From an `InpaintConfig` (roadsynth.config): its fields of this constructor's parameter names."""
        from roadsynth.config.base import section_kwargs

        return cls(bank=bank, **section_kwargs(d, cls))

    # -- Inserter protocol ---------------------------------------------------------------------------
    def insert(self, image: np.ndarray, placements: Sequence[Placement], rng: np.random.Generator, *,
               occluders: Occluders | None = None) -> tuple[np.ndarray, list[Insertion | Rejection]]:
        [(out, results)] = self.insert_many([image], [placements], [rng], [occluders or {}])
        return out, results

    def insert_many(self, images: Sequence[np.ndarray], placements: Sequence[Sequence[Placement]],
                    rngs: Sequence[np.random.Generator], occluders: Sequence[Occluders] | None = None,
                    jpeg_qualities: Sequence[int | None] | None = None,
                    ) -> list[tuple[np.ndarray, list[Insertion | Rejection]]]:
        """Several frames at once: crops of all their objects share the pipeline batches.

        Each frame's objects get their seeds from that frame's `rng`, so they come out the same however
        frames are grouped into calls (a resumed or re-chunked run reproduces them). The model draws in
        the scene's context, so `jpeg_qualities` are not used.
        """
        jobs: dict[tuple[int, int], _Job] = {}
        results: list[list[Insertion | Rejection | None]] = [[None] * len(p) for p in placements]
        for f, (img, ps, rng) in enumerate(zip(images, placements, rngs)):
            seeds = rng.integers(0, 2**31 - 1, size=len(ps))
            for i, p in enumerate(ps):
                prompt = self.prompts.get(p.category.lower())
                if prompt is None:
                    results[f][i] = Rejection(p, f"no prompt for category `{p.category}`")
                    continue
                job = self._job(img, p, f, i, prompt, int(seeds[i]), rng)
                if job is None:
                    results[f][i] = Rejection(p, "object lies entirely outside the image")
                else:
                    jobs[(f, i)] = job
        generated = dict(zip(jobs, self._run(images, list(jobs.values()))))
        outs = [img.copy() for img in images]
        occluders = occluders or [{}] * len(images)
        for f, ps in enumerate(placements):
            draw_far_to_near(ps, results[f], lambda i, f=f: self._paste(outs[f], ps[i], jobs[(f, i)], generated[(f, i)],
                                                                         occluders[f]), self.min_visible_px)
        return [(o, r) for o, r in zip(outs, results)]  # type: ignore[misc]

    # -- steps -------------------------------------------------------------------------------------
    def _job(self, img: np.ndarray, p: Placement, frame: int, index: int, prompt: str, seed: int,
             rng: np.random.Generator) -> _Job | None:
        H, W = img.shape[:2]
        b = p.box
        side = int(math.ceil(max(b.w, b.h) * self.context))
        side = min(max(side, self.min_window_px), W, H)
        cx, cy = b.x + b.w / 2, b.y + b.h / 2
        x1 = int(np.clip(round(cx - side / 2), 0, W - side))
        y1 = int(np.clip(round(cy - side / 2), 0, H - side))
        local = Box(b.x - x1, b.y - y1, b.w, b.h)
        mask = np.zeros((side, side), bool)
        bx1, by1 = int(np.floor(local.x)), int(np.floor(local.y))
        bx2, by2 = int(np.ceil(local.x2)), int(np.ceil(local.y2))
        shape = self._shape(by2 - by1, bx2 - bx1, p, rng)
        sx1, sy1 = max(-bx1, 0), max(-by1, 0)
        tx1, ty1, tx2, ty2 = max(bx1, 0), max(by1, 0), min(bx2, side), min(by2, side)
        if tx1 >= tx2 or ty1 >= ty2:
            return None
        mask[ty1:ty2, tx1:tx2] = shape[sy1 : sy1 + ty2 - ty1, sx1 : sx1 + tx2 - tx1]
        return _Job(frame, index, (x1, y1, x1 + side, y1 + side), local, mask, prompt, seed)

    def _shape(self, h: int, w: int, p: Placement, rng: np.random.Generator) -> np.ndarray:
        if self.mask_shape == "box":
            return np.ones((h, w), bool)
        if self.mask_shape == "ellipse":
            return ellipse_mask(h, w)
        cut = self.bank.get(p.params.get("cutout_id", "")) or self.bank.sample(p.category, rng)
        if cut is None:
            return ellipse_mask(h, w)
        return cv2.resize(cut.alpha, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5

    def _run(self, images: Sequence[np.ndarray], jobs: list[_Job]) -> list[np.ndarray]:
        """Pipeline outputs (window-sized uint8 RGB), in job order; halves the batch on CUDA OOM."""
        import torch
        from PIL import Image

        def call(idx: range) -> list[np.ndarray]:
            chunk = [jobs[i] for i in idx]
            crops = []
            for j in chunk:
                x1, y1, x2, y2 = j.window
                crop = images[j.frame][y1:y2, x1:x2]
                crops.append(cv2.resize(crop, (self.native, self.native), interpolation=cv2.INTER_CUBIC))
            masks = [Image.fromarray(cv2.resize(j.mask.astype(np.uint8) * 255, (self.native, self.native),
                                                interpolation=cv2.INTER_NEAREST)) for j in chunk]
            with pipeline_lock(self.pipe):
                result = self.pipe(
                    prompt=[j.prompt for j in chunk], negative_prompt=[self.negative] * len(chunk),
                    image=[Image.fromarray(c) for c in crops], mask_image=masks, height=self.native, width=self.native,
                    num_inference_steps=self.steps, guidance_scale=self.guidance, strength=self.strength,
                    generator=[torch.Generator("cpu").manual_seed(j.seed) for j in chunk], output_type="np",
                )
            out = []
            for j, gen in zip(chunk, result.images):
                size = j.window[2] - j.window[0]
                img = np.clip(np.round(np.asarray(gen) * 255), 0, 255).astype(np.uint8)
                out.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
            return out

        out, self.last_batch_size = run_batched(len(jobs), self.batch_size, call)  # what fit, for the run summary
        return out

    def _paste(self, out: np.ndarray, p: Placement, job: _Job, gen: np.ndarray,
               occluders: Occluders) -> Insertion | Rejection:
        x1, y1, x2, y2 = job.window
        before = out[y1:y2, x1:x2].copy()
        mask = hide_occluded(job.mask.copy(), (x1, y1), occluders)
        # Feather inwards only: alpha is exactly 0 outside the mask, so outside pixels stay bit-identical.
        a = mask.astype(np.float32)
        if self.feather_px > 0:
            a = cv2.GaussianBlur(a, (0, 0), self.feather_px / 2) * mask
        comp = before.astype(np.float32) * (1 - a[..., None]) + gen.astype(np.float32) * a[..., None]
        after = np.clip(np.round(comp), 0, 255).astype(np.uint8)
        verdict = verify_object(before, after, mask, job.box, min_pixels=self.min_visible_px)
        prov = Provenance(method="inpaint", source=self.model_id, seed=job.seed, params={
            "prompt": job.prompt, "negative_prompt": self.negative, "steps": self.steps, "guidance_scale": self.guidance,
            "strength": self.strength, "mask_shape": self.mask_shape, "window": list(job.window), "native": self.native,
        })
        if not verdict.ok or verdict.tight_box is None:
            return Rejection(p, verdict.reason, verdict.scores)
        out[y1:y2, x1:x2] = after
        tb = verdict.tight_box
        return Insertion(p, Box(tb.x + x1, tb.y + y1, tb.w, tb.h), mask, job.window, prov, verdict.scores,
                         mask_is_silhouette=self.mask_shape == "cutout")
