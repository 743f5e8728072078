"""Dataset commands: validate, import, export, and cut-out banks."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from roadsynth.cli.base import OVERWRITE, _fail, _print_skipped, command, console
from roadsynth.datasets.registry import FORMATS

# Cut-out banks come from any dataset format, and from two mask sets that are no detection datasets.
CUTOUT_FORMATS = (*FORMATS, "msrc", "weizmann")



@command()
def validate(
    annotations: Path = typer.Argument(..., help="COCO annotations JSON"),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help="folder the file_names are relative to"),
    as_json: bool = typer.Option(False, "--json", help="print problems as a JSON list (each with its `level`)"),
    no_images: bool = typer.Option(False, "--no-images", help="skip opening image files"),
    strict: bool = typer.Option(False, "--strict", help="fail on warnings too (e.g. image files no record names)"),
) -> None:
    """Check a COCO dataset; exit 0 when valid (warnings allowed unless --strict), 1 with one line per problem otherwise."""
    from roadsynth.datasets.validate import validate_coco_file

    problems = validate_coco_file(annotations, images_root, check_images=not no_images and images_root is not None)
    errors = [p for p in problems if p.level == "error"]
    if as_json:
        print(json.dumps([{"where": p.where, "message": p.message, "level": p.level} for p in problems], indent=2))
    else:
        for p in problems:
            print(str(p) if p.level == "error" else f"{p.level}: {p}")
        if not errors:
            warned = f" ({len(problems)} warning{'s' if len(problems) > 1 else ''})" if problems else ""
            console.print(f"[green]{escape(str(annotations))}: valid{warned}[/green]")
    raise typer.Exit(1 if errors or (strict and problems) else 0)


ImportFormat = Enum("ImportFormat", {name: name for name in FORMATS}, type=str)  # the registry's, in its order
NEED_IMAGES_ROOT = " and ".join(name for name, f in FORMATS.items() if f.needs_images_root)


@command("import")
def import_(
    fmt: ImportFormat = typer.Argument(..., help="source format"),
    src: Path = typer.Argument(..., help="; ".join(f"{name}: {f.path}" for name, f in FORMATS.items())),
    out: Path = typer.Option(..., "--out", help="output folder: annotations.json + images/"),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help=f"{NEED_IMAGES_ROOT}: the images folder"),
    copy: bool = typer.Option(False, "--copy", help="copy images instead of symlinking the images folder"),
    version: Optional[str] = typer.Option(None, "--version", help="nuscenes / nuimages: table folder, e.g. "
                                                                  "v1.0-trainval (default v1.0-mini)"),
    split_name: Optional[str] = typer.Option(None, "--split", help="cityscapes: the split to read (default train)"),
    class_map: list[str] = typer.Option([], "--class-map", help="SOURCE=NAME: rename a source class (repeatable)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Import a dataset into roadsynth's layout (validated COCO + images/, calibration as `camera` blocks)."""
    from roadsynth.config.experiment import DatasetSource
    from roadsynth.datasets.importer import import_dataset

    if FORMATS[fmt.value].needs_images_root and images_root is None:
        _fail(f"`--images-root` is required for {fmt.value} imports")
    bad = [m for m in class_map if "=" not in m or not m.split("=", 1)[0].strip()]
    if bad:
        _fail(f"`--class-map` must look like SOURCE=NAME, but got {bad[0]!r}")
    try:  # the same checks as a config's dataset section (which options apply to which format)
        options = DatasetSource(format=fmt.value, path=src, images_root=images_root, version=version, split=split_name,
                                class_map=dict(m.split("=", 1) for m in class_map)).reader_options()
    except ValueError as e:
        _fail(str(e.errors()[0]["msg"]).removeprefix("Value error, ") if hasattr(e, "errors") else str(e))
    split, problems = import_dataset(fmt.value, src, out, images_root=images_root, copy=copy, overwrite=overwrite,
                                     **options)
    ds = split.dataset
    console.print(f"{len(ds.images)} images, {len(ds.annotations)} annotations, {len(ds.categories)} categories "
                  f"-> {out / 'annotations.json'}")
    _print_skipped("items the reader skipped or kept with a warning (also in annotations.json `info.problems`)",
                   [str(x) for x in ds.info.get("problems", [])])
    for p in problems:
        print(f"{getattr(p, 'level', 'error')}: {p}")
    # Warnings (images the annotations do not name, in a shared folder) are information, not a failure.
    errors = [p for p in problems if getattr(p, "level", "error") == "error"]
    raise typer.Exit(1 if errors or not ds.images else 0)


class ExportFormat(str, Enum):
    coco = "coco"
    yolo = "yolo"


