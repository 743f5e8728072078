"""Crop inpainting vs one full-frame pipeline call on a 1600x900 frame, same UNet and steps; and
objects/s at batch 8 vs batch 1.

Two UNets:
- `--arch tiny` (default, ~1 min): the test suite's random-weight SD-inpainting pipeline with an 8x VAE,
  saved to a folder and loaded the way a user's checkpoint is. Its attention sits only on the coarse level.
- `--arch sd15` (~15 min on 2 CPU cores): the Stable Diffusion 1.5 inpainting UNet and VAE architectures
  with random weights (speed does not depend on the weights; nothing is downloaded). Self-attention at the
  finest latent level is what makes full frames expensive for the models users really run, so this is the
  figure to quote; the text encoder is a one-layer CLIP (same cost on both sides).

The full-frame baseline is the most favourable one for it: one call with the union of all object masks
and one prompt (a user with mixed categories would need one call per prompt). Its cost does not depend on
the number of objects; the crop path's grows with it (one native-size window per object), so the speed-up
is reported per object count. Targets (issue 5): crop >= 5x faster than full frame; batch 8 >= 3x
objects/s on a GPU (CPU recorded).

    python benchmarks/inpaint_speed.py [--arch tiny|sd15] [--steps 4] [--native 512] [--objects 1 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.datasets.io import load_image  # noqa: E402
from roadsynth.datasets.records import Box  # noqa: E402
from roadsynth.geometry.records import Placement  # noqa: E402


def sd15_pipeline():
    """SD 1.5 inpainting UNet + VAE layouts (diffusers' published configs), random weights, in memory."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.tiny_diffusers import _components

    torch.manual_seed(0)
    parts = _components(9, 2, 0)
    parts["unet"] = UNet2DConditionModel(
        sample_size=64, in_channels=9, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
    parts["vae"] = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, in_channels=3, out_channels=3, latent_channels=4,
        sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=1, vocab_size=1000,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=2, pad_token_id=1))
    return StableDiffusionInpaintPipeline(**parts)


def row(x: float, k: int) -> list[Placement]:
    return [Placement("deer", Box(x + 400 * i, 520, 60, 50), (x + 400 * i + 30, 570)) for i in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--native", type=int, default=512)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--no-batch", action="store_true", help="skip the batch 8 vs batch 1 measurement")
    args = ap.parse_args()
    import torch
    from PIL import Image

    from roadsynth.generators.inpaint_diffusers import InpaintInserter
    from tests.tiny_diffusers import save_tiny_inpaint_pipeline

    frame = load_image(next((ROOT / "tests/fixtures/nuscenes").glob("*CAM_FRONT__*.jpg")))[:896]  # 1600x896
    with tempfile.TemporaryDirectory() as tmp:
        model = sd15_pipeline() if args.arch == "sd15" else save_tiny_inpaint_pipeline(Path(tmp) / "tiny", vae_blocks=4)
        ins = InpaintInserter(model, {"deer": "a deer on the road"}, steps=args.steps, native=args.native,
                              batch_size=8, device="cpu")
        ins.insert(frame, row(300, 1), np.random.default_rng(0))  # warm-up

        crop_s = {}
        for k in args.objects:
            t = time.perf_counter()
            ins.insert(frame, row(300, k), np.random.default_rng(0))
            crop_s[k] = time.perf_counter() - t

        mask = np.zeros(frame.shape[:2], np.uint8)
        for p in row(300, max(args.objects)):
            x, y, w, h = (int(v) for v in p.box.xywh())
            mask[y : y + h, x : x + w] = 255
        t = time.perf_counter()
        ins.pipe(prompt="a deer on the road", negative_prompt=ins.negative, image=Image.fromarray(frame),
                 mask_image=Image.fromarray(mask), height=896, width=1600, num_inference_steps=args.steps,
                 guidance_scale=ins.guidance, output_type="np", generator=torch.Generator().manual_seed(0))
        full_s = time.perf_counter() - t

        rates = {}
        if not args.no_batch:
            many = [Placement("deer", Box(100 + 180 * k, 520, 60, 50), (130 + 180 * k, 570)) for k in range(8)]
            for bs in (1, 8):
                ins.batch_size = bs
                t = time.perf_counter()
                ins.insert(frame, many, np.random.default_rng(0))
                rates[bs] = len(many) / (time.perf_counter() - t)
    out = {
        "arch": args.arch, "frame": "1600x896", "steps": args.steps, "native": args.native, "device": "cpu",
        "full_frame_s": round(full_s, 2),
        "crop_inpaint_s": {str(k): round(v, 2) for k, v in crop_s.items()},
        "crop_speedup": {str(k): round(full_s / v, 2) for k, v in crop_s.items()}, "crop_speedup_target": 5.0,
    }
    if rates:
        out.update({"objects_per_s_batch1": round(rates[1], 3), "objects_per_s_batch8": round(rates[8], 3),
                    "batch8_over_batch1": round(rates[8] / rates[1], 2), "batch_target_on_gpu": 3.0})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
