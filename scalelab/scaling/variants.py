"""Ensembles and multi-crop in the search (``scale --ensembles 1,2,3 --crops 1,10``): each candidate
may also be an ensemble of K copies of its scaled network, each on N test crops, under the same
budgets.

A variant prices its scaled network once and applies the rules of ``scalelab.analysis.ensemble``:

- MACs per image: K x N x the network's; parameters: K x; activations (summed output elements): K x N x;
- latency (``--device``): the members run one after another, each on its batch x N crops as one batch,
  so K x the network's predicted latency at batch x N;
- memory (inference peak): K x the weights, plus the activation peak of one member at batch x N.

Top-1 comes from the scaled network's estimate, then the ensemble-gain law
(``scalelab.scaling.accuracy.ensemble_gain``); the 80% interval applies the law's interval at the
ends of the network's own, so it is wider than either: both errors compound.

The direct search samples K and N as two more categorical parameters (``models``, ``crops``) when a
list holds more than one value. The two-step method finds alpha, beta, gamma on single networks at
phi = 1 (step 1 has no budget), then runs step 2 (largest phi, refinement) once per (K, N) and keeps
the best of those within the budgets. With ``--ensembles 1 --crops 1`` nothing here runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import product
from typing import TYPE_CHECKING, Any

from scalelab.analysis.ensemble import ensemble_figures
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.scaling.accuracy.family import network_family
from scalelab.scaling.ensembles import expand
if TYPE_CHECKING:  # candidates builds a VariantEvaluator: at run time, variants needs nothing of it
    from scalelab.scaling.candidates import Candidate, Evaluator

#: accuracy methods whose figure is an ImageNet top-1 the ensemble-gain law can raise
GAIN_METHODS = ("scaling-law", "published")


#: how each budget applies to a variant (the rules of ``scalelab.analysis.ensemble``, per budget)
BUDGET_RULES = {
    "macs": "per image, all models and crops: K x N x the network's MACs",
    "params": "K x the network's parameters",
    "latency": "K x the network's predicted latency at batch x N (members one after another, the crops as one batch)",
    "memory": "K x the network's weights plus its activation peak at batch x N (one member runs at a time)",
}


def label(models: int, crops: int) -> str:
    """'single', 'x3', '10-crop' or 'x3 10-crop'."""
    parts = ([f"x{models}"] if models > 1 else []) + ([f"{crops}-crop"] if crops > 1 else [])
    return " ".join(parts) or "single"


def combinations(settings) -> list[tuple[int, int]]:
    return list(product(settings.ensembles, settings.crops))


def searched(settings) -> bool:
    """Whether the search takes ensembles or crops beyond one network on one crop."""
    return combinations(settings) != [(1, 1)]


def check(evaluator: Evaluator, settings) -> None:
    """Refuse what the ensemble-gain law cannot price, before anything runs."""
    family = network_family(evaluator.base)
    if searched(settings) and family != "cnn":  # the law's series are CNN ensembles and crops only
        raise ScalelabError(f"--ensembles/--crops need the ensemble-gain law, fitted on ensembles and multi-crop tests "
                            f"of CNNs only (ensembles.yaml); {evaluator.base.name} is a {family} network, for which "
                            "none is published, and the CNNs' gains do not stand in: search single networks on one crop")
    if searched(settings) and evaluator.accuracy_method not in GAIN_METHODS:
        why = ("a proxy score is a ranking, not a top-1" if evaluator.accuracy_method == "proxy" else
               "it is fitted on ImageNet top-1, not on accuracy measured by training on your data")
        raise ScalelabError(f"--ensembles/--crops need --accuracy scaling-law or published: the ensemble-gain law "
                            f"raises a top-1, and with --accuracy {evaluator.accuracy_method} {why}")


def smallest(evaluator: Evaluator, settings):
    """The evaluator of the cheapest variant searched (fewest models and crops)."""
    return evaluator.variant(min(settings.ensembles), min(settings.crops))


def words(evaluator) -> str:
    """', x3 10-crop' for an evaluator of a variant, '' for one of single networks (for messages)."""
    return f", {label(evaluator.models, evaluator.crops)}" if isinstance(evaluator, VariantEvaluator) else ""


def sample(trial, settings) -> tuple[int, int]:
    """K and N of a direct-search trial: categorical parameters only where a list has a choice, so a
    search of single networks samples exactly what it did before."""
    k = trial.suggest_categorical("models", list(settings.ensembles)) if len(settings.ensembles) > 1 else settings.ensembles[0]
    n = trial.suggest_categorical("crops", list(settings.crops)) if len(settings.crops) > 1 else settings.crops[0]
    return int(k), int(n)


def params(c: Candidate) -> dict[str, int]:
    """The variant's parameters for a recorded trial; none for a single network."""
    return {} if c.single else {"models": c.models, "crops": c.crops}


