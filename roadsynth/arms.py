"""The arms of an experiment: which images each one trains on.

An arm is a method and, with `experiment.doses`, a dose: `real+generated@32` is the real train split plus
the first 32 generated images. Every dose of a method takes a prefix of one generation (in image id order),
so the doses are nested by construction (the 64 set holds the 32 set) and the generation is not repeated:
a curve over doses then compares like with like. `real+random@32` takes the first 32 images of the
placement ablation, which holds the same objects in the same frames.

`real+sources` is the control for an external cut-out bank: the real data plus the photos the cut-outs
were cut from, as ordinary training images with their boxes. At a dose it adds as many source boxes as
the dose's generated images hold inserted objects (whole photos, so it may be a few more): the photos of
the cut-outs the dose pasted first, then the bank's other photos in a seeded order, so its doses nest too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from roadsynth.config import Config
from roadsynth.datasets.coco import read_coco, write_coco
from roadsynth.datasets.io import atomic_write_json
from roadsynth.datasets.merge import link_merged
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, DatasetSplit, ImageRecord
from roadsynth.datasets.split import filter_dataset

# Which generated folder each method adds to the real train split (`generated-only` has no real part).
GENERATED = {"real+generated": "generated", "real+random": "generated_random", "generated-only": "generated"}


def parse_arm(arm: str) -> tuple[str, int | None]:
    """(method, dose): `real+generated@32` -> ("real+generated", 32); the `real` arm is dose 0; an arm
    without a dose (no `experiment.doses`) takes every generated image (None)."""
    method, _, dose = arm.partition("@")
    if method == "real":
        return method, 0
    return method, int(dose) if dose else None


def arm_dirname(arm: str, seed: int | None = None) -> str:
    name = arm.replace("+", "_plus_").replace("@", "_dose")
    return name if seed is None else f"{name}_seed{seed}"


def generated_folders(cfg: Config) -> list[str]:
    """The generated folders the arms need (`generated` before `generated_random`, which copies its objects;
    `real+sources` needs `generated` to know how many objects a dose holds)."""
    methods = set(cfg.experiment.arms)
    folders = {GENERATED[m] for m in methods if m in GENERATED}
    if "real+sources" in methods:
        folders.add("generated")
    return sorted(folders)


def dose_prefix(ds: Dataset, dose: int | None, where: Path) -> Dataset:
    """The first `dose` images (by id) of a generated dataset; all of it for None."""
    if dose is None:
        return ds
    ids = sorted(im.id for im in ds.images)
    if len(ids) < dose:
        raise ValueError(f"{where}: dose {dose} needs {dose} generated images, but the generation made {len(ids)} "
                         "(some frames had no valid placement); raise `generate.n_images` or lower the dose")
    return filter_dataset(ds, ids[:dose])


def inserted_objects(ds: Dataset) -> int:
    return sum(1 for a in ds.annotations if a.generated)


def materialize_arms(cfg: Config, out_dir: Path, train: DatasetSplit) -> dict[str, Path]:
    """Each arm's training set as `arms/<arm>/annotations.json`, its images linked, not copied."""
    from roadsynth.experiment import write_split

    out = {}
    generated: dict[str, Dataset] = {}
    for arm in cfg.experiment.arm_names:
        method, dose = parse_arm(arm)
        parts = [] if method == "generated-only" else [("real", train)]
        extra = {}
        if method in GENERATED:
            gen_dir = out_dir / GENERATED[method]
            if gen_dir not in generated:
                generated[gen_dir] = read_coco(gen_dir / "annotations.json")
                check_labels_complete(generated[gen_dir], gen_dir, cfg.experiment.unlabelled_frames)
            parts.append(("generated", DatasetSplit(dose_prefix(generated[gen_dir], dose, gen_dir), gen_dir / "images")))
        elif method == "real+sources":
            gen_dir = out_dir / "generated"
            n_objects = inserted_objects(dose_prefix(read_coco(gen_dir / "annotations.json"), dose, gen_dir))
            sources = load_sources(out_dir / "sources")
            taken = sources_prefix(sources.dataset, n_objects)
            parts.append(("sources", DatasetSplit(taken, sources.images_root)))
            extra = {"sources_photos": len(taken.images), "sources_boxes": len(taken.annotations),
                     "pasted_objects_matched": n_objects}
        arm_dir = out_dir / "arms" / arm_dirname(arm)
        merged = link_merged(parts, arm_dir / "images")
        info = {**dict(merged.dataset.info), "arm": arm, "method": method, "dose": dose, **extra}
        merged = replace(merged, dataset=merged.dataset.with_(info=info))
        out[arm] = write_split(merged, arm_dir / "annotations.json")
    return out


