"""`scalelab devices`: the device profiles the latency prediction can use (``--device NAME``)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.devices import load_profile, profile_names
from scalelab.report.table import print_prose, print_whole, rendered, text_console


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def _table(profiles) -> str:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="scalelab device profiles", title_justify="left", header_style="bold")
    for header in ("name", "kind", "peak TFLOP/s by dtype", "bandwidth GB/s", "achievable compute / bandwidth",
                   "launch / host us", "held-out error host / device", "description"):
        # the pairs may wrap between their two figures, never inside one
        wraps = ("kind", "peak TFLOP/s by dtype", "achievable compute / bandwidth", "launch / host us",
                 "held-out error host / device", "description")
        table.add_column(header, overflow="fold", no_wrap=header not in wraps)
    for p in profiles:
        peaks = ", ".join(f"{d} {f / 1e12:g}" for d, f in p.peak_flops.items())
        table.add_row(*(Text(c) for c in (
            p.name, p.kind, peaks, f"{p.memory_bandwidth / 1e9:g}",
            f"{p.achievable_compute:.0%} / {p.achievable_bandwidth:.0%}", f"{p.launch_overhead_us:g} / {p.host_us:g}",
            _errors(p), p.description)))
    console = text_console()  # the width rule of every command (scalelab.report.table)
    print_whole(console, table)
    print_prose(console, "Peak FLOP/s count 2 FLOPs per multiply-add (datasheet convention). Datasheet figures and "
                         "their sources are in --format json. Launch / host us: the device's fixed time per kernel, and the host's time per operation in eager PyTorch (0: "
                         "no separate host). Achievable fractions, host us and efficiencies are fitted on published "
                         "PyTorch-eager measurements where a profile's sources say 'fitted', else typical values; "
                         "`scalelab calibrate` measures them on this machine. Held-out error: the median error on published "
                         "rows of networks left out of the fit, host-bound (batch <= 8) / device-bound (batch >= 64); "
                         "'stated' where there is no data (every prediction carries its regime's figure).")
    return rendered(console)


def _errors(p) -> str:
    """host-bound / device-bound held-out median errors, or the stated figure where there is no data."""
    def one(regime: str) -> str:
        e = p.errors.get(regime)
        if e is None:
            return "-"
        # a no-break space inside a stated figure: the cell wraps between the two figures only
        return f"{e.median:.1%}" if e.median is not None else f"±{e.stated:.0%}\u00a0stated"
    return f"{one('host_bound')} / {one('device_bound')}"


@app.command()
@friendly
def devices(
    profile: Optional[str] = typer.Argument(None, parser=O.PROFILE, help="Show (and validate) one profile: a name or a YAML file."),
    format: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table or json (every figure, with units and sources)."),
) -> None:
    """List the device profiles usable with `analyze --device` (or check one profile file)."""
    profiles = [load_profile(profile)] if profile else [load_profile(n) for n in profile_names()]
    if format is ListFormat.json:
        rows = [{**p.model_dump(exclude_none=True),
                 "units": {"peak_flops": "FLOP/s (2 per multiply-add)", "memory_bandwidth": "bytes/s",
                           "launch_overhead_us": "microseconds per kernel",
                           "host_us": "microseconds per operation on the host (eager dispatch and launch)",
                           "errors": "fraction of the measured, per regime (held-out median; stated: carried by predictions)",
                           "achievable_compute": "fraction of peak", "achievable_bandwidth": "fraction of peak",
                           "efficiency": "fraction of achievable compute, per layer kind"}} for p in profiles]
        emit(json.dumps(rows, indent=2, allow_nan=False), None)
    else:
        emit(_table(profiles), None)
