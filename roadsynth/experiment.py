"""The A/B experiment: does adding generated data improve a detector on a real held-out split?

Protocol (one config, every arm sees the same real validation and test images):
1. Real data: a fixed test set of the user's (`real.test`), or a split of the pool by scene (seeded).
   Only the training part is thinned: keep k images containing each long-tail class, drop the rest of
   the images containing it (dropping whole images keeps the remaining labels complete).
2. Generated sets: road frames with inserted objects. Cut-outs of the long-tail class come only from the
   kept train images, so a generated arm sees no real pixels the real arm lacks. The `real+random` arm
   is the same generation with context-free placement (the ablation).
3. Compute: by default every arm trains the same number of optimiser steps (the largest arm's, at
   `detector.epochs`), so a gain is never a gain from training longer.
4. One detector per arm x seed, fine-tuned from the same starting weights, predicted on the test split
   and scored with COCO metrics. A finished arm x seed is reused by content (detectors/reuse.py).
5. The report (evaluation/experiment_report.py) compares arms with both intervals: test images and seeds.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from roadsynth.arms import GENERATED, arm_dirname, build_sources, check_labels_complete, generated_folders  # noqa: F401
from roadsynth.arms import materialize_arms as _materialize
from roadsynth.config import Config, CutoutSource, save_config
from roadsynth.datasets.coco import read_coco, write_coco
from roadsynth.datasets.io import atomic_write_json, inside, read_json, read_json_record
from roadsynth.datasets.records import Dataset, DatasetSplit
from roadsynth.datasets.registry import read_dataset
from roadsynth.datasets.split import count_per_category, filter_dataset, split_dataset


def split_real(cfg: Config) -> dict[str, DatasetSplit]:
    """train (thinned) / val / test of the experiment's real data."""
    r = cfg.experiment.real
    pool = read_dataset(r)
    if r.test is not None:
        test = read_dataset(r.test)
        if r.val is not None:
            train, val = pool, read_dataset(r.val)
        else:
            parts = split_dataset(pool.dataset, {"train": 1 - r.val_fraction, "val": r.val_fraction},
                                  seed=r.split_seed + 1)
            train, val = (DatasetSplit(parts[k], pool.images_root) for k in ("train", "val"))
    else:
        parts = split_dataset(pool.dataset, {"trainval": 1 - r.test_fraction, "test": r.test_fraction},
                              seed=r.split_seed)
        val_frac = r.val_fraction / (1 - r.test_fraction)
        tv = split_dataset(parts["trainval"], {"train": 1 - val_frac, "val": val_frac}, seed=r.split_seed + 1)
        train, val, test = (DatasetSplit(d, pool.images_root) for d in (tv["train"], tv["val"], parts["test"]))
    train = DatasetSplit(thin_long_tail(train.dataset, r.long_tail, seed=r.split_seed), train.images_root)
    check_targets(cfg.experiment.targets, train.dataset, test.dataset)
    return {"train": train, "val": val, "test": test}


