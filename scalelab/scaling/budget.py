"""Budgets from human units: multiply-adds (FLOPs or MACs), parameters, latency and memory.

Accepted forms (case-insensitive, a space between number and unit is allowed):

- multiply-adds: ``400MFLOPs``, ``0.4GFLOPs``, ``400MMACs``, ``0.4 GMACs``. A FLOP follows the
  papers' convention by default (1 FLOP = 1 multiply-add: EfficientNet-B0 is "0.39B FLOPs");
  ``flops_convention="hardware"`` counts a multiply-add as 2 FLOPs (a multiply and an add).
- parameters: ``5Mparams``, ``5M params``, ``5.3M parameters``.
- latency: ``2ms``, ``500us``, ``0.002s`` (predicted on a device profile).
- memory: ``64MB``, ``1GiB`` (inference peak: weights + activations alive at once; MB = 10^6 bytes,
  MiB = 2^20 bytes).

A bare count such as ``5M`` is refused: it could be parameters or multiply-adds, and a budget read
the wrong way silently gives a wrong network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Literal

from scalelab.errors import ScalelabError

Metric = Literal["macs", "params", "latency", "memory"]
FlopsConvention = Literal["paper", "hardware"]

FLOPS_CONVENTIONS: dict[str, str] = {
    "paper": "1 FLOP = 1 multiply-add, as the ResNet, MobileNet and EfficientNet papers count",
    "hardware": "1 multiply-add = 2 FLOPs, a multiply and an add",
}

#: how each metric's limit is expressed, for messages and tables
METRIC_UNITS: dict[str, str] = {"macs": "MACs", "params": "parameters", "latency": "ms", "memory": "bytes"}

ACCEPTED = ("FLOPs (400MFLOPs, 0.4GFLOPs), MACs (400MMACs, 0.4GMACs), parameters (5Mparams, 5M params), "
            "latency (2ms, 500us, 0.002s; needs --device), memory (64MB, 1GiB, 512MiB)")

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([^\s].*?)?\s*$")
_COUNT_PREFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_COUNT_WORDS = {
    "flops": "flops", "flop": "flops",
    "macs": "macs", "mac": "macs", "madds": "macs", "madd": "macs", "mult-adds": "macs",
    "params": "params", "param": "params", "parameters": "params",
}
_TIME_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3}
_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class Budget:
    """One limit: ``metric`` must not exceed ``limit`` (MACs, parameters, milliseconds or bytes)."""

    metric: Metric
    limit: float
    text: str  # as the person wrote it
    flops_convention: FlopsConvention = "paper"

    def describe(self) -> str:
        """'400MFLOPs = 400,000,000 MACs (1 FLOP = 1 multiply-add ...)' and the like."""
        if self.metric == "macs":
            said = f"{self.text} = {self.limit:,.0f} MACs"
            return f"{said} ({FLOPS_CONVENTIONS[self.flops_convention]})" if "flop" in self.text.lower() else said
        if self.metric == "params":
            return f"{self.text} = {self.limit:,.0f} parameters"
        if self.metric == "latency":
            return f"{self.text} = {self.limit:g} ms predicted latency"
        return f"{self.text} = {self.limit:,.0f} bytes inference peak memory"

    def usage(self, value: float) -> float:
        """The fraction of the budget ``value`` uses (1.0 = exactly on the limit)."""
        return value / self.limit

    def violation(self, value: float) -> float:
        """Optuna's constraint convention: <= 0 is feasible, > 0 how far over (relative)."""
        return value / self.limit - 1.0


def _bad(text: str, why: str) -> ScalelabError:
    return ScalelabError(f"budget '{text}': {why}; accepted units: {ACCEPTED}")


def parse_budget(text: str, flops_convention: FlopsConvention = "paper") -> Budget:
    """One budget string -> a Budget; a string that cannot be read names the accepted units."""
    budget = _parse_budget(text, flops_convention)
    if not math.isfinite(budget.limit):  # 1e308TFLOPs is past any float, not an unlimited budget
        raise _bad(text, "the limit is too large to be a number")
    return budget


def _parse_budget(text: str, flops_convention: FlopsConvention) -> Budget:
    if flops_convention not in FLOPS_CONVENTIONS:
        raise ScalelabError(f"FLOPs convention must be one of {sorted(FLOPS_CONVENTIONS)}, got '{flops_convention}'")
    match = _NUMBER.match(text or "")
    if not match:
        raise _bad(text, "expected a number followed by a unit")
    value, unit = float(match.group(1)), (match.group(2) or "").strip()
    if not math.isfinite(value) or value <= 0:
        raise _bad(text, "the limit must be a positive number")
    low = unit.lower().replace(" ", "")
    if low in _TIME_MS:
        return Budget("latency", value * _TIME_MS[low], text.strip(), flops_convention)
    if low in _BYTES:
        return Budget("memory", value * _BYTES[low], text.strip(), flops_convention)
    prefix, word = (low[:1], low[1:]) if low[:1] in _COUNT_PREFIX and low[1:] in _COUNT_WORDS else ("", low)
    if word in _COUNT_WORDS:
        amount = value * _COUNT_PREFIX[prefix]
        kind = _COUNT_WORDS[word]
        if kind == "flops":
            macs = amount if flops_convention == "paper" else amount / 2
            return Budget("macs", macs, text.strip(), flops_convention)
        return Budget(kind, amount, text.strip(), flops_convention)  # type: ignore[arg-type]
    if low in _COUNT_PREFIX:
        raise _bad(text, f"a bare count is ambiguous: write {match.group(1)}{unit}params for parameters "
                         f"or {match.group(1)}{unit}FLOPs / {match.group(1)}{unit}MACs for multiply-adds")
    raise _bad(text, f"unknown unit '{unit}'")


def metric_text(metric: str, value: float) -> str:
    """A cost in a budget's metric, as messages write it (391,000,000 MACs; 2.1 ms)."""
    return {"macs": f"{value:,.0f} MACs", "params": f"{value:,.0f} parameters",
            "latency": f"{value:.3g} ms", "memory": f"{value:,.0f} bytes"}[metric]


def parse_budgets(texts: "str | Iterable[str]", flops_convention: FlopsConvention = "paper") -> list[Budget]:
    """Several budgets at once: repeated options and/or comma-separated (``400MFLOPs,5Mparams``).
    At most one budget per metric."""
    items = [texts] if isinstance(texts, str) else list(texts)
    budgets: list[Budget] = []
    for item in items:
        for part in item.split(","):
            if not part.strip():
                raise _bad(item, "an empty budget")
            budget = parse_budget(part, flops_convention)
            clash = next((b for b in budgets if b.metric == budget.metric), None)
            if clash is not None:
                raise ScalelabError(f"budgets '{clash.text}' and '{budget.text}' both limit {METRIC_UNITS[budget.metric]}; give one")
            budgets.append(budget)
    if not budgets:
        raise ScalelabError(f"no budget given; accepted units: {ACCEPTED}")
    return budgets
