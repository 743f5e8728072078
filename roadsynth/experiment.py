"""The A/B experiment: does adding generated data improve a detector on a real held-out split?

Protocol (one config, every arm sees the same real validation and test images):
1. Split the real dataset by scene into train / val / test (seeded).
2. Optionally thin long-tail classes in train (keep k images that contain the class, drop the rest of
   the images containing it: dropping whole images keeps the remaining labels complete).
3. Build the generated set: road frames with inserted objects; cut-outs of the long-tail class come
   only from the kept train images, so the generated arm sees no real pixels the real arm lacks.
4. Train one detector per arm x seed, predict on the test split, score with COCO metrics, and compare
   arms with a paired bootstrap over test images.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from roadsynth.config import Config, CutoutSource, save_config
from roadsynth.datasets.coco import read_coco, write_coco
from roadsynth.datasets.io import atomic_write_json
from roadsynth.datasets.merge import merge_datasets
from roadsynth.datasets.records import Dataset
from roadsynth.datasets.split import filter_dataset, split_dataset
from roadsynth.datasets.yolo import read_yolo


@dataclass(frozen=True)
class Split:
    dataset: Dataset
    images_root: Path


def load_real(cfg: Config) -> Split:
    real = cfg.experiment.real
    if real.format == "yolo":
        ds, root = read_yolo(real.path)
        return Split(ds, root)
    if real.images_root is None:
        raise ValueError("experiment.real: `images_root` is required for format coco")
    return Split(read_coco(real.path), real.images_root)


def split_real(cfg: Config, real: Split) -> dict[str, Split]:
    r = cfg.experiment.real
    parts = split_dataset(real.dataset, {"trainval": 1 - r.test_fraction, "test": r.test_fraction}, seed=r.split_seed)
    val_frac = r.val_fraction / (1 - r.test_fraction)
    tv = split_dataset(parts["trainval"], {"train": 1 - val_frac, "val": val_frac}, seed=r.split_seed + 1)
    train = thin_long_tail(tv["train"], r.long_tail, seed=r.split_seed)
    return {"train": Split(train, real.images_root), "val": Split(tv["val"], real.images_root),
            "test": Split(parts["test"], real.images_root)}


def thin_long_tail(ds: Dataset, keep: dict[str, int], seed: int) -> Dataset:
    """Keep `keep[name]` images containing each named class; drop the other images containing it."""
    if not keep:
        return ds
    rng = np.random.default_rng(seed)
    drop: set[int] = set()
    for name, k in keep.items():
        cid = ds.category_by_name(name).id
        with_cls = sorted({a.image_id for a in ds.annotations if a.category_id == cid})
        kept = set(rng.permutation(with_cls)[:k].tolist())
        drop |= set(with_cls) - kept
    return filter_dataset(ds, [im.id for im in ds.images if im.id not in drop])


def materialize_arm(name: str, parts: list[tuple[str, Split]], arm_dir: Path) -> Split:
    """Write an arm as a COCO dataset folder whose `images/<part>` entries link to the parts' roots."""
    images = arm_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for prefix, sp in parts:
        link = images / prefix
        if link.is_symlink() or link.exists():
            if link.resolve() != sp.images_root.resolve():
                raise RuntimeError(f"{link}: already links elsewhere ({link.resolve()})")
            continue
        os.symlink(sp.images_root.resolve(), link, target_is_directory=True)
    merged = merge_datasets([(sp.dataset, prefix) for prefix, sp in parts])
    merged = merged.with_(info={**dict(merged.info), "arm": name})
    write_coco(merged, arm_dir / "annotations.json")
    return Split(merged, images)


def count_per_category(ds: Dataset) -> dict[str, int]:
    names = {c.id: c.name for c in ds.categories}
    out = {c.name: 0 for c in ds.categories}
    for a in ds.annotations:
        out[names[a.category_id]] += 1
    return out


def write_split(sp: Split, path: Path) -> Path:
    """A split as a COCO file that remembers its images root (`info.images_root`), so tasks pass paths."""
    ds = sp.dataset.with_(info={**dict(sp.dataset.info), "images_root": str(sp.images_root.resolve())})
    write_coco(ds, path)
    return path


def load_split(path: Path) -> Split:
    ds = read_coco(path)
    root = ds.info.get("images_root")
    return Split(ds, Path(root) if root else path.parent / "images")


