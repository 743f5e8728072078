"""Experiment commands: experiment, report, quickstart, the starter detector and the box segmenter, scheduled
deployments."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from roadsynth.cli.base import OVERWRITE, VERBOSE, _fail, _load, _read_json, command, console



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


@command("train-starter")
def train_starter(
    config: Path = typer.Argument(..., help="starter YAML config (see configs/starter.yaml)"),
    out: Path = typer.Option(..., "--out", help="output folder: weights.pt, classes.json, manifest.json"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train a starter detector that knows common road classes but no long-tail class (up to ~2 h on 2 cores)."""
    from roadsynth.config import StarterConfig
    from roadsynth.detectors.starter import train_starter as run

    manifest = run(_load(config, StarterConfig), out, overwrite=overwrite)
    m = manifest["val_metrics"]
    console.print(f"[green]{out / manifest['weights']}: {manifest['n_images']['train']} train images, "
                  f"val mAP50 {m['mAP50']:.3f}, mAP50-95 {m['mAP50_95']:.3f}[/green]")


@command("train-segmenter")
def train_segmenter(
    config: Path = typer.Argument(..., help="segmenter YAML config (see configs/box_segmenter.yaml)"),
    out: Path = typer.Option(..., "--out", help="output folder: weights.safetensors, manifest.json"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train the box segmenter: the learned box-to-mask step for box-only cut-out sources (~40 min on 2 cores)."""
    from roadsynth.config.segmenter import SegmenterConfig
    from roadsynth.generators.segmenter_train import train_segmenter as run

    m = run(_load(config, SegmenterConfig), out, overwrite=overwrite)
    v = m["validation"]["all"]
    console.print(f"[green]{out / m['weights']}: {m['n_instances']['train']} training instances, threshold "
                  f"{m['model']['threshold']}, validation ({v['n']} masks) mean IoU "
                  f"{v.get('mean_iou', float('nan')):.3f}, below 0.6 {v.get('below_0.6', float('nan')):.1%}[/green]")
    if v.get("kept"):
        k = v["kept"]
        console.print(f"certainty floor {m['model']['min_certainty']}: refuses {v['refused']:.1%} of validation; "
                      f"the kept {k.get('mean_iou', float('nan')):.3f}, below 0.6 {k.get('below_0.6', float('nan')):.1%}")


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
    path = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    if not path.exists():
        _fail(f"{path} not found: run the quickstart from a roadsynth checkout (it uses the bundled data/sample)")
    return path


@command()
def quickstart(out: Path = typer.Option(Path("runs/quickstart"), "--out", help="output folder"),
               overwrite: bool = OVERWRITE, verbose: bool = VERBOSE) -> None:
    """The bundled long-tail ambulance experiment (about 6 minutes on 2 CPU cores)."""
    experiment(quickstart_config(), out, overwrite, verbose)
