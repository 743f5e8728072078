"""`roadsynth` command line (Typer). Commands call the same library functions / Prefect flows as Python users."""

from __future__ import annotations

import functools
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True, soft_wrap=True)
_STATE = {"debug": False}


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="show the full traceback when something fails")) -> None:
    """Synthetic long-tail training data for automotive perception, and an honest A/B answer to "did it help?"."""
    _STATE["debug"] = debug
    if not debug:  # Prefect would log every failed task's traceback; the command prints one line instead
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")


def command(*args, **kwargs):
    """`app.command`, with any error shown as one line (`--debug` for the traceback)."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*a, **k):
            try:
                return fn(*a, **k)
            except (typer.Exit, typer.Abort, click.ClickException, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001 - every failure reaches the user as one line
                if _STATE["debug"]:
                    raise
                first = _one_line(e)
                # Bad input (ValueError, OSError) is explained by its message; anything else may be a bug.
                hint = "" if isinstance(e, (ValueError, OSError)) else f" ({type(e).__name__}; --debug shows where)"
                _fail(first + hint, code=1)
        return app.command(*args, **kwargs)(run)
    return wrap


def _one_line(e: Exception) -> str:
    """The first line of an error's message. An OS error from a library names its file the Python way
    ("[Errno 28] No space left on device: 'x.jpg'"); it is said as roadsynth's own are: the file first."""
    from roadsynth.datasets.io import FileOpError  # not at import: it loads numpy and Pillow

    if isinstance(e, OSError) and not isinstance(e, FileOpError) and e.strerror and e.filename is not None:
        files = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
        return f"{files}: {e.strerror[:1].lower()}{e.strerror[1:]}"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class Engine(str, Enum):
    auto = "auto"
    prefect = "prefect"
    local = "local"


OVERWRITE = typer.Option(False, "--overwrite", help="write into a folder that is not (or not this config's) "
                                                    "roadsynth output: replaces roadsynth's own outputs there")


def _fail(msg: str, code: int = 2) -> None:
    console.print("[red]error:[/red]", escape(msg))
    raise typer.Exit(code)


def _load(config: Path):
    from roadsynth.config import ConfigError, load_config

    try:
        return load_config(config)
    except ConfigError as e:
        _fail(str(e))


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


class ImportFormat(str, Enum):
    yolo = "yolo"
    coco = "coco"
    kitti = "kitti"
    nuscenes = "nuscenes"
    nuimages = "nuimages"
    bdd100k = "bdd100k"
    cityscapes = "cityscapes"


@command("import")
def import_(
    fmt: ImportFormat = typer.Argument(..., help="source format"),
    src: Path = typer.Argument(..., help="YOLO / KITTI / nuScenes / nuImages / Cityscapes root, or COCO / BDD100K labels JSON"),
    out: Path = typer.Option(..., "--out", help="output folder: annotations.json + images/"),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help="coco and bdd100k: the images folder"),
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

    if fmt in (ImportFormat.coco, ImportFormat.bdd100k) and images_root is None:
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


def _read_json(path: Path, what: str):
    from roadsynth.datasets.io import read_json  # not at import: it loads numpy and Pillow

    return read_json(path, what)


