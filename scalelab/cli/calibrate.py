"""`scalelab calibrate`: measure this machine and write a device profile for `--device FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scalelab.analysis.noise import MAX_OTHER_CPUS, MAX_SPREAD, NoiseLimits
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.output import check_output_file


@app.command()
@friendly
def calibrate(
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the profile YAML here (atomically); default: print it."),
    device: str = typer.Option("cpu", "--on", parser=O.DEVICE, help="What to measure: cpu, or cuda / cuda:N where a GPU is present."),
    name: str = typer.Option("calibrated", "--name", parser=O.NAME, help="Name of the profile."),
    networks: Optional[int] = typer.Option(None, "--networks", parser=O.ROWS,
                                           help="Fit on the first N synthetic networks only (default: all; quicker, less exact)."),
    max_load: float = typer.Option(MAX_OTHER_CPUS, "--max-load", parser=O.NON_NEGATIVE,
                                   help="Most CPUs other processes may keep busy while measuring."),
    max_spread: float = typer.Option(MAX_SPREAD, "--max-spread", parser=O.NON_NEGATIVE,
                                     help="Most repeated rounds of timings may disagree (a fraction)."),
    allow_noisy: bool = typer.Option(False, "--allow-noisy",
                                     help="Keep a measurement that stays beyond the limits, marked noisy in the profile."),
) -> None:
    """Measure this machine and write a device profile usable with `analyze --device FILE`.

    Floors first (matrix-multiply peak, in-cache bandwidth, each layer kind's fixed cost on tiny \
inputs), then a fixed, seeded set of synthetic networks timed whole; per layer kind the rate, \
the thin-layer slowdown and the fixed cost, and the bandwidth, are fitted to them by non-negative \
least squares on relative error. The fit's own error and its leave-one-out error are printed and \
recorded in the profile.

On a busy machine it waits and measures again (back-off), then refuses (exit 2) naming the \
competing load and the disagreement of repeated rounds; a fit whose leave-one-out error is \
too large is written with a warning that every prediction from the profile repeats."""
    check_output_file(output)  # before minutes of measuring
    # start-up: the command's own modules load when it runs, not with --help
    from scalelab.analysis.calibrate import calibrate as run

    limits = NoiseLimits(max_other_cpus=max_load, max_spread=max_spread)
    profile = run(device, name, networks=networks, limits=limits, allow_noisy=allow_noisy)
    c = profile.calibration
    assert c is not None  # a calibrated profile records how it was fitted
    typer.echo(f"fitted on {c['synthetic_networks']} synthetic networks timed whole: median error "
               f"{c['fit_median_error']:.1%}, max {c['fit_max_error']:.1%}, leave-one-out median "
               f"{c['held_out_median_error']:.1%}; competing load {c['competing_load_cpus']:.2f} CPUs", err=True)
    if "warning" in c:
        typer.echo(f"warning: {c['warning']}", err=True)
    header = ("# Device profile written by `scalelab calibrate`; every figure is measured on this machine\n"
              "# (see sources and calibration). Use it with: scalelab analyze SPEC --device THIS_FILE\n")
    emit(header + profile.to_yaml(), output)
