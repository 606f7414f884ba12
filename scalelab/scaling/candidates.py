"""One candidate of a search: a base spec scaled by (depth, width, resolution), its costs under the
counting convention, its predicted latency and memory where a budget or device asks for them, and
its estimated accuracy with how it was estimated.

Costs are cached by the scaled spec itself: many (d, w, r) round to the same network (repeats round
up, channels to a multiple of 8), and its analysis is the expensive part of a trial. A scaling that
cannot be built raises ``CandidateError`` naming the base's file, the scaling and the block.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

from scalelab.analysis.costs import analyze
from scalelab.analysis.latency import predict_latency
from scalelab.analysis.memory import inference_memory
from scalelab.devices.profile import load_profile
from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy import _base_top1, estimate_accuracy, repeated_blocks
from scalelab.scaling.budget import Budget
from scalelab.scaling.compound import scale_spec
from scalelab.scaling.rounding import round_resolution
from scalelab.scaling.train import train_accuracy
from scalelab.scaling.transformer import patch_multiple
from scalelab.scaling.widths import widest_channels
from scalelab.scaling.variants import VariantEvaluator
from scalelab.spec import Spec


class CandidateError(ScalelabError):
    """A scaling whose network cannot be built (a search records it as a failed trial)."""


@dataclass(frozen=True)
class Candidate:
    depth: float  # depth built: repeated blocks / the base's (1.0 for a network without stages)
    width: float  # multipliers as sampled (width: as asked; width_built: as the network got it)
    resolution: float
    pixels: int  # input size after rounding
    macs: int
    params: int
    activations: int
    latency_ms: Optional[float]
    memory_bytes: Optional[int]
    accuracy: float
    accuracy_method: str
    accuracy_detail: str
    extrapolated: bool = False
    blocks: int = 0  # repeated blocks built
    depth_multiplier: Optional[float] = None  # the multiplier applied to the stage repeats
    low: Optional[float] = None  # 80% prediction interval of ``accuracy`` (scaling-law estimates)
    high: Optional[float] = None
    # an ensemble of ``models`` copies of the scaled network, each on ``crops`` test crops
    # (``scalelab.scaling.variants``); ``network``: the one scaled network's own figures
    models: int = 1
    crops: int = 1
    network: Optional[dict] = None
    # the widest feature map's channels over the base's, after rounding to divisors and heads
    width_built: Optional[float] = None

    @classmethod
    def from_dict(cls, data: dict) -> "Candidate":
        """A candidate as ``as_dict`` stored it (fields added since default)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def metrics(self) -> dict[str, Any]:
        """Values by budget metric."""
        return {"macs": self.macs, "params": self.params, "latency": self.latency_ms, "memory": self.memory_bytes}

    @property
    def single(self) -> bool:
        return self.models == 1 and self.crops == 1

    def as_dict(self) -> dict[str, Any]:
        """All fields; a single network on one crop leaves the ensemble fields out (its record is
        as it was before ensembles could be searched)."""
        out = asdict(self)
        if self.single:
            for key in ("models", "crops", "network"):
                del out[key]
        return out