def prepare_splits(cfg: Config, out_dir: Path) -> dict[str, Path]:
    """Real train/val/test splits (train thinned) as `splits/<name>.json`; the test split gets weathered
    copies when `experiment.test_conditions` asks for them."""
    if cfg.experiment is None:
        raise ValueError("config has no `experiment` section")
    splits = split_real(cfg, load_real(cfg))
    e = cfg.experiment
    if e.test_conditions:
        splits["test"] = add_test_conditions(splits["test"], e.test_conditions, e.test_severity,
                                             e.real.split_seed, out_dir / "splits" / "test_images")
    return {name: write_split(sp, out_dir / "splits" / f"{name}.json") for name, sp in splits.items()}


def add_test_conditions(test: Split, conditions: list[str], severity: int, seed: int, root: Path) -> Split:
    """The test split plus one weathered copy of each image per condition, all tagged `condition`.

    Originals are linked under `clear/`, copies written under `<condition>/` (deterministic per image, so
    re-running writes the same files). Labels are the originals': the effects are pixel-level. Copies of
    one image are correlated, so per-condition slices say more than the pooled mAP's interval suggests.
    """
    from roadsynth.datasets.io import load_image, save_image_atomic
    from roadsynth.datasets.records import ImageRecord
    from roadsynth.generators.weather import WeatherRestyler

    root.mkdir(parents=True, exist_ok=True)
    link = root / "clear"
    if not link.is_symlink():
        os.symlink(test.images_root.resolve(), link, target_is_directory=True)
    by_image = test.dataset.annotations_by_image()
    images, anns = [], []

    def add(rec: ImageRecord, file_name: str, attrs: dict, labels) -> None:
        new_id = len(images) + 1
        images.append(replace(rec, id=new_id, file_name=file_name, attributes={**dict(rec.attributes), **attrs}))
        for a in labels:
            anns.append(replace(a, id=len(anns) + 1, image_id=new_id))

    for rec in test.dataset.images:
        add(rec, f"clear/{rec.file_name}", {"condition": "clear"}, by_image.get(rec.id, []))
    for k, condition in enumerate(conditions):
        restyler = WeatherRestyler(condition, severity)
        for rec in test.dataset.images:
            name = f"{condition}/{Path(rec.file_name).with_suffix('.jpg')}"
            labels = by_image.get(rec.id, [])
            rgb = load_image(test.images_root / rec.file_name)
            out = restyler.restyle(rgb, labels, np.random.default_rng([seed, rec.id, k]))
            if not (root / name).exists():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                save_image_atomic(root / name, out.image, quality=95)
            add(rec, name, {"condition": condition, "severity": severity}, out.annotations)
    return Split(test.dataset.with_(images=tuple(images), annotations=tuple(anns)), root)


def prepare_generation(cfg: Config, out_dir: Path, train_path: Path) -> Path:
    """Cut-outs of the long-tail classes from the kept train images + the generation config that uses them."""
    from roadsynth.generators.cutouts import build_bank_from_boxes

    sources = list(cfg.generate.cutouts)
    if cfg.experiment.cutouts_from_real:
        train = load_split(train_path)
        bank = build_bank_from_boxes(train.dataset, train.images_root, cfg.experiment.cutouts_from_real)
        bank_dir = out_dir / "real_cutouts"
        bank.save(bank_dir)
        sources.append(CutoutSource(kind="bank", path=bank_dir))
    gen_cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"cutouts": sources})})
    path = out_dir / "generation_config.yaml"
    save_config(gen_cfg, path)
    return path


def materialize_arms(cfg: Config, out_dir: Path, train_path: Path, generated_dir: Path) -> dict[str, Path]:
    train = load_split(train_path)
    generated = Split(read_coco(generated_dir / "annotations.json"), generated_dir / "images")
    out = {}
    for arm in cfg.experiment.arms:
        parts = {"real": [("real", train)], "real+generated": [("real", train), ("generated", generated)],
                 "generated-only": [("generated", generated)]}[arm]
        arm_dir = out_dir / "arms" / arm.replace("+", "_plus_")
        sp = materialize_arm(arm, parts, arm_dir)
        out[arm] = write_split(sp, arm_dir / "annotations.json")
    return out


def arm_dirname(arm: str, seed: int) -> str:
    return f"{arm.replace('+', '_plus_')}_seed{seed}"