def config_digest(cfg: Config) -> str:
    """What determines an experiment's outputs (the generate and experiment sections, less how the tasks run:
    `parallel`, `gpus_per_training`), so a re-run resumes only the same experiment, if need be fewer at once."""
    import hashlib

    how_it_runs = {"parallel", "gpus_per_training"}
    data = {"generate": cfg.generate.model_dump(mode="json"),
            "experiment": cfg.experiment.model_dump(mode="json", exclude=how_it_runs)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def check_targets(targets: list[str], train: Dataset, test: Dataset) -> None:
    """Every target class must be learnable (a train category) and measurable (objects in the test split)."""
    train_names = {c.name.lower() for c in train.categories}
    test_ids = {c.name.lower(): c.id for c in test.categories}
    for name in targets:
        if name.lower() not in train_names:
            raise ValueError(f"target class `{name}` is not a category of the real train data "
                             f"({sorted(c.name for c in train.categories)})")
        n = sum(1 for a in test.annotations if a.category_id == test_ids.get(name.lower()))
        if n == 0:
            raise ValueError(f"target class `{name}` has no objects in the test split, so no verdict can be measured")


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


def write_split(sp: DatasetSplit, path: Path) -> Path:
    """A split as a COCO file that remembers its images root (`info.images_root`), so tasks pass paths."""
    ds = sp.dataset.with_(info={**dict(sp.dataset.info), "images_root": str(Path(sp.images_root).resolve())})
    write_coco(ds, path)
    return path


def load_split(path: Path) -> DatasetSplit:
    ds = read_coco(path)
    root = ds.info.get("images_root")
    return DatasetSplit(ds, Path(root) if root else Path(path).parent / "images")


def prepare_splits(cfg: Config, out_dir: Path) -> dict[str, Path]:
    """Real train/val/test splits (train thinned) as `splits/<name>.json`; the test split gets weathered
    copies when `experiment.test_conditions` asks for them."""
    if cfg.experiment is None:
        raise ValueError("config has no `experiment` section")
    splits = split_real(cfg)
    e = cfg.experiment
    if e.test_conditions:
        splits["test"] = add_test_conditions(splits["test"], e.test_conditions, e.test_severity,
                                             e.real.split_seed, out_dir / "splits" / "test_images")
    return {name: write_split(sp, out_dir / "splits" / f"{name}.json") for name, sp in splits.items()}


def add_test_conditions(test: DatasetSplit, conditions: list[str], severity: int, seed: int,
                        root: Path) -> DatasetSplit:
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
        os.symlink(Path(test.images_root).resolve(), link, target_is_directory=True)
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
            rgb = load_image(Path(test.images_root) / rec.file_name)
            out = restyler.restyle(rgb, labels, np.random.default_rng([seed, rec.id, k]))
            if not (root / name).exists():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                save_image_atomic(root / name, out.image, quality=95)
            add(rec, name, {"condition": condition, "severity": severity}, out.annotations)
    return DatasetSplit(test.dataset.with_(images=tuple(images), annotations=tuple(anns)), root)


def prepare_generation(cfg: Config, out_dir: Path, train_path: Path) -> dict[str, Path]:
    """Cut-outs of the long-tail classes from the kept train images + one generation config per generated
    folder the arms need: {folder name: config path}. `generated_random` differs only in placement mode.

    Category names are made canonical here, once: an inserted class that is a real class under another
    case (`ambulance` for the real `Ambulance`) takes the real spelling, so no output holds both.
    """
    from roadsynth.generators.bank import save_bank
    from roadsynth.generators.cutout_sources import build_bank_from_boxes

    train = load_split(train_path)
    spelling = {c.name.lower(): c.name for c in train.dataset.categories}

    def canonical(name: str) -> str:
        return spelling.get(name.lower(), name)

    sources = list(cfg.generate.cutouts)
    if cfg.experiment.cutouts_from_real:
        classes = {real: canonical(ours) for real, ours in cfg.experiment.cutouts_from_real.items()}
        bank = build_bank_from_boxes(train.dataset, train.images_root, classes,
                                     segmenter=cfg.experiment.cutouts_segmenter)
        bank_dir = out_dir / "real_cutouts"
        save_bank(bank, bank_dir)  # with the masks the box segmenter refused, for review
        sources.append(CutoutSource(kind="bank", path=bank_dir))
    g = cfg.generate.model_copy(update={"cutouts": sources})
    if g.insert is not None:
        g = g.model_copy(update={"insert": g.insert.model_copy(
            update={"categories": {canonical(k): v for k, v in g.insert.categories.items()}})})
    out = {}
    folders = generated_folders(cfg)
    for folder in folders:
        gf = g
        if folder == "generated_random":
            gf = g.model_copy(update={"placement": replace(g.placement, mode="random")})
            if "generated" in folders and gf.insert is not None:
                # The ablation differs in placement only: the same objects (class, cut-out) in the same frames.
                gf = gf.model_copy(update={"insert": gf.insert.model_copy(update={
                    "same_objects_as": out_dir / "generated" / "annotations.json"})})
        path = out_dir / f"{folder}_config.yaml"
        save_config(cfg.model_copy(update={"generate": gf}), path)
        out[folder] = path
    return out


def materialize_arms(cfg: Config, out_dir: Path, train_path: Path) -> dict[str, Path]:
    """Each arm's training set as `arms/<arm>/annotations.json` (roadsynth/arms.py); the `real+sources`
    control's photos are gathered first, once the generation has said which cut-outs it used."""
    train = load_split(train_path)
    if "real+sources" in cfg.experiment.arms and not (out_dir / "sources" / "annotations.json").exists():
        spelling = {c.name.lower(): c.name for c in train.dataset.categories}
        build_sources(cfg, out_dir, read_coco(out_dir / "generated" / "annotations.json"), spelling)
    return _materialize(cfg, out_dir, train)


def plan_compute(cfg: Config, arm_images: dict[str, int]) -> dict[str, dict[str, int]]:
    """Epochs, steps per epoch, optimiser steps and images seen per arm.

    The largest arm trains `detector.epochs` epochs. Under `equal-steps` every other arm trains as many
    epochs as it takes to match that arm's optimiser steps (rounded to whole epochs); under
    `equal-epochs` every arm trains `detector.epochs`, except `real-more-epochs`, which is the real data
    trained for the largest arm's steps (the control for "more data" vs "longer training").
    """
    e = cfg.experiment
    batch, epochs = e.detector.batch, e.detector.epochs
    spe = {arm: max(1, math.ceil(n / batch)) for arm, n in arm_images.items()}
    budget = epochs * max(spe[a] for a in spe if a != "real-more-epochs")
    out = {}
    for arm, steps_per_epoch in spe.items():
        matched = e.compute == "equal-steps" or arm == "real-more-epochs"
        n_epochs = max(1, round(budget / steps_per_epoch)) if matched else epochs
        out[arm] = {"epochs": n_epochs, "steps_per_epoch": steps_per_epoch, "steps": n_epochs * steps_per_epoch,
                    "images_seen": n_epochs * arm_images[arm]}
    return out


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or `taskset` limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_parallelism(cfg: Config, n_trainings: int, cores: int | None = None) -> dict[str, int]:
    """How many trainings run at once on this machine and how many threads each gets.

    Threads per training depend only on the cores and the number of trainings, never on `parallel`, so the
    same experiment run one at a time or side by side trains with the same thread count and gives the same
    weights. Ultralytics would give every training min(8, cores - 1) threads (one thread on 2 cores, half
    the machine idle); small CPU models scale better across trainings than across threads, so the cores
    are spread over as many trainings as there are, one thread each at least.
    """
    e = cfg.experiment
    cores = cores or usable_cores()
    on_cpu = e.detector.device.strip().lower() in ("cpu", "")
    at_once = min(max(1, n_trainings), cores) if on_cpu else 1  # one GPU: one training at a time
    threads = e.threads_per_training or max(1, cores // at_once)
    parallel = e.parallel or max(1, min(max(1, n_trainings), cores // threads if on_cpu else 1))
    return {"parallel": parallel, "threads_per_training": threads, "cores": cores}


def run_arm_seed(cfg: Config, arm: str, seed: int, train_path: Path, val_path: Path, test_path: Path,
                 run_dir: Path, compute: dict[str, int], threads: int = 1, verbose: bool = False) -> dict:
    """Train (or reuse) one detector and score it on the real test split; results are saved in `run_dir`.

    Reused, in this order: a finished training in the reuse cache; a finished training in `run_dir` itself
    (`training.json`, so a killed experiment re-run with `reuse: false` keeps what it had finished).
    """
    from roadsynth.detectors import make_detector
    from roadsynth.detectors.child import run_training
    from roadsynth.detectors.reuse import TrainedCache, file_sha256, link_or_copy, training_key
    from roadsynth.evaluation.coco_metrics import evaluate_detections, predictions_to_coco_results

    run_dir = Path(run_dir)
    train, val, test = load_split(train_path), load_split(val_path), load_split(test_path)
    e = cfg.experiment
    d = e.detector.model_copy(update={"epochs": compute["epochs"]})
    det = make_detector(d)
    key, desc = training_key({**d.model_dump(mode="json"), "threads": threads}, train, val, seed)
    cache = TrainedCache(e.reuse_dir)
    hit = cache.get(key) if e.reuse else None
    weights = run_dir / "weights" / "weights.pt"
    done = _finished_here(run_dir, key, weights)
    if hit is not None:
        link_or_copy(Path(hit["weights"]), weights)
        link_or_copy(Path(hit["weights"]).with_name("classes.json"), weights.with_name("classes.json"))
        t_train, reused = float(hit.get("train_seconds", 0.0)), "cache"
    elif done is not None:
        t_train, reused = float(done.get("train_seconds", 0.0)), "run folder"
    else:
        t0 = time.perf_counter()
        job = {"detector": d.model_dump(mode="json"), "train": str(Path(train_path).resolve()),
               "val": str(Path(val_path).resolve()), "run_dir": str(run_dir.resolve()), "seed": seed,
               "threads": threads, "steps": compute["steps"], "label": f"{arm} seed {seed}"}
        trained = run_training(job, run_dir, verbose=verbose)
        t_train, reused = time.perf_counter() - t0, None
        link_or_copy(trained, weights)
        link_or_copy(trained.with_name("classes.json"), weights.with_name("classes.json"))
        atomic_write_json(run_dir / "training.json", {"training_key": key, "weights_sha256": file_sha256(weights),
                                                      "train_seconds": round(t_train, 1)}, indent=1)
        if e.reuse:
            cache.put(key, weights, desc, {"train_seconds": round(t_train, 1), "arm": arm})
    test_images = [(im.id, inside(test.images_root, im.file_name, f"test image {im.id}")) for im in test.dataset.images]
    preds = det.predict(weights, test_images)
    results = to_test_categories(predictions_to_coco_results(preds), train.dataset, test.dataset)
    atomic_write_json(run_dir / "predictions.json", results)
    m = evaluate_detections(test.dataset, results, backend=e.eval_backend)
    row = {"arm": arm, "seed": seed, "train_images": len(train.dataset.images), **compute, "threads": threads,
           "train_seconds": round(t_train, 1), "reused": reused is not None, "reused_from": reused,
           "training_key": key, "weights": str(weights.relative_to(run_dir.parent.parent)), **m.summary()}
    atomic_write_json(run_dir / "metrics.json", row, indent=2)
    return row


def _finished_here(run_dir: Path, key: str, weights: Path) -> dict | None:
    """`training.json` of a training this run folder already finished with this key (weights intact)."""
    from roadsynth.detectors.reuse import file_sha256

    done = read_json_record(run_dir / "training.json", "training record")
    if done is None or done.get("training_key") != key or not weights.is_file() or file_sha256(weights) != done.get("weights_sha256"):
        return None
    return done


def to_test_categories(results: list[dict], train: Dataset, test: Dataset) -> list[dict]:
    """Map predicted category ids from the training arm's ids to the test split's ids, by name.

    Arms are merged datasets whose ids need not match the test split's; classes the test split does not
    have (e.g. inserted animals in a vehicle benchmark) cannot be scored and are dropped.
    """
    train_names = {c.id: c.name.lower() for c in train.categories}
    test_ids = {c.name.lower(): c.id for c in test.categories}
    return [{**r, "category_id": test_ids[train_names[r["category_id"]]]}
            for r in results if train_names.get(r["category_id"]) in test_ids]


def finished_rows(cfg: Config, out_dir: Path) -> list[dict[str, Any]]:
    """The saved per-run metrics of an experiment folder, in config order (arms, then seeds)."""
    order = {arm: k for k, arm in enumerate(cfg.experiment.arm_names)}
    rows = [read_json(p, "run metrics") for p in (Path(out_dir) / "runs").glob("*/metrics.json")]
    return sorted(rows, key=lambda r: (order.get(r["arm"], len(order)), r["seed"]))


def finish_report(cfg: Config, out_dir: Path, rows: list[dict] | None = None) -> dict:
    """metrics.json / runs.csv / report.md / report.html from the saved runs (re-renderable: `roadsynth report`)."""
    from roadsynth.detectors.starter import load_manifest
    from roadsynth.evaluation.experiment_report import ReportInputs, build_report

    out_dir = Path(out_dir)
    e = cfg.experiment
    rows = rows if rows is not None else finished_rows(cfg, out_dir)
    if not rows:
        raise FileNotFoundError(f"{out_dir / 'runs'}: no finished runs (runs/*/metrics.json) to report")
    test = load_split(out_dir / "splits" / "test.json")
    train = load_split(out_dir / "splits" / "train.json")
    generated, manifests = {}, {}
    for folder in generated_folders(cfg):
        gen_dir = out_dir / folder
        if (gen_dir / "annotations.json").exists():
            generated[folder] = DatasetSplit(read_coco(gen_dir / "annotations.json"), gen_dir / "images")
            manifests[folder] = read_json(gen_dir / "manifest.json", "generation manifest")
    predictions = {(r["arm"], r["seed"]): read_json(
        out_dir / "runs" / arm_dirname(r["arm"], r["seed"]) / "predictions.json", "predictions") for r in rows}
    d = e.detector
    context = {
        "real train images (after long-tail thinning)": f"{len(train.dataset.images)} ({count_per_category(train.dataset)})",
        "real test images": f"{len(test.dataset.images)} ({count_per_category(test.dataset)})" + (
            f", of which {len(e.test_conditions)} weathered copies of each original "
            f"({', '.join(e.test_conditions)}, severity {e.test_severity})" if e.test_conditions else ""),
        "test set": "fixed (`real.test`)" if e.real.test is not None else f"split from the pool (seed {e.real.split_seed})",
        "long-tail thinning": e.real.long_tail or "none",
        "target classes": e.targets or "none (overall mAP only)",
        "generated images / objects": "; ".join(
            f"{k}: {m.get('images', 0)} / {m.get('generated_per_category', {})}" for k, m in manifests.items()) or "none",
        "generated images without complete labels": "; ".join(
            f"{k}: {m.get('images_without_complete_labels', 0)}" for k, m in manifests.items()) or "none",
        "detector": f"{d.model}, imgsz {d.imgsz}, batch {d.batch}, device {d.device}, compute {e.compute}",
        "seeds": e.seeds,
        "bootstrap": f"{e.bootstrap} paired resamples of the {len(test.dataset.images)} test images",
    }
    sources = [read_json(out_dir / "arms" / arm_dirname(a) / "annotations.json", "arm annotations").get("info", {})
               for a in e.arm_names if a.startswith("real+sources")]
    if sources:
        context["real+sources (source photos / their boxes / pasted objects to match)"] = "; ".join(
            f"{i['arm']}: {i['sources_photos']} / {i['sources_boxes']} / {i['pasted_objects_matched']}"
            + (" (bank exhausted)" if i["sources_boxes"] < i["pasted_objects_matched"] else "") for i in sources)
    slice_by = list(e.slice_by) + (["condition"] if e.test_conditions and "condition" not in e.slice_by else [])
    inputs = ReportInputs(
        title=f"roadsynth experiment: {cfg.name}", rows=rows, predictions=predictions, train=train, test=test,
        arms=e.arm_names, targets=e.targets, generated=generated, manifests=manifests,
        starter=load_manifest(d.weights) if d.weights is not None else None,
        starter_weights=str(d.weights) if d.weights is not None else None,
        context=context, slice_by=slice_by, n_boot=e.bootstrap)
    return build_report(inputs, out_dir)
