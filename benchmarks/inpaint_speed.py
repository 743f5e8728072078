"""Crop inpainting vs one full-frame pipeline call on a 1600x900 frame, same UNet and steps; and
objects/s at batch 8 vs batch 1.

Uses a tiny random-weight SD-inpainting pipeline whose VAE downsamples 8x like Stable Diffusion's (so a
full 1600x896 frame fits in memory on a CPU); the ratios, not the absolute times, are the point.
Targets (issue 5): crop >= 5x faster than full frame; batch 8 >= 3x objects/s on a GPU (CPU recorded).

    python benchmarks/inpaint_speed.py [--steps 4] [--native 512]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--native", type=int, default=512)
    args = ap.parse_args()
    import torch
    from PIL import Image

    from roadsynth.generators.inpaint_diffusers import InpaintInserter
    from tests.tiny_diffusers import save_tiny_inpaint_pipeline

    frame = load_image(next((ROOT / "tests/fixtures/nuscenes").glob("*CAM_FRONT__*.jpg")))[:896]  # 1600x896
    placements = [Placement("deer", Box(x, 520, 60, 50), (x + 30, 570)) for x in (300, 700, 1100)]
    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_inpaint_pipeline(Path(tmp) / "tiny", vae_blocks=4)
        ins = InpaintInserter(model, {"deer": "a deer on the road"}, steps=args.steps, native=args.native,
                              batch_size=8, device="cpu")
        pipe = ins.pipe

        ins.insert(frame, placements[:1], np.random.default_rng(0))  # warm-up
        t = time.perf_counter()
        ins.insert(frame, placements, np.random.default_rng(0))
        crop_s = time.perf_counter() - t

        mask = np.zeros(frame.shape[:2], np.uint8)
        for p in placements:
            x, y, w, h = (int(v) for v in p.box.xywh())
            mask[y : y + h, x : x + w] = 255
        t = time.perf_counter()
        pipe(prompt="a deer on the road", image=Image.fromarray(frame), mask_image=Image.fromarray(mask),
             height=896, width=1600, num_inference_steps=args.steps, output_type="np",
             generator=torch.Generator().manual_seed(0))
        full_s = time.perf_counter() - t

        many = [Placement("deer", Box(100 + 180 * k, 520, 60, 50), (130 + 180 * k, 570)) for k in range(8)]
        rates = {}
        for bs in (1, 8):
            ins.batch_size = bs
            t = time.perf_counter()
            ins.insert(frame, many, np.random.default_rng(0))
            rates[bs] = len(many) / (time.perf_counter() - t)
    print(json.dumps({
        "frame": "1600x896", "objects": len(placements), "steps": args.steps, "native": args.native, "device": "cpu",
        "crop_inpaint_s": round(crop_s, 2), "full_frame_s": round(full_s, 2),
        "crop_speedup": round(full_s / crop_s, 2), "crop_speedup_target": 5.0,
        "objects_per_s_batch1": round(rates[1], 3), "objects_per_s_batch8": round(rates[8], 3),
        "batch8_over_batch1": round(rates[8] / rates[1], 2), "batch_target_on_gpu": 3.0,
    }, indent=2))


if __name__ == "__main__":
    main()
