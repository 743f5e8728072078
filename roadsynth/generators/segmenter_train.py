"""Train the box segmenter (generators/box_segmenter.py) on instance masks, and write the folder that
roadsynth loads it from: weights.safetensors, manifest.json, config.yaml, training_curve.csv.

    roadsynth train-segmenter configs/box_segmenter.yaml --out models/box_segmenter

Each instance is cut once around its tight box with a wide margin (`STORE_MARGIN`), and every batch
draws its training crops from those by one affine warp: a margin in [0.10, 0.20] (the segmenter sees
0.15), box edges moved by ~2 % (a person's box is rarely pixel-tight), mirrored half the time, with
gain, grey and blur changes (small boxes are enlarged, so they look blurred). The loss is binary cross-
entropy plus soft Dice. After training the threshold is chosen on the `tuning` instances, and the model
is scored on the `validation` sources through the same path generation uses (`BoxSegmenter` on the whole
photo), with every validation photo that is a near-duplicate of a training photo left out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from roadsynth.config.segmenter import SegmenterConfig
from roadsynth.datasets.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from roadsynth.generators.box_segmenter import MANIFEST, WEIGHTS, BoxSegmenter, build_unet, certainty, standardise
from roadsynth.generators.masks import learned_mask, mask_iou
from roadsynth.generators.segmenter_data import MARGIN, box_crop, iter_instances, tight_box

STORE_MARGIN = 0.35
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def _key(name: str, sha256: str) -> tuple[str, str]:
    # The same photo read from two folders (the bundled Weizmann horses are also in ../shared) is one instance.
    return sha256, name.split("#", 1)[1] if "#" in name else ""


def gather(sources: list[dict], size: int, min_area: int, keep_photos: int = 0, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray, list[dict], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Crops (N x S x S x 3 uint8), masks (N x S x S uint8, 0-255), one record per instance, and the whole
    photo and mask of `keep_photos` animal instances drawn at random (the tuning instances)."""
    from roadsynth.generators.segmenter_data import sample_record

    xs, ys, records, photos, seen = [], [], [], {}, set()
    for s in sources:
        for name, file, rgb, m, category in iter_instances(s, min_area):
            rec = sample_record(name, file, category) | {"animal": s["kind"] in ("msrc", "weizmann")}
            if _key(name, rec["sha256"]) in seen:
                continue
            seen.add(_key(name, rec["sha256"]))
            crop, mask = box_crop(rgb, tight_box(m), size, STORE_MARGIN, mask=m)
            xs.append(crop)
            ys.append(np.round(mask * 255).astype(np.uint8))
            records.append(rec)
            if rec["animal"]:
                photos[len(records) - 1] = (rgb, m)
    if not xs:
        raise ValueError("the segmenter's `sources` hold no usable instance")
    rng = np.random.default_rng(seed)
    tune = sorted(rng.permutation(sorted(photos))[:keep_photos].tolist()) if keep_photos else []
    return np.stack(xs), np.stack(ys), records, {k: photos[k] for k in tune}