def check_labels_complete(ds: Dataset, folder: Path, policy: str) -> int:
    """The number of images whose background objects are not all labelled; raises under `refuse`."""
    n = sum(im.attributes.get("labels_complete") is False for im in ds.images)
    if n and policy == "refuse":
        raise ValueError(
            f"{folder}: {n} of {len(ds.images)} generated images come from frames whose existing objects are not "
            "labelled (labels_complete: false); a detector would learn those objects as background. Give the scene "
            "source `pseudo_labels` (detector weights you have), set its `labels_complete: true` if it really is "
            "labelled, or set `experiment.unlabelled_frames: warn` to train anyway")
    return n


def sources_prefix(ds: Dataset, n_objects: int) -> Dataset:
    """The shortest prefix of the source photos (by id) whose boxes number at least `n_objects` (all of
    them when the bank has fewer: the manifest says so)."""
    per_image = ds.annotations_by_image()
    keep, boxes = [], 0
    for im in sorted(ds.images, key=lambda r: r.id):
        if boxes >= n_objects:
            break
        keep.append(im.id)
        boxes += len(per_image.get(im.id, []))
    return filter_dataset(ds, keep)


def allowed_roots(cfg: Config) -> list[Path]:
    """The folders this config declares as inputs: a source photo is read only from inside one of them."""
    roots = [Path(c.path) for c in cfg.generate.cutouts] + [Path(c.images_dir) for c in cfg.generate.cutouts
                                                           if c.images_dir is not None]
    return [r.resolve() if r.is_dir() else r.resolve().parent for r in roots]


def build_sources(cfg: Config, out_dir: Path, generated: Dataset, spelling: dict[str, str]) -> Path:
    """`sources/annotations.json` (+ `images/` links, `manifest.json`): every photo of the cut-out bank
    that names its file and box, ordered by first use in `generated` (image id order), then seeded.

    Boxes are the photo's own labels where its source has them (COCO and box datasets: also the objects the
    bank could not cut out, cut off by the border or too small); for mask folders (MSRC, Weizmann) the boxes
    of the cut-outs, so an object the bank skipped stays unlabelled there.
    """
    from roadsynth.generate.sources import build_bank_for

    folder = out_dir / "sources"
    bank = build_bank_for(cfg.generate)
    roots = allowed_roots(cfg)
    by_photo: dict[str, list] = {}
    problems = list(bank.problems)
    for c in bank.cutouts:
        if not (c.source_path and c.source_box and c.source_size):
            problems.append(f"cut-out {c.id}: its bank does not record its source photo and box (rebuild the bank)")
            continue
        p = Path(c.source_path)
        if not any(p.resolve().is_relative_to(r) for r in roots):
            problems.append(f"cut-out {c.id}: source photo {p} is outside the declared cut-out folders; not read")
            continue
        by_photo.setdefault(str(p), []).append(c)
    by_id = {c.id: c.source_path for cs in by_photo.values() for c in cs}
    order: list[str] = []
    per_image = generated.annotations_by_image()
    for im in sorted(generated.images, key=lambda r: r.id):
        for a in per_image.get(im.id, []):
            path = by_id.get(a.provenance.params.get("cutout_id")) if a.generated else None
            if path is not None and path not in order:
                order.append(path)
    rest = sorted(set(by_photo) - set(order))
    order += [rest[i] for i in np.random.default_rng(cfg.generate.seed).permutation(len(rest))]

    names = sorted({spelling.get(cat.lower(), cat) for cs in by_photo.values() for cat, _ in photo_labels(cs)})
    cat_id = {n.lower(): k + 1 for k, n in enumerate(names)}
    images, anns = [], []
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(order, start=1):
        src = Path(path)
        name = f"{k:05d}{src.suffix.lower()}"
        link = folder / "images" / name
        if not link.is_symlink():
            os.symlink(src.resolve(), link)
        w, h = by_photo[path][0].source_size
        images.append(ImageRecord(k, name, int(w), int(h), {"source": str(src), "scene": f"source:{src}"}))
        for cat, (x, y, bw, bh) in photo_labels(by_photo[path]):
            anns.append(Annotation(len(anns) + 1, k, cat_id[cat.lower()], Box(x, y, bw, bh), area=float(bw * bh)))
    ds = Dataset(tuple(images), tuple(anns), tuple(Category(k + 1, n) for k, n in enumerate(names)),
                 info={"description": "the cut-out bank's source photos with their boxes (real+sources control)"})
    write_coco(ds, folder / "annotations.json")
    atomic_write_json(folder / "manifest.json", {
        "photos": len(images), "boxes": len(anns), "photos_first_used_by_generated": len(order) - len(rest),
        "problems": problems}, indent=1)
    return folder


def photo_labels(cutouts: list) -> list[tuple[str, tuple[int, int, int, int]]]:
    """A source photo's labels: every labelled object where its source knows them, else the boxes of the
    cut-outs taken from it."""
    known = next((c.source_labels for c in cutouts if c.source_labels), None)
    return list(known) if known else [(c.category, c.source_box) for c in cutouts]


def load_sources(folder: Path) -> DatasetSplit:
    return DatasetSplit(read_coco(folder / "annotations.json"), folder / "images")