def run_arm_seed(cfg: Config, arm: str, seed: int, train_path: Path, val_path: Path, test_path: Path,
                 run_dir: Path) -> dict:
    """Train one detector and score it on the real test split; results are saved in `run_dir`."""
    from roadsynth.detectors.yolo_ultralytics import YoloDetector
    from roadsynth.evaluation.coco_metrics import evaluate_detections, predictions_to_coco_results

    train, val, test = load_split(train_path), load_split(val_path), load_split(test_path)
    d = cfg.experiment.detector
    det = YoloDetector(model=d.model, imgsz=d.imgsz, epochs=d.epochs, batch=d.batch, workers=d.workers, device=d.device,
                       val=d.val)
    t0 = time.perf_counter()
    weights = det.train(_as_detector_split(train), _as_detector_split(val), run_dir, seed=seed)
    t_train = time.perf_counter() - t0
    test_images = [(im.id, test.images_root / im.file_name) for im in test.dataset.images]
    preds = det.predict(weights, test_images)
    results = to_test_categories(predictions_to_coco_results(preds), train.dataset, test.dataset)
    atomic_write_json(run_dir / "predictions.json", results)
    m = evaluate_detections(test.dataset, results, backend=cfg.experiment.eval_backend)
    row = {"arm": arm, "seed": seed, "train_images": len(train.dataset.images), "train_seconds": round(t_train, 1),
           "weights": str(weights), **m.summary()}
    atomic_write_json(run_dir / "metrics.json", row, indent=2)
    return row


def to_test_categories(results: list[dict], train: Dataset, test: Dataset) -> list[dict]:
    """Map predicted category ids from the training arm's ids to the test split's ids, by name.

    Arms are merged datasets whose ids need not match the test split's; classes the test split does not
    have (e.g. inserted animals in a vehicle benchmark) cannot be scored and are dropped.
    """
    train_names = {c.id: c.name.lower() for c in train.categories}
    test_ids = {c.name.lower(): c.id for c in test.categories}
    return [{**r, "category_id": test_ids[train_names[r["category_id"]]]}
            for r in results if train_names.get(r["category_id"]) in test_ids]


def _as_detector_split(sp: Split):
    from roadsynth.detectors.base import DatasetSplit

    return DatasetSplit(sp.dataset, sp.images_root)