@command()
def generate(
    config: Path = typer.Argument(..., help="roadsynth YAML config"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    engine: Engine = typer.Option(Engine.auto, help="auto: prefect with a Prefect server or Dask/Ray, else local; "
                                                    "prefect: a flow with one task per chunk; local: in-process"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Generate a COCO dataset with inserted objects (resumable: finished chunks are kept)."""
    from roadsynth.runs import run_generation

    images, annotations = run_generation(config, _load(config), out, engine.value, "generating chunks", overwrite,
                                         console)
    console.print(f"[green]{images} images, {annotations} annotations -> {out}[/green]")
    for line in _read_json(out / "manifest.json", "generation manifest").get("ego_warnings", []):
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
    _print_failures(out)


@command()
def restyle(
    config: Path = typer.Argument(..., help="roadsynth YAML config with `generate.restyle` and/or `generate.weather`"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    engine: Engine = typer.Option(Engine.auto, help="auto: prefect with a Prefect server or Dask/Ray, else local; "
                                                    "prefect: a flow with one task per chunk; local: in-process"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Restyle vehicles and/or apply weather to real frames, keeping their labels (no objects inserted)."""
    from roadsynth.config import save_config
    from roadsynth.datasets.outdir import claim

    cfg = _load(config)
    g = cfg.generate
    if g.restyle is None and g.weather is None:
        _fail(f"{config}: `roadsynth restyle` needs `generate.restyle` and/or `generate.weather`")
    cfg = cfg.model_copy(update={"generate": g.model_copy(update={"insert": None})})
    claim(out, "generate", cfg.digest(), overwrite=overwrite)
    resolved = out / "restyle_config.yaml"
    save_config(cfg, resolved)
    from roadsynth.runs import run_generation

    images, annotations = run_generation(resolved, cfg, out, engine.value, "restyling chunks", overwrite, console)
    manifest = _read_json(out / "manifest.json", "generation manifest")
    console.print(f"[green]{images} images, {annotations} annotations -> {out}; conditions {manifest['conditions']}, "
                  f"{manifest['restyled_objects']} vehicles restyled ({manifest['restyle_refused']} refused)[/green]")
    _print_failures(out)


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


@command()
def ui(
    config: Optional[Path] = typer.Option(None, "--config", help="roadsynth config: enables Generate (scene frames, cut-outs)"),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="a generated dataset folder to review and curate"),
    experiment: Optional[Path] = typer.Option(None, "--experiment", help="an experiment folder: its detectors for the Detections view"),
    session: Optional[Path] = typer.Option(None, "--session", help="where generated samples go (default runs/ui/<UTC time>)"),
    bank: Optional[Path] = typer.Option(None, "--bank", help="a cut-out bank folder (`roadsynth cutouts`) to review"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind (localhost by default)"),
    port: int = typer.Option(7860, "--port"),
) -> None:
    """Browser UI: generate samples (Paste / Ours (inpainting) / Original), compare, review and curate (the ui extra)."""
    import datetime as dt

    try:
        from roadsynth.ui import build_app, launch
    except ImportError as e:
        _fail(f"the UI needs Gradio: pip install -e \".[ui]\" ({e})")
    studio = None
    if config is not None:
        from roadsynth.review import Studio

        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        studio = Studio(_load(config), session or Path("runs") / "ui" / stamp, config_path=config)
        console.print(f"samples go to {studio.session}")
    if dataset is not None and not (dataset / "annotations.json").is_file():
        _fail(f"{dataset}: not a generated dataset folder (no annotations.json)")
    if experiment is not None and not (experiment / "splits" / "test.json").is_file():
        _fail(f"{experiment}: not an experiment folder (no splits/test.json)")
    if bank is not None and not (bank / "index.json").is_file():
        _fail(f"{bank}: not a cut-out bank (no index.json)")
    try:
        app = build_app(studio=studio, dataset=dataset, experiment=experiment, bank=bank)
    except ValueError as e:
        _fail(str(e))
    launch(app, host, port)


def _print_failures(out: Path) -> None:
    manifest = _read_json(out / "manifest.json", "generation manifest")
    failures = manifest.get("failures", [])
    _print_skipped(f"bad inputs skipped (copies and reasons in {out / 'quarantine'})",
                   [f"{f['file']}: {f['error']}" for f in failures])
    if failures and not manifest.get("images"):
        _fail(f"no image was made: every input frame failed (first: {failures[0]['error']})")


def _print_skipped(what: str, lines: list[str]) -> None:
    if lines:
        console.print(f"[yellow]{len(lines)} {what}:[/yellow]")
        for line in lines[:10]:
            console.print(f"  {line}", markup=False)
        if len(lines) > 10:
            console.print(f"  ... and {len(lines) - 10} more")


@command()
def place(
    config: Path = typer.Argument(..., help="roadsynth YAML config"),
    out: Path = typer.Option(..., "--out", help="output folder: placements.json + overlay images"),
    n: int = typer.Option(8, "--n", min=1, help="number of planned frames to preview"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Preview placements (no insertion): where objects would go, how big, and why."""
    from roadsynth.datasets.outdir import claim
    from roadsynth.generate import place_preview

    cfg = _load(config)
    claim(out, "place", cfg.digest(), overwrite=overwrite)
    rows = place_preview(cfg, out, n)
    placed = sum(len(r["placements"]) for r in rows)
    unplaced = sum(len(r["unplaced"]) for r in rows)
    console.print(f"[green]{placed} placements ({unplaced} not placed) in {len(rows)} frames -> {out}[/green]")


VERBOSE = typer.Option(False, "--verbose", help="show each training's Ultralytics output live (always in runs/*/train.log)")


@command()
def experiment(
    config: Path = typer.Argument(..., help="roadsynth YAML config with an `experiment` section"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    overwrite: bool = OVERWRITE,
    verbose: bool = VERBOSE,
) -> None:
    """Run the A/B experiment (real vs real+generated) and write report.md + metrics.json."""
    cfg = _load(config)
    if cfg.experiment is None:
        _fail(f"{config}: config has no `experiment` section")
    from roadsynth.flows._prefect import embedded_run_settings
    from roadsynth.flows.experiment import augmentation_experiment
    from roadsynth.runs import experiment_progress

    console.print(f"experiment {cfg.name} -> {out} (Prefect flow on an embedded server; the first start takes 10-30 s)")
    with embedded_run_settings(), experiment_progress(out, cfg, console):
        augmentation_experiment(str(config.resolve()), str(out), overwrite, verbose)
    timings = _read_json(out / "timings.json", "timings")
    console.print(f"[green]report: {out / 'report.md'}[/green] (generation {timings['splits_and_generation_s']:.0f} s, "
                  f"trainings {timings['trainings_s']:.0f} s, report {timings['report_s']:.0f} s)")
    print(report_summary((out / "report.md").read_text()))


def report_summary(markdown: str) -> str:
    """The report's verdict and arms table: what a person reads first (the whole report is in report.md)."""
    keep, out = False, []
    for line in markdown.splitlines():
        if line.startswith("## "):
            keep = line.startswith(("## Verdict", "## Arms"))
        if keep and not line.startswith("![") and not (not line.strip() and out and not out[-1].strip()):
            out.append(line)  # figures are for report.html; one blank line where one stood
    return "\n".join(out).strip()


@command("cutouts")
def cutouts(
    src: Path = typer.Argument(..., help="a labelled dataset: YOLO / KITTI / ... root, COCO or BDD100K labels JSON, an "
                                         "MSRC or Weizmann folder"),
    fmt: str = typer.Option(..., "--format", help="yolo coco kitti nuscenes nuimages bdd100k cityscapes msrc weizmann"),
    out: Path = typer.Option(..., "--out", help="the bank folder: one PNG per cut-out, index.json, manifest.json"),
    images_root: Optional[Path] = typer.Option(None, "--images-root", help="coco and bdd100k: the images folder"),
    class_map: list[str] = typer.Option([], "--class-map", help="SOURCE=NAME: take this class, named NAME in the "
                                                                "bank (repeatable; default every class)"),
    min_quality: Optional[float] = typer.Option(None, "--min-quality", help="refuse cut-outs whose mask quality "
                                                "score is below this (kept in the folder, marked kept: false)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Build a reusable, scored cut-out bank from a labelled dataset (use it as `cutouts: [{kind: bank, path: OUT}]`)."""
    from roadsynth.datasets.outdir import claim
    from roadsynth.generators.bank import build_from_dataset, save_bank

    formats = ("yolo", "coco", "kitti", "nuscenes", "nuimages", "bdd100k", "cityscapes", "msrc", "weizmann")
    if fmt not in formats:
        _fail(f"`--format` must be one of {', '.join(formats)}, but got {fmt!r}")
    if min_quality is not None and not 0 <= min_quality <= 1:
        _fail(f"`--min-quality` must be in [0, 1], but got {min_quality}")
    bad = [m for m in class_map if "=" not in m or not m.split("=", 1)[0].strip()]
    if bad:
        _fail(f"`--class-map` must look like SOURCE=NAME, but got {bad[0]!r}")
    claim(out, "cutouts", overwrite=overwrite)
    bank = build_from_dataset(fmt, src, images_root=images_root,
                              class_map=dict(m.split("=", 1) for m in class_map) or None)
    if not bank.cutouts:
        _fail(f"{src}: no usable cut-out (objects too small, cut off by the border, or no such class)")
    m = save_bank(bank, out, min_quality)
    console.print(f"{m['kept']} cut-outs kept, {m['refused']} refused (mask quality < {min_quality}) -> {out}"
                  if min_quality is not None else f"{m['kept']} cut-outs -> {out}")
    console.print(f"per class: {m['kept_per_class']}; mask methods: {m['mask_methods']}; quality quartiles: "
                  f"{m['quality_quartiles']}")
    _print_skipped("source files that could not be used", bank.problems)


@command("train-starter")
def train_starter(
    config: Path = typer.Argument(..., help="starter YAML config (see configs/starter.yaml)"),
    out: Path = typer.Option(..., "--out", help="output folder: weights.pt, classes.json, manifest.json"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train a starter detector that knows common road classes but no long-tail class (up to ~2 h on 2 cores)."""
    from roadsynth.config import ConfigError, StarterConfig, load_model
    from roadsynth.detectors.starter import train_starter as run

    try:
        cfg = load_model(config, StarterConfig)
    except ConfigError as e:
        _fail(str(e))
    manifest = run(cfg, out, overwrite=overwrite)
    m = manifest["val_metrics"]
    console.print(f"[green]{out / manifest['weights']}: {manifest['n_images']['train']} train images, "
                  f"val mAP50 {m['mAP50']:.3f}, mAP50-95 {m['mAP50_95']:.3f}[/green]")


class FlowKind(str, Enum):
    generate = "generate"
    experiment = "experiment"


@command()
def deploy(
    config: Path = typer.Argument(..., help="roadsynth YAML config"),
    cron: str = typer.Option(..., "--cron", help='schedule, e.g. "0 2 * * *" (02:00 every day)'),
    out_root: Path = typer.Option(Path("runs/scheduled"), "--out-root", help="each run writes a dated folder here"),
    name: Optional[str] = typer.Option(None, "--name", help="deployment name (default: the config's name)"),
    kind: FlowKind = typer.Option(FlowKind.generate, "--flow", help="what each scheduled run does"),
) -> None:
    """Create a cron-scheduled Prefect deployment and serve it (needs a Prefect server, see docs/production.md)."""
    cfg = _load(config)
    from roadsynth.flows.deploy import require_server, serve_deployment, valid_cron

    if not valid_cron(cron):
        _fail(f"`--cron` must be a cron expression like \"0 2 * * *\", but got {cron!r}")
    try:
        url = require_server()
    except RuntimeError as e:
        _fail(str(e))
    console.print(f"serving deployment [bold]{name or cfg.name}[/bold] ({cron}) on {url}; runs -> {out_root}/<date>")
    serve_deployment(str(config), cron, str(out_root), name or cfg.name, kind.value)


@command()
def report(run_dir: Path = typer.Argument(..., help="an experiment output folder")) -> None:
    """Re-render report.md / report.html / metrics.json from an experiment's saved runs."""
    from roadsynth.experiment import finish_report

    cfg = _load(run_dir / "config.yaml")
    try:
        finish_report(cfg, run_dir)
    except FileNotFoundError as e:
        _fail(str(e))
    console.print(f"[green]report: {run_dir / 'report.md'}[/green]")


def quickstart_config() -> Path:
    path = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"
    if not path.exists():
        _fail(f"{path} not found: run the quickstart from a roadsynth checkout (it uses the bundled data/sample)")
    return path


@command()
def quickstart(out: Path = typer.Option(Path("runs/quickstart"), "--out", help="output folder"),
               overwrite: bool = OVERWRITE, verbose: bool = VERBOSE) -> None:
    """The bundled long-tail ambulance experiment (about 6 minutes on 2 CPU cores)."""
    experiment(quickstart_config(), out, overwrite, verbose)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="roadsynth")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