@command()
def export(
    dataset: Path = typer.Argument(..., help="a dataset folder (annotations.json + images/), e.g. a generated one"),
    out: Path = typer.Option(..., "--out", help="the export folder (for coco, a .json path writes only the file)"),
    fmt: ExportFormat = typer.Option(ExportFormat.coco, "--format", help="coco: standard COCO; yolo: Ultralytics-ready"),
    curated: bool = typer.Option(False, "--curated", help="export curated.json (the UI's accept/reject decisions)"),
    task: str = typer.Option("detect", "--task", help="yolo: detect (boxes) or segment (polygons where masks exist)"),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="yolo: share of images (by scene) in val"),
    copy: bool = typer.Option(False, "--copy", help="copy images (default: hard links, copies across filesystems)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Standard COCO (FiftyOne, CVAT, pycocotools) or an Ultralytics-ready YOLO folder (see docs/formats.md)."""
    from roadsynth.datasets.coco import read_coco
    from roadsynth.datasets.export import export_coco, export_yolo, standard_coco
    from roadsynth.datasets.io import atomic_write_json
    from roadsynth.datasets.records import DatasetSplit

    if task not in ("detect", "segment"):
        _fail(f"`--task` must be detect or segment, but got {task!r}")
    ds = read_coco(dataset / ("curated.json" if curated else "annotations.json"))
    split = DatasetSplit(ds, dataset / "images")
    link = "copy" if copy else "hardlink"
    if fmt is ExportFormat.coco and out.suffix == ".json":
        if out.exists() and not overwrite:
            _fail(f"{out}: exists; choose another file, or pass --overwrite to replace it", 1)
        atomic_write_json(out, standard_coco(ds))
        written = out
    elif fmt is ExportFormat.coco:
        written = export_coco(split, out, link=link, overwrite=overwrite)
    else:
        written = export_yolo(split, out, val_fraction=val_fraction, task=task, link=link, overwrite=overwrite)
    console.print(f"[green]{len(ds.images)} images, {len(ds.annotations)} annotations -> {written}[/green]")


@command("cutouts")
def cutouts(
    src: Path = typer.Argument(..., help="a labelled dataset: YOLO / KITTI / ... root, COCO or BDD100K labels JSON, an "
                                         "MSRC or Weizmann folder"),
    fmt: str = typer.Option(..., "--format", help=" ".join(CUTOUT_FORMATS)),
    out: Path = typer.Option(..., "--out", help="the bank folder: one PNG per cut-out, index.json, manifest.json"),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help=f"{NEED_IMAGES_ROOT}: the images folder"),
    class_map: list[str] = typer.Option([], "--class-map", help="SOURCE=NAME: take this class, named NAME in the "
                                                                "bank (repeatable; default every class)"),
    min_quality: Optional[float] = typer.Option(None, "--min-quality", help="refuse cut-outs whose mask quality "
                                                "score is below this (kept in the folder, marked kept: false)"),
    segmenter: Optional[Path] = typer.Option(None, "--segmenter", help="a box segmenter folder (roadsynth "
                                             "train-segmenter, e.g. models/box_segmenter) to cut the masks of a "
                                             "box-only dataset; default GrabCut"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Build a reusable, scored cut-out bank from a labelled dataset (use it as `cutouts: [{kind: bank, path: OUT}]`)."""
    from roadsynth.datasets.outdir import claim
    from roadsynth.generators.bank import MASK_FORMATS, build_from_dataset, save_bank

    if fmt not in CUTOUT_FORMATS:
        _fail(f"`--format` must be one of {', '.join(CUTOUT_FORMATS)}, but got {fmt!r}")
    if min_quality is not None and not 0 <= min_quality <= 1:
        _fail(f"`--min-quality` must be in [0, 1], but got {min_quality}")
    bad = [m for m in class_map if "=" not in m or not m.split("=", 1)[0].strip()]
    if bad:
        _fail(f"`--class-map` must look like SOURCE=NAME, but got {bad[0]!r}")
    if segmenter is not None and fmt in MASK_FORMATS:
        _fail(f"`--segmenter` cuts masks from boxes, but a {fmt} dataset has its own masks")
    claim(out, "cutouts", overwrite=overwrite)
    try:
        bank = build_from_dataset(fmt, src, images_root=images_root, segmenter=segmenter,
                                  class_map=dict(m.split("=", 1) for m in class_map) or None)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if not bank.cutouts and not bank.unsure:
        _fail(f"{src}: no usable cut-out (objects too small, cut off by the border, or no such class)")
    m = save_bank(bank, out, min_quality)
    why = "; ".join(f"{n} {reason}" for reason, n in m["refused_per_reason"].items())
    console.print(f"{m['kept']} cut-outs kept, {m['refused']} refused ({why}) -> {out}" if m["refused"]
                  else f"{m['kept']} cut-outs -> {out}")
    console.print(f"per class: {m['kept_per_class']}; mask methods: {m['mask_methods']}; quality quartiles: "
                  f"{m['quality_quartiles']}")
    _print_skipped("source files that could not be used", bank.problems)