def finish_report(cfg: Config, out_dir: Path, rows: list[dict] | None = None) -> dict:
    """metrics.json / runs.csv / report.md / report.html from the saved runs (re-renderable: `roadsynth report`)."""
    from roadsynth.evaluation import plots
    from roadsynth.evaluation.leakage import near_duplicates, provenance_leaks
    from roadsynth.evaluation.report import aggregate_runs, write_report
    from roadsynth.evaluation.coco_metrics import PerImageEval
    from roadsynth.evaluation.stats import combined_verdict, paired_bootstrap, seed_bootstrap_diff, suggest_budget

    if rows is None:
        order = {arm: k for k, arm in enumerate(cfg.experiment.arms)}
        rows = sorted((json.loads(p.read_text()) for p in (out_dir / "runs").glob("*/metrics.json")),
                      key=lambda r: (order.get(r["arm"], len(order)), r["seed"]))
    if not rows:
        raise FileNotFoundError(f"{out_dir / 'runs'}: no finished runs (runs/*/metrics.json) to report")
    test = load_split(out_dir / "splits" / "test.json")
    train = load_split(out_dir / "splits" / "train.json")
    gen_dir = out_dir / "generated"
    generated = read_coco(gen_dir / "annotations.json") if (gen_dir / "annotations.json").exists() else None
    manifest = json.loads((gen_dir / "manifest.json").read_text()) if (gen_dir / "manifest.json").exists() else {}

    evals: dict[str, list] = {}
    for r in rows:
        preds = json.loads((out_dir / "runs" / arm_dirname(r["arm"], r["seed"]) / "predictions.json").read_text())
        evals.setdefault(r["arm"], []).append(PerImageEval(test.dataset, preds))
    baseline = "real" if "real" in evals else next(iter(evals))
    comparisons = []
    for arm, ev in evals.items():
        if arm == baseline:
            continue
        c = {"arm": arm, "baseline": baseline, "metric": "mAP50_95", "seeds": len(ev),
             **paired_bootstrap(evals[baseline], ev, n_boot=cfg.experiment.bootstrap, seed=0)}
        per_seed = {a: [r["mAP50_95"] for r in rows if r["arm"] == a and r.get("mAP50_95") is not None]
                    for a in (baseline, arm)}
        _, lo, hi = seed_bootstrap_diff(per_seed[baseline], per_seed[arm])
        c["image_verdict"] = c["verdict"]
        c["verdict"], c["verdict_reason"] = combined_verdict((c["ci_low"], c["ci_high"]), (lo, hi))
        # metrics.json stays strict JSON: an interval that cannot be estimated (one seed) is null.
        c["seed_ci_low"], c["seed_ci_high"] = (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else (None, None)
        comparisons.append(c)
    curves = {}
    for c in test.dataset.categories:
        per_arm = {arm: [q for e in ev if (q := e.pr_curve(c.id)) is not None] for arm, ev in evals.items()}
        if all(per_arm.values()):
            curves[c.name] = {arm: np.mean(qs, axis=0) for arm, qs in per_arm.items()}
    arms = aggregate_runs(rows)
    figures = {"ap_per_class": plots.ap_per_class(arms), "pr_curves": plots.pr_curves(curves)}
    if comparisons:
        figures["bootstrap_ci"] = plots.bootstrap_ci(comparisons)

    train_paths = [train.images_root / im.file_name for im in train.dataset.images]
    test_paths = [test.images_root / im.file_name for im in test.dataset.images]
    gen_paths = [gen_dir / "images" / im.file_name for im in generated.images] if generated else []
    leaks = near_duplicates(test_paths, train_paths + gen_paths)
    if generated is not None:
        leaks += provenance_leaks(test_paths, generated)
    real_ap = {c: m.get("AP50_95") for c, m in arms.get(baseline, {}).get("per_class", {}).items()}
    budget = suggest_budget(real_ap, count_per_category(train.dataset))

    d = cfg.experiment.detector
    context = {
        "real train images (after long-tail thinning)": f"{len(train.dataset.images)} ({count_per_category(train.dataset)})",
        "real test images": f"{len(test.dataset.images)} ({count_per_category(test.dataset)})" + (
            f", of which {len(cfg.experiment.test_conditions)} weathered copies of each original "
            f"({', '.join(cfg.experiment.test_conditions)}, severity {cfg.experiment.test_severity})"
            if cfg.experiment.test_conditions else ""),
        "long-tail thinning": cfg.experiment.real.long_tail or "none",
        "generated images / objects": f"{manifest.get('images', 0)} / {manifest.get('generated_per_category', {})}",
        "detector": f"{d.model}, imgsz {d.imgsz}, {d.epochs} epochs, batch {d.batch}, device {d.device}",
        "seeds": cfg.experiment.seeds,
        "bootstrap": f"{cfg.experiment.bootstrap} paired resamples of the {len(test.dataset.images)} test images",
    }
    examples = _examples(generated, gen_dir) if generated else []
    slice_by = list(cfg.experiment.slice_by)
    if cfg.experiment.test_conditions and "condition" not in slice_by:
        slice_by.append("condition")
    slices = slice_metrics(test.dataset, evals, slice_by)
    return write_report(out_dir, rows, title=f"roadsynth experiment: {cfg.name}", context=context,
                        comparisons=comparisons, figures=figures, examples=examples,
                        extras={"leakage": [str(x) for x in leaks], "budget": budget, "slices": slices})


def slice_metrics(test: Dataset, evals: dict[str, list], attributes: list[str]) -> list[dict]:
    """mAP per value of each image attribute (e.g. `condition`), seed-averaged, from the per-image evaluations."""
    out = []
    for attr in attributes:
        values = sorted({str(im.attributes[attr]) for im in test.images if attr in im.attributes})
        for v in values:
            w = np.array([1.0 if str(im.attributes.get(attr)) == v else 0.0 for im in test.images])
            row = {"attribute": attr, "value": v, "images": int(w.sum())}
            for arm, ev in evals.items():
                row[arm] = float(np.nanmean([e.ap(w)["mAP50_95"] for e in ev]))
            out.append(row)
    return out


def _examples(generated: Dataset, gen_dir: Path, n: int = 4) -> list[tuple[str, bytes]]:
    """A few generated frames with their generated boxes drawn (red) next to the existing labels (white)."""
    import cv2

    from roadsynth.datasets.io import encode_image, load_image

    by_image = generated.annotations_by_image()
    picked = [im for im in generated.images if any(a.generated for a in by_image.get(im.id, []))][:n]
    names = {c.id: c.name for c in generated.categories}
    out = []
    for im in picked:
        rgb = load_image(gen_dir / "images" / im.file_name)
        for a in by_image[im.id]:
            x1, y1, x2, y2 = (int(round(v)) for v in a.bbox.xyxy())
            color = (255, 40, 40) if a.generated else (255, 255, 255)
            cv2.rectangle(rgb, (x1, y1), (x2, y2), color, 2 if a.generated else 1)
            if a.generated:
                cv2.putText(rgb, names[a.category_id], (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1)
        out.append((f"{im.file_name}: generated from {im.attributes.get('background')}", encode_image(rgb, ".jpg", 88)))
    return out