def study_suffix(settings) -> str:
    """Added to the default study name, so a search with ensembles never continues one without."""
    if not searched(settings):
        return ""
    return "-x" + "_".join(map(str, settings.ensembles)) + "-crops" + "_".join(map(str, settings.crops))


@dataclass
class VariantEvaluator:
    """An ``Evaluator`` pricing K copies of each scaled network on N crops. It reads and prices the
    scaled network through the evaluator it wraps (cached there), and everything else is that one's."""

    inner: Evaluator
    models: int
    crops: int
    _costs: dict = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:  # base, device, dtype, batch, pixels, scaled, ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def costs(self, spec, single: dict) -> dict[str, Any]:
        """The variant's figures from the network's (``single``); latency and memory, where the
        network has them, from ``analysis.ensemble``'s rules applied to the network at batch x N."""
        key = (spec.input, repr(spec.blocks))
        if key not in self._costs:
            k, n = self.models, self.crops
            out = {"macs": k * n * single["macs"], "params": k * single["params"],
                   "activations": k * n * single["activations"], "latency_ms": None, "memory_bytes": None}
            if single["latency_ms"] is not None or single["memory_bytes"] is not None:
                ev = self.inner
                total = ensemble_figures([resolve(spec)] * k, crops=n, batch=ev.batch, dtype=ev.dtype,
                                         device=ev.device if single["latency_ms"] is not None else None).total()
                if single["latency_ms"] is not None:
                    out["latency_ms"] = float(total["predicted_ms"])
                if single["memory_bytes"] is not None:
                    out["memory_bytes"] = int(total["weight_bytes"] + total["activation_peak_bytes"])
            self._costs[key] = out
        return self._costs[key]

    def metrics_at(self, depth: float, width: float, resolution: float) -> dict[str, Any]:
        spec, single = self.inner.built(depth, width, resolution)
        costs = self.costs(spec, single)
        return {"macs": costs["macs"], "params": costs["params"], "latency": costs["latency_ms"],
                "memory": costs["memory_bytes"], "pixels": spec.input.resolution[0]}

    def evaluate(self, depth: float, width: float, resolution: float, trial: Any = None) -> Candidate:
        c = self.inner.evaluate(depth, width, resolution, trial)
        spec, single = self.inner.built(depth, width, resolution)  # cached by the evaluate above
        ref = self.inner.base.reference
        views = ref.protocol.crops if ref is not None and ref.protocol is not None else 1
        return variant_candidate(c, self.models, self.crops, self.costs(spec, single), views)


def variant_candidate(c: Candidate, models: int, crops: int, costs: dict, base_crops: int = 1) -> Candidate:
    """Candidate ``c`` (one network, one crop) as an ensemble of ``models`` on ``crops`` crops, its top-1
    by the ensemble-gain law (``scaling.ensembles.expand``) from the network's estimate, which is
    measured as the base's reference is: on ``base_crops`` views."""
    def gained(top1):
        return expand("", c.macs, c.params, top1, None, [models], [crops], base_crops)[0]

    v = gained(c.accuracy)
    low = gained(c.low).low if c.low is not None else v.low
    high = gained(c.high).high if c.high is not None else v.high
    interval = (f" [{c.low:.1f}, {c.high:.1f}]" if c.low is not None else "")
    views = "one crop" if base_crops == 1 else f"{base_crops} crops, as the base's reference"
    detail = (f"{c.accuracy_method} estimate of one scaled network on {views}: {c.accuracy:.2f}{interval} "
              f"({c.accuracy_detail}); then, for {label(models, crops)}, the ensemble-gain law: {v.method.split(': ', 1)[1]}; "
              "80% interval: the law's at the ends of the network's (both errors compound)")
    network = {"macs": c.macs, "params": c.params, "latency_ms": c.latency_ms, "memory_bytes": c.memory_bytes,
               "accuracy": c.accuracy, "low": c.low, "high": c.high}
    return replace(c, macs=costs["macs"], params=costs["params"], activations=costs["activations"],
                   latency_ms=costs["latency_ms"], memory_bytes=costs["memory_bytes"], accuracy=v.top1,
                   accuracy_method=f"{c.accuracy_method} + ensemble-gain", accuracy_detail=detail,
                   extrapolated=c.extrapolated or v.extrapolated, low=low, high=high, models=models, crops=crops,
                   network=network)
