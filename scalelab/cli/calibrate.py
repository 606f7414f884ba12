"""`scalelab calibrate`: measure this machine, or fit a GPU profile on a published table (--from-table),
and write a device profile for `--device FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scalelab.analysis.noise import MAX_OTHER_CPUS, MAX_SPREAD, NoiseLimits
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.devices import DeviceProfile
from scalelab.errors import ScalelabError
from scalelab.output import check_output_file

HEADER = ("# Device profile written by `scalelab calibrate`; every figure is measured on this machine\n"
          "# (see sources and calibration). Use it with: scalelab analyze SPEC --device THIS_FILE\n")
TABLE_HEADER = ("# Device profile written by `scalelab calibrate --from-table`: datasheet figures of {base}, unknowns\n"
                "# fitted on {table} (see sources, errors and calibration). Use it with: scalelab analyze SPEC --device THIS_FILE\n")
#: options of measuring this machine, which a fit on a table does not take (name, given?)
MEASURING = ("--on", "--networks", "--max-load", "--max-spread", "--allow-noisy")
#: options of --from-table only
TABLE_ONLY = ("--device", "--dtype", "--models", "--filter", "--column", "--no-cache")


@app.command()
@friendly
def calibrate(
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the profile YAML here (atomically); default: print it."),
    device: str = typer.Option("cpu", "--on", parser=O.DEVICE, help="What to measure: cpu, or cuda / cuda:N where a GPU is present."),
    name: str = typer.Option("calibrated", "--name", parser=O.NAME, help="Name of the profile."),
    networks: Optional[int] = typer.Option(None, "--networks", parser=O.ROWS,
                                           help="Fit on the first N synthetic networks only, besides the real-shaped ones (default: all; quicker, less exact)."),
    max_load: float = typer.Option(MAX_OTHER_CPUS, "--max-load", parser=O.NON_NEGATIVE,
                                   help="Most CPUs other processes may keep busy while measuring (beyond: wait, then refuse)."),
    max_spread: float = typer.Option(MAX_SPREAD, "--max-spread", parser=O.NON_NEGATIVE,
                                     help="Most a kept timing may still move between halves of its rounds (a fraction) "
                                          "once they are spent (beyond: measure again, then refuse)."),
    allow_noisy: bool = typer.Option(False, "--allow-noisy",
                                     help="Keep a measurement that stays beyond the limits, marked noisy in the profile."),
    from_table: Optional[Path] = typer.Option(None, "--from-table", parser=O.TABLE, metavar="FILE.csv",
                                              help="Fit a GPU profile on a published benchmark table (timm's results CSV) "
                                                   "instead of measuring this machine; needs --device."),
    base: Optional[str] = typer.Option(None, "--device", parser=O.PROFILE,
                                       help="With --from-table: the GPU's profile (name or file) whose datasheet figures are kept."),
    dtype: str = typer.Option("amp", "--dtype", parser=O.DTYPE,
                              help="With --from-table: the precision the table was measured in (timm's infer-amp tables: amp)."),
    models: Optional[str] = typer.Option(None, "--models", parser=O.NAME,
                                         help="With --from-table: fit on these models only (comma-separated, as the table names them)."),
    pattern: Optional[str] = typer.Option(None, "--filter", parser=O.NAME,
                                          help="With --from-table: fit on the models matching this shell pattern (resnet*)."),
    column: list[str] = typer.Option([], "--column", parser=O.NAME, metavar="KEY=NAME",
                                     help="With --from-table: the table's column for KEY (model, img_size, batch, "
                                          "throughput), if not timm's; repeatable."),
    no_cache: bool = typer.Option(False, "--no-cache", help="With --from-table: import models again instead of "
                                                            "using the cache of earlier imports."),
) -> None:
    """Measure this machine and write a device profile usable with `analyze --device FILE`.

    Floors first (matrix-multiply peak, in-cache bandwidth, each layer kind's fixed cost on tiny \
inputs), then zoo networks cut to reduced depth (real-shaped) and seeded synthetic ones timed whole; \
per layer kind the rate, thin-layer slowdown and fixed cost, and the bandwidth, are fitted to them by \
non-negative least squares on relative error; zoo networks never fitted on, nor cut from, are timed \
and predicted. The fit's, its leave-one-out and the zoo networks' errors are printed and recorded.

Other processes' load makes it wait and measure again (back-off), then refuse (exit 2); an idle \
machine's jitter only makes it measure more, in short interleaved rounds, until every kept timing \
has settled. A fit whose leave-one-out or zoo error is too large is written with a warning every \
prediction from the profile repeats.

With --from-table FILE.csv --device NAME it measures nothing: it fits NAME's unknowns (host time \
per operation, achievable fractions, depthwise and grouped efficiencies) on a published table, each \
model resolved to the zoo's spec or imported from timm; a model that resolves to neither is named \
and skipped."""
    check_output_file(output)  # before minutes of measuring
    given = {"--on": device != "cpu", "--networks": networks is not None, "--max-load": max_load != MAX_OTHER_CPUS,
             "--max-spread": max_spread != MAX_SPREAD, "--allow-noisy": allow_noisy, "--device": base is not None,
             "--dtype": dtype != "amp", "--models": models is not None, "--filter": pattern is not None,
             "--column": bool(column), "--no-cache": no_cache}
    if from_table is not None:
        _refuse_with(given, MEASURING, "fits on a published table and measures nothing")
        if base is None:
            raise ScalelabError("--from-table needs --device NAME: the GPU's profile, whose datasheet figures are kept")
        _from_table(from_table, base, name, dtype, models, pattern, column, no_cache, output)
        return
    _refuse_with(given, TABLE_ONLY, "needs --from-table FILE.csv")
    _measure(device, name, networks, NoiseLimits(max_other_cpus=max_load, max_spread=max_spread), allow_noisy, output)


def _refuse_with(given: dict[str, bool], options: tuple[str, ...], why: str) -> None:
    wrong = [o for o in options if given[o]]
    if wrong:
        raise ScalelabError(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply here: "
                            f"calibrate {'--from-table ' if 'measures' in why else ''}{why}")


def _measure(device: str, name: str, networks: Optional[int], limits: NoiseLimits, allow_noisy: bool,
             output: Optional[Path]) -> None:
    # start-up: the command's own modules load when it runs, not with --help
    from scalelab.analysis.calibrate import calibrate as run
    from scalelab.analysis.calibrate_profile import fitted_on as _fitted_on

    profile = run(device, name, networks=networks, limits=limits, allow_noisy=allow_noisy)
    c = profile.calibration
    assert c is not None  # a calibrated profile records how it was fitted
    each_set = (f" (real-shaped {c['fit_median_error_real_shaped']:.1%}, synthetic {c['fit_median_error_synthetic']:.1%})"
                if "fit_median_error_real_shaped" in c else "")
    typer.echo(f"fitted on {_fitted_on(c)} timed whole: median error "
               f"{c['fit_median_error']:.1%}{each_set}, max {c['fit_max_error']:.1%}, leave-one-out median "
               f"{c['held_out_median_error']:.1%}", err=True)
    if "validation_errors" in c:
        each = ", ".join(f"{k} {v:+.0%}" for k, v in c["validation_errors"].items())
        typer.echo(f"validated on {len(c['validation_errors'])} zoo networks never fitted on: median error "
                   f"{c['validation_median_error']:.1%} ({each})", err=True)
    typer.echo(f"competing load {c['competing_load_cpus']:.2f} CPUs; kept timings settled to "
               f"{c['kept_figure_unsettled']:.1%} (tolerance {c['settle_tolerance']:.0%}) after "
               f"{c['timing_rounds']} rounds", err=True)
    if "warning" in c:
        typer.echo(f"warning: {c['warning']}", err=True)
    emit(HEADER + profile.to_yaml(), output)


def _from_table(path: Path, base_name: str, name: str, dtype: str, models: Optional[str], pattern: Optional[str],
                column: list[str], no_cache: bool, output: Optional[Path]) -> None:
    from scalelab.analysis.calibrate_table import column_map, fit_table  # start-up: only when it runs
    from scalelab.devices import load_profile

    base = load_profile(base_name)
    wanted = [m.strip() for m in models.split(",") if m.strip()] if models else None
    fitted = fit_table(path, base, name, dtype, column_map(column), wanted, pattern, use_cache=not no_cache)
    for model, why in fitted.skipped.items():
        typer.echo(f"skipped {model}: {why}", err=True)
    typer.echo(_summary(fitted.profile), err=True)
    emit(TABLE_HEADER.format(base=base.name, table=path.name) + fitted.profile.to_yaml(), output)


def _summary(profile: DeviceProfile) -> str:
    """The fit and its leave-one-network-out error per regime, as the profile records them."""
    c = profile.calibration or {}
    imported = f" ({len(c['imported'])} imported from timm)" if c.get("imported") else ""
    skipped = f", {len(c['skipped'])} skipped" if c.get("skipped") else ""
    lines = [f"fitted {profile.name} on {c['rows']} rows of {c['table']} ({c['networks']} networks{imported}{skipped}, "
             f"{c['dtype']}): median error {c['fit_median_error']:.1%}, max {c['fit_max_error']:.1%}"]
    fitted = profile.sources.get("fitted", "").split(":")[0]
    values = {"host_us": profile.host_us, "achievable_compute": profile.achievable_compute,
              "achievable_bandwidth": profile.achievable_bandwidth,
              **{f"efficiency.{k}": v for k, v in profile.efficiency.items()}}
    lines.append("fitted: " + ", ".join(f"{k} {values[k]:g}" for k in fitted.split(", ") if k in values))
    for regime, error in profile.errors.items():
        held = (f"held-out median error {error.median:.1%} over {error.rows} rows of {error.networks} networks, "
                f"stated ±{error.stated:.0%}") if error.median is not None else f"no rows, stated ±{error.stated:.0%}"
        lines.append(f"{regime.replace('_', '-')}: {held}")
    return "\n".join(lines)
