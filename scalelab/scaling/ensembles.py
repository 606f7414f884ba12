"""Ensembles and multi-crop as candidates: each network also taken K times (an ensemble of K
independently trained copies) and/or on N test crops, priced by the ensemble rules
(``scalelab.analysis.ensemble``: MACs x K x N per image, parameters x K) and with top-1 by the
ensemble-gain law (``scalelab.scaling.accuracy.ensemble_gain``, with its 80% interval).

Set beside single networks of every size, the variants show where, for the same MACs, one bigger
network beats an ensemble of smaller ones (the course notes: ensembles and multi-crop win
benchmarks but are "not used in production").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from scalelab.analysis.figures import NetworkFigures
from scalelab.scaling.accuracy.ensemble_gain import estimate_top1


@dataclass(frozen=True)
class Variant:
    network: str
    models: int
    crops: int
    macs: int  # per image, all models and crops
    params: int
    top1: Optional[float]
    low: Optional[float]  # 80% interval of the estimate (equal to top1 for a single model on one crop)
    high: Optional[float]
    method: str
    extrapolated: bool = False

    @property
    def label(self) -> str:
        parts = [self.network] + ([f"x{self.models}"] if self.models > 1 else []) + \
                ([f"{self.crops}-crop"] if self.crops > 1 else [])
        return " ".join(parts)

    @property
    def single(self) -> bool:
        return self.models == 1 and self.crops == 1

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


def variants(fig: NetworkFigures, ensembles: list[int], crops: list[int]) -> list[Variant]:
    """Every (models, crops) combination of one network, per image (``fig`` at any batch)."""
    return expand(fig.name, fig.macs // fig.batch, fig.params, fig.top1,
                  f"published: {fig.top1_source}" if fig.top1 is not None else None, ensembles, crops,
                  fig.top1_protocol["crops"] if fig.top1_protocol else 1)


def expand(name: str, macs: int, params: int, top1: Optional[float], how: Optional[str],
           ensembles: list[int], crops: list[int], base_crops: int = 1) -> list[Variant]:
    """Every (models, crops) combination of a network of ``macs`` per image and single-model ``top1``
    measured on ``base_crops`` views (obtained as ``how`` says; None: not known): the search's
    candidate expansion. The variant on ``base_crops`` views of one model is ``top1`` itself."""
    out = []
    for k in ensembles:
        for n in crops:
            estimate: tuple[Optional[float], Optional[float], Optional[float], str, bool]
            if top1 is None:
                estimate = (None, None, None, "no top-1 known for this network", False)
            elif k == 1 and n == base_crops:
                estimate = (top1, top1, top1, how or "given", False)
            else:
                e = estimate_top1(top1, k, n, base_crops)
                estimate = (e.top1, e.low, e.high, e.detail, e.extrapolated)
            out.append(Variant(name, k, n, k * n * macs, k * params, *estimate))
    return out


def pareto(points: list[Variant]) -> list[Variant]:
    """The variants no other beats on both MACs (fewer) and top-1 (higher), by MACs."""
    known = sorted(((v, v.top1) for v in points if v.top1 is not None), key=lambda vt: (vt[0].macs, -vt[1]))
    front, best = [], float("-inf")
    for v, top1 in known:
        if top1 > best:
            front.append(v)
            best = top1
    return front
