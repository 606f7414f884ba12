"""An operation of unknown cost, kept in place so the graph and the shapes stay whole (written by
``scalelab import --allow-unsupported`` for operations no other kind states). Its parameters are
known and counted; its MACs and other ops are unknown, and every report says so."""

from dataclasses import dataclass
from typing import Literal, NoReturn

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt
from scalelab.blocks.layers import (
    InnerPeak, LatencyClass, LayerCost, Node, Primitive, Saved, Shape, TrainMacs, elements, register,
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


class OpaqueBlock(Block):
    summary = "an operation of unknown cost (shape and parameters given), from import --allow-unsupported"
    takes_defaults = False
    kind: Literal["opaque"] = "opaque"
    op: str = Field(description="the operation it stands for, e.g. torch.nn.LayerNorm")
    shape: list[PositiveInt] = Field(min_length=1, description="output shape per sample")
    params: int = Field(0, ge=0, description="parameters it holds")

    def layers(self, inp: "Shape | list[Shape]") -> Node:
        return Opaque(self.op, tuple(self.shape), self.params)


class OpaqueMergeBlock(OpaqueBlock):
    summary = "an operation of unknown cost on two or more inputs (name them with from:)"
    arity = None
    kind: Literal["opaque_merge"] = "opaque_merge"  # type: ignore[assignment]  # its own tag in AnyBlock's union

