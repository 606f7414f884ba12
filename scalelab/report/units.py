"""Human units for tables: counts in SI steps of 1000 (25.6M, 4.09G), bytes in IEC steps of 1024."""

from __future__ import annotations

_SI = ("", "K", "M", "G", "T", "P")
_IEC = ("B", "KiB", "MiB", "GiB", "TiB")


def _three_significant(value: float) -> str:
    """3 significant digits: 4.09, 25.6, 512 (trailing zeros kept: 1.00 reads as exact-ish, 1 as exact)."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def human_count(value: "int | float | None") -> str:
    """25557032 -> '25.6M', 4089184256 -> '4.09G', 512 -> '512', 0 -> '0'."""
    if value is None:
        return "-"
    if abs(value) < 1000:
        return f"{value:g}" if isinstance(value, float) else str(value)
    step, scaled = 0, float(abs(value))
    while scaled >= 999.5 and step < len(_SI) - 1:
        scaled /= 1000
        step += 1
    sign = "-" if value < 0 else ""
    return f"{sign}{_three_significant(scaled)}{_SI[step]}"


def human_bytes(value: "int | float | None") -> str:
    """26103712 -> '24.9 MiB', 1000 -> '1000 B'."""
    if value is None:
        return "-"
    step, scaled = 0, float(value)
    while scaled >= 1023.5 and step < len(_IEC) - 1:
        scaled /= 1024
        step += 1
    if step == 0:
        return f"{int(value)} B"
    return f"{_three_significant(scaled)} {_IEC[step]}"


def human_percent(value: "float | None") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}%"


def human_shape(shape: tuple) -> str:
    """'64x56x56'; several outputs (a tuple of shapes) as '32x56x56*2, 64x56x56' (equal neighbours
    counted)."""
    if not shape or not isinstance(shape[0], tuple):
        return "x".join(str(d) for d in shape)
    runs: list[list] = []
    for s in shape:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return ", ".join(human_shape(s) + (f"*{n}" if n > 1 else "") for s, n in runs)