@dataclass
class Evaluator:
    """Scales the base spec and prices candidates; ``evaluate`` is what every trial calls."""

    base: Spec
    budgets: Sequence[Budget] = ()
    device: Optional[str] = None
    dtype: str = "fp32"
    batch: int = 1
    divisor: int = 8
    resolution_multiple: int = 1
    accuracy_method: str = "scaling-law"
    accuracy_options: dict = field(default_factory=dict)
    _costs: dict = field(default_factory=dict, repr=False)
    _profile: Any = field(default=None, repr=False)
    latency_method: Optional[str] = None  # how predicted latencies were obtained, once one was
    _variants: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        metrics = {b.metric for b in self.budgets}
        if "latency" in metrics and not self.device:
            raise ScalelabError("a latency budget needs a device profile to predict latency on: add --device (e.g. --device t4)")
        if self.device:
            self._profile = _load_device(self.device)
        if self.accuracy_method == "scaling-law" and self.base.reference is None:
            _base_top1(self.base, "scaling-law")  # refuses now, not once per trial
        # a patch embedding sees whole patches only (scale_spec rounds the input to them): every
        # input size the search prices, refines and reports is one
        self.resolution_multiple = math.lcm(self.resolution_multiple, patch_multiple(self.base))

    def variant(self, models: int, crops: int):
        """This evaluator pricing ensembles of ``models`` networks on ``crops`` test crops instead
        (``scalelab.scaling.variants``); itself for one network on one crop."""
        if models == 1 and crops == 1:
            return self
        if (models, crops) not in self._variants:
            self._variants[models, crops] = VariantEvaluator(self, models, crops)
        return self._variants[models, crops]

    @property
    def base_size(self) -> tuple[int, int]:
        return self.base.input.resolution

    def pixels(self, resolution: float) -> tuple[int, int]:
        h, w = self.base_size
        return (round_resolution(h, resolution, self.resolution_multiple),
                round_resolution(w, resolution, self.resolution_multiple))

    def scaled(self, depth: float, width: float, resolution: float, name: Optional[str] = None) -> Spec:
        return scale_spec(self.base, depth, width, self.pixels(resolution), divisor=self.divisor,
                          resolution_multiple=self.resolution_multiple, name=name)

    def costs(self, spec: Spec) -> dict[str, Any]:
        """MACs, params, activations (and latency, memory when asked for) of a scaled spec, cached."""
        key = (spec.input, repr(spec.blocks))  # everything that prices a network, not its name
        if key not in self._costs:
            self._costs[key] = self._price(spec)
        return self._costs[key]

    def _price(self, spec: Spec) -> dict[str, Any]:
        analysis = analyze(spec, batch=self.batch)
        total = analysis.total
        out: dict[str, Any] = {"macs": total.macs // self.batch, "params": total.params,
                               "activations": total.activations // self.batch,
                               "latency_ms": None, "memory_bytes": None, "widest": widest_channels(analysis.network)}
        if self._profile is not None:
            prediction = predict_latency(analysis.network, self._profile, dtype=self.dtype, batch=self.batch)
            out["latency_ms"] = float(prediction.total_ms)
            self.latency_method = prediction.method
        if any(b.metric == "memory" for b in self.budgets):
            memory = inference_memory(analysis.network, self.dtype, self.batch)
            out["memory_bytes"] = int(memory.weight_bytes + memory.peak_bytes)
        return out

    def metrics_at(self, depth: float, width: float, resolution: float) -> dict[str, Any]:
        """Budget metrics of a scaling without estimating its accuracy (cheap; cached)."""
        spec, costs = self.built(depth, width, resolution)
        return {"macs": costs["macs"], "params": costs["params"], "latency": costs["latency_ms"],
                "memory": costs["memory_bytes"], "pixels": spec.input.resolution[0]}

    def built(self, depth: float, width: float, resolution: float) -> tuple[Spec, dict[str, Any]]:
        """The scaled spec and its costs; a network that cannot be built is a ``CandidateError``."""
        try:
            spec = self.scaled(depth, width, resolution)
            return spec, self.costs(spec)
        except ScalelabError as exc:
            where = self.base.source.filename if self.base.source is not None else f"spec '{self.base.name}'"
            raise CandidateError(f"{where} scaled by depth x{depth:.4g}, width x{width:.4g}, resolution "
                                 f"x{resolution:.4g} cannot be built: {exc}") from None

    def evaluate(self, depth: float, width: float, resolution: float, trial: Any = None) -> Candidate:
        """The candidate at depth multiplier ``depth`` (applied to stage repeats), ``width`` and
        ``resolution`` multipliers; its ``depth`` is what was built (blocks / the base's blocks)."""
        spec, costs = self.built(depth, width, resolution)
        before, after = _repeated_blocks(self.base, depth)
        estimate = self._accuracy(spec, depth, width, trial)
        return Candidate(after / before if before else 1.0, width, resolution, spec.input.resolution[0],
                         costs["macs"], costs["params"], costs["activations"], costs["latency_ms"],
                         costs["memory_bytes"], *estimate[:4], blocks=after, depth_multiplier=depth,
                         low=estimate[4], high=estimate[5], width_built=self._width_built(costs["widest"]))

    def _width_built(self, widest: int) -> Optional[float]:
        """The multiplier the widest feature map got (None for a network without one)."""
        base = self.costs(self.base)["widest"]
        return widest / base if base and widest else None

    def _accuracy(self, spec: Spec, depth: float, width: float, trial: Any
                  ) -> tuple[float, str, str, bool, Optional[float], Optional[float]]:
        """(top-1 or proxy score, method, detail, extrapolated, 80% interval low, high)."""
        if self.accuracy_method == "train":
            result = train_accuracy(spec, trial=trial, **self.accuracy_options)
            return result.top1, "train", result.detail, False, None, None

        # the input size the network really gets, after rounding to pixels
        estimate = estimate_accuracy(self.base, depth, width, spec.input.resolution[0], method=self.accuracy_method,
                                     **self.accuracy_options)
        value = estimate.top1 if estimate.top1 is not None else estimate.score  # the proxy gives a score
        assert value is not None  # every method gives a top-1 or a score, or refuses
        return float(value), estimate.method, estimate.detail, bool(estimate.extrapolated), estimate.low, estimate.high


def evaluate_trial(evaluator: Evaluator, trial: Any, depth: float, width: float, resolution: float,
                   pruning: bool = True) -> Candidate:
    """A trial's candidate (the trial goes to the accuracy method for pruning reports when
    ``pruning``); one that cannot be built leaves its reason on the trial (user attribute ``failed``)
    before the error fails the trial."""
    try:
        return evaluator.evaluate(depth, width, resolution, trial if pruning else None)
    except ScalelabError as exc:
        trial.set_user_attr("failed", str(exc))
        raise


def _repeated_blocks(spec: Spec, depth: float) -> tuple[int, int]:
    return repeated_blocks(spec, depth)


def _load_device(name: str):
    """A device profile by name (``t4``) or path, loaded once per search."""
    return load_profile(name)
