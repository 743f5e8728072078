"""Generation commands: generate, restyle, place, and the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from roadsynth.cli.base import OVERWRITE, Engine, _fail, _load, _print_failures, _read_json, command, console

ENGINE = typer.Option(Engine.auto, help="auto: prefect with a Prefect server or Dask/Ray, else local; "
                                        "prefect: a flow with one task per chunk; local: in-process")


@command()
def generate(
    config: Path = typer.Argument(..., help="roadsynth YAML config"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    engine: Engine = ENGINE,
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
    engine: Engine = ENGINE,
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