class Augment:
    """Training crops at `size` from the stored wide crops, by one affine warp per sample (see the module)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, size: int, seed: int) -> None:
        import torch

        self.torch = torch
        self.x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        self.y = torch.from_numpy(masks)[:, None].contiguous()
        self.size = size
        self.g = torch.Generator().manual_seed(seed)
        self.half = 0.5 / (0.5 + STORE_MARGIN)  # the box's half side in the stored crop's [-1, 1] frame

    def __call__(self, ids: np.ndarray, train: bool = True):
        torch, F, g, n = self.torch, self.torch.nn.functional, self.g, len(ids)

        def u(lo: float, hi: float, *shape: int):
            return torch.rand(*(shape or (n,)), generator=g) * (hi - lo) + lo

        m = u(0.10, 0.20) if train else torch.full((n,), MARGIN)
        j = torch.randn(n, 4, generator=g) * 0.02 if train else torch.zeros(n, 4)
        h = self.half
        x1, x2, y1, y2 = -h + j[:, 0] * 2 * h, h + j[:, 1] * 2 * h, -h + j[:, 2] * 2 * h, h + j[:, 3] * 2 * h
        wx1, wx2 = x1 - m * (x2 - x1), x2 + m * (x2 - x1)
        wy1, wy2 = y1 - m * (y2 - y1), y2 + m * (y2 - y1)
        flip = torch.where(u(0, 1) < 0.5, -1.0, 1.0) if train else torch.ones(n)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = (wx2 - wx1) / 2 * flip, (wx1 + wx2) / 2
        theta[:, 1, 1], theta[:, 1, 2] = (wy2 - wy1) / 2, (wy1 + wy2) / 2
        grid = F.affine_grid(theta, (n, 3, self.size, self.size), align_corners=False)
        ids_t = torch.as_tensor(ids)
        x = F.grid_sample(self.x[ids_t].float() / 255, grid, padding_mode="border", align_corners=False)
        y = F.grid_sample(self.y[ids_t].float() / 255, grid, padding_mode="zeros", align_corners=False)
        if train:
            x = (x * u(0.85, 1.15, n, 3, 1, 1) * u(0.7, 1.3, n, 1, 1, 1)).clamp(0, 1)
            grey = u(0, 1) < 0.1
            x[grey] = x[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
            blur = u(0, 1) < 0.3
            if blur.any():
                f = int(torch.randint(2, 5, (1,), generator=g))
                small = F.interpolate(x[blur], scale_factor=1 / f, mode="area")
                x[blur] = F.interpolate(small, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return standardise(x), y  # as at prediction


def train_segmenter(cfg: SegmenterConfig, out_dir: Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Train, choose the threshold, score on validation, write the folder; returns the manifest."""
    import torch
    from safetensors.torch import save

    from roadsynth.datasets.outdir import claim
    from roadsynth.detectors.reuse import library_version
    from roadsynth.detectors.starter import relative_paths

    out_dir = claim(out_dir, "box-segmenter", overwrite=overwrite)
    portable = relative_paths(cfg.model_dump(mode="json"), out_dir)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(portable, sort_keys=False))
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)

    images, masks, records, tuning = gather([s.model_dump() for s in cfg.sources], 2 * cfg.size, cfg.min_area,
                                            cfg.tuning, cfg.seed)
    tune = np.asarray(sorted(tuning), int)
    train = np.setdiff1d(np.arange(len(records)), tune)
    for r in records:  # where this folder's config found them, as config.yaml names its paths
        r["file"] = os.path.relpath(r["file"], out_dir)
    for k in tune:
        records[k]["split"] = "tuning"
    for k in train:
        records[k]["split"] = "train"
    aug = Augment(images, masks, cfg.size, cfg.seed)

    net = build_unet(tuple(cfg.widths))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    per_epoch = int(np.ceil(len(train) / cfg.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * per_epoch)
    curve, t0 = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        order, total = rng.permutation(train), 0.0
        for k in range(0, len(order), cfg.batch):
            x, y = aug(order[k : k + cfg.batch])
            logits = net(x)
            p = torch.sigmoid(logits)
            dice = 1 - (2 * (p * y).sum((1, 2, 3)) + 1) / ((p + y).sum((1, 2, 3)) + 1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + dice.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(x)
        curve.append({"epoch": epoch + 1, "loss": round(total / len(train), 5),
                      "seconds": round(time.perf_counter() - t0, 1)})
    seconds = time.perf_counter() - t0

    buf = io.BytesIO(save({k: v.contiguous() for k, v in net.state_dict().items()}))
    atomic_write_bytes(out_dir / WEIGHTS, buf.getvalue())
    model = {"size": cfg.size, "margin": MARGIN, "widths": list(cfg.widths), "threshold": 0.5}
    manifest: dict[str, Any] = {"name": cfg.name, "weights": WEIGHTS, "model": model}
    atomic_write_json(out_dir / MANIFEST, manifest, indent=1)  # what BoxSegmenter needs to load it

    seg = BoxSegmenter(out_dir)
    ious, sure = {t: [] for t in THRESHOLDS}, []
    for rgb, m in tuning.values():
        p, truth = _predict_in_box(seg, rgb, m)
        sure.append(certainty(p))
        for t in THRESHOLDS:
            ious[t].append(mask_iou(p >= t, truth))
    best = max(THRESHOLDS, key=lambda t: (np.mean(ious[t]) if tuning else 0, -abs(t - 0.5)))
    model["threshold"] = best
    # The floor refuses the `refuse_share` least certain tuning masks (none when there is nothing to tune on).
    floor = float(np.quantile(sure, cfg.refuse_share)) if tuning and cfg.refuse_share > 0 else None
    model["min_certainty"] = None if floor is None else round(floor, 4)
    seg.threshold, seg.min_certainty = best, model["min_certainty"]
    tuned = np.asarray(ious[best]) if tuning else np.zeros(0)
    kept_t = np.asarray(sure) >= (floor if floor is not None else -1.0)

    validation = validate(seg, [s.model_dump() for s in cfg.validation], records, cfg.min_area)
    manifest = {
        "name": cfg.name,
        "weights": WEIGHTS,
        "weights_sha256": hashlib.sha256((out_dir / WEIGHTS).read_bytes()).hexdigest(),
        "model": model,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "versions": {d: library_version(d) for d in ("roadsynth", "torch", "safetensors")}
                    | {"python": platform.python_version()},
        "train_seconds": round(seconds, 1),
        "n_instances": {"train": int(len(train)), "tuning": int(len(tune))},
        "n_photos": len({r["sha256"] for r in records}),
        "tuning": {"threshold": best, "mean_iou_by_threshold": {str(t): round(float(np.mean(v)), 4)
                                                               for t, v in ious.items() if v},
                   "min_certainty": model["min_certainty"],
                   "certainty_iou_rank_correlation": _rank_correlation(sure, tuned) if len(tuned) > 2 else None,
                   "kept": _summary(tuned[kept_t]) if tuned.size else {"n": 0},
                   "refused": round(float(1 - kept_t.mean()), 4) if tuned.size else None},
        "validation": validation,
        "instances": records,
        "config": portable,
    }
    atomic_write_json(out_dir / MANIFEST, manifest, indent=1)
    buf2 = io.StringIO()
    w = csv.DictWriter(buf2, fieldnames=["epoch", "loss", "seconds"])
    w.writeheader()
    w.writerows(curve)
    atomic_write_text(out_dir / "training_curve.csv", buf2.getvalue())
    return manifest


def _predict_in_box(seg: BoxSegmenter, rgb: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x1, y1, x2, y2 = tight_box(m)
    return seg.probabilities(rgb, (x1, y1, x2, y2)), m[y1:y2, x1:x2]


def validation_instances(sources: list[dict], train_records: list[dict], min_area: int):
    """(instance id, file, RGB, mask, category) of the validation sources, without any photo that is (by
    pHash) a near-duplicate of a training photo, and the ids so left out."""
    from roadsynth.evaluation.leakage import NEAR_DUPLICATE_BITS, phash

    train_hashes = np.array([int(r["phash"], 16) for r in train_records], dtype=np.uint64)
    train_sha = {r["sha256"] for r in train_records}
    kept, dropped = [], []
    for s in sources:
        for name, file, rgb, m, category in iter_instances(s, min_area):
            h = np.uint64(phash(file))
            x = train_hashes ^ h
            near = bool(len(x)) and min(bin(int(v)).count("1") for v in x) <= NEAR_DUPLICATE_BITS
            if near or hashlib.sha256(Path(file).read_bytes()).hexdigest() in train_sha:
                dropped.append(name)
            else:
                kept.append((name, file, rgb, m, category))
    return kept, dropped


def _summary(v) -> dict[str, Any]:
    v = np.asarray(v, float)
    if not v.size:
        return {"n": 0}
    return {"n": int(v.size), "mean_iou": round(float(v.mean()), 4), "below_0.6": round(float(np.mean(v < 0.6)), 4)}


def _rank_correlation(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return round(float(np.corrcoef(ra, rb)[0, 1]), 4)


def validate(seg: BoxSegmenter, sources: list[dict], train_records: list[dict], min_area: int) -> dict[str, Any]:
    """The segmenter on `sources` less near-duplicates of its training photos, through `masks.learned_mask`
    (what a bank gets): all masks, and those its certainty floor keeps, with the share it refuses."""
    from roadsynth.datasets.records import Box

    kept, dropped = validation_instances(sources, train_records, min_area)
    rows: list[tuple[str, float, bool]] = []
    for name, file, rgb, m, category in kept:
        x1, y1, x2, y2 = tight_box(m)
        mask, _, sure = learned_mask(rgb, Box.from_xyxy(x1, y1, x2, y2), seg)
        rows.append((category, mask_iou(mask, m[y1:y2, x1:x2]), seg.min_certainty is None or sure >= seg.min_certainty))

    def figures(sel: list[tuple[str, float, bool]]) -> dict[str, Any]:
        if not sel:
            return {"n": 0}
        ok = [r for r in sel if r[2]]
        return _summary([r[1] for r in sel]) | {
            "refused": round(1 - len(ok) / len(sel), 4),
            "kept": _summary([r[1] for r in ok])}

    return {"all": figures(rows), "per_class": {c: figures([r for r in rows if r[0] == c])
                                                 for c in sorted({r[0] for r in rows})},
            "near_duplicates_left_out": dropped}
