"""`scalelab calibrate`: measure this machine and write a device profile for `--device FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scalelab.cli.app import app, emit, friendly


@app.command()
@friendly
def calibrate(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the profile YAML here (atomically); default: print it."),
    device: str = typer.Option("cpu", "--on", help="What to measure: cpu, or cuda / cuda:N where a GPU is present."),
    name: str = typer.Option("calibrated", "--name", help="Name of the profile."),
) -> None:
    """Measure matmul throughput, memory bandwidth, launch overhead and per-kind efficiency of this
    machine, and write a device profile usable with `analyze --device FILE`."""
    from scalelab.devices.calibrate import calibrate as run

    profile = run(device, name)
    header = ("# Device profile written by `scalelab calibrate`; every figure is measured on this machine\n"
              "# (see sources and calibration). Use it with: scalelab analyze SPEC --device THIS_FILE\n")
    emit(header + profile.to_yaml(), output)
