"""An operation of unknown cost, kept in place so the graph and the shapes stay whole (the layer of
the ``opaque`` and ``opaque_merge`` block kinds, which ``scalelab import --allow-unsupported`` writes
for operations no other kind states)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, TrainMacs, elements, register,
)
from scalelab.errors import ScalelabError


@register
@dataclass(frozen=True)
class Opaque(Primitive):
    """A layer whose output shape and parameters are given and whose arithmetic is unknown. Its cost
    face counts no MACs or ops (reports say the totals are lower bounds); every face that would need
    its arithmetic or its module refuses, naming the operation."""

    kind = "opaque"
    op: str
    out: Shape
    params: int

    def out_shape(self, s: "Shape | list[Shape]") -> Shape:
        return self.out

    def cost(self, s: "Shape | list[Shape]", out: Shape) -> LayerCost:
        inputs = s if isinstance(s, list) else [s]
        return LayerCost("opaque", params=self.params, in_elems=sum(elements(i) for i in inputs),
                         out_elems=elements(out), node=self)

    def _unknown(self, what: str) -> NoReturn:
        raise ScalelabError(f"opaque layer {self.op}: its {what} is unknown (imported with --allow-unsupported)")

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        self._unknown("training compute")

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        self._unknown("training memory")

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        self._unknown("inference memory")

    def latency(self) -> tuple[LatencyClass, None]:
        self._unknown("latency")

    def torch_module(self) -> NoReturn:
        self._unknown("torch module")
