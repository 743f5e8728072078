"""`roadsynth` command line (Typer). Commands call the same library functions / Prefect flows as Python users.

`base.py` holds the app and what the commands share; each module below adds its commands to the app.
"""

from __future__ import annotations

import sys

from roadsynth.cli import data, generation, experiments  # noqa: F401, I001  (each adds its commands to `app`, in --help order)
from roadsynth.cli.base import app
from roadsynth.cli.experiments import quickstart_config, report_summary  # noqa: F401  (used by tests, benchmarks)

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="roadsynth")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
