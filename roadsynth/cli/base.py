"""What every `roadsynth` command shares: the Typer app, the console, one-line errors, config loading."""

from __future__ import annotations

import functools
import os
from enum import Enum
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="`roadsynth` command line (Typer). Commands call the same library functions / Prefect flows as Python users.")
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
VERBOSE = typer.Option(False, "--verbose", help="show each training's Ultralytics output live (always in runs/*/train.log)")


def _fail(msg: str, code: int = 2) -> None:
    console.print("[red]error:[/red]", escape(msg))
    raise typer.Exit(code)


def _load(config: Path, model: type | None = None):
    """A run's config, or with `model` a config of that type (the starter's, the segmenter's); errors exit 2."""
    from roadsynth.config import ConfigError, load_model, run_config

    try:  # a run's is parsed once per process: a Prefect flow run in this process takes the same parse
        return run_config(config) if model is None else load_model(config, model)
    except ConfigError as e:
        _fail(str(e))


def _read_json(path: Path, what: str):
    from roadsynth.datasets.io import read_json  # not at import: it loads numpy and Pillow

    return read_json(path, what)


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
