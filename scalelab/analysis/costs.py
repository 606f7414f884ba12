"""Per-block parameters, MACs, other ops and activation sizes, from the resolved graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scalelab.blocks.layers import LayerCost, Shape
from scalelab.graph import Network, resolve
from scalelab.spec import Spec, load_spec

CONVENTION = (
    "MACs = multiply-accumulates of conv, linear and matmul layers, bias excluded (torchvision _ops, "
    "the papers' 'FLOPs'); other ops = norm, activation, pooling, bias, add, gating and copy operations "
    "by per-element formulas; activations = output elements; params = trainable parameters"
)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0
    ops: int = 0
    activations: int = 0
    weight_ops: int = 0  # ops on the weights alone (weight standardisation): once per pass, not per sample
    weight_macs: int = 0  # of ``macs``, those on the weights alone (an MLP over constants): once per pass

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs, self.ops + other.ops,
                    self.activations + other.activations, self.weight_ops + other.weight_ops,
                    self.weight_macs + other.weight_macs)


@dataclass(frozen=True)
class BlockCost:
    name: str
    kind: str
    stage: Optional[str]
    out_shape: Shape
    cost: Cost
    training_only: bool
    layers: tuple[LayerCost, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class Analysis:
    network: Network = field(repr=False)
    batch: int
    blocks: tuple[BlockCost, ...]

    @property
    def name(self) -> str:
        return self.network.spec.name

    @property
    def input_shape(self) -> Shape:
        return self.network.input_shape

    @property
    def total(self) -> Cost:
        """Inference totals (training-only heads excluded)."""
        return sum((b.cost for b in self.blocks if not b.training_only), Cost())

    @property
    def training_only_total(self) -> Cost:
        return sum((b.cost for b in self.blocks if b.training_only), Cost())

    def _repr_html_(self) -> str:
        """The HTML report's tables, shown when a notebook displays an analysis."""
        from scalelab.report import build_report  # late: the report package builds on this module
        from scalelab.report.html import to_html_tables

        return to_html_tables(build_report(self))


def block_cost(costs: list[LayerCost], out_elems: int, batch: int) -> Cost:
    """Sum a block's layer costs; MACs, ops and activations (``out_elems`` per sample: none for a
    source, whose tensor is a weight) scale with the batch, params and weight ops do not; MACs on the
    weights alone are in ``macs`` once, as a forward pass runs them once (and apart in ``weight_macs``)."""
    weight_macs = sum(c.weight_macs for c in costs)
    return Cost(
        params=sum(c.params for c in costs),
        macs=batch * sum(c.macs for c in costs) + weight_macs,
        ops=batch * sum(c.ops for c in costs),
        activations=batch * out_elems,
        weight_ops=sum(c.weight_ops for c in costs),
        weight_macs=weight_macs,
    )


def analyze(
    spec: "Spec | Network | str | Path",
    resolution: "int | tuple[int, int] | None" = None,
    batch: int = 1,
) -> Analysis:
    """Cost of every block of a spec (a Spec, a path, or a zoo name) at a resolution and batch."""
    if isinstance(spec, Network):
        network = spec
    else:
        network = resolve(spec if isinstance(spec, Spec) else load_spec(spec), resolution)
    rows = tuple(
        BlockCost(b.name, b.kind, b.stage, b.out_shape, block_cost(b.costs, b.out_elems, batch),
                  b.training_only, tuple(b.costs))
        for b in network.blocks.values()
    )
    return Analysis(network, batch, rows)
