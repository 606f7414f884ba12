"""The several outputs of one split or unbind handed, as one list, to a layer of several inputs
inside a block: the q, k and v that ``torch.unbind`` cuts from a fused qkv projection, given to
attention as timm's ``q, k, v = qkv.unbind(0)`` does.

A wiring node: it adds no operation of its own, so each face is its two children's. The pieces are
views of the node's input (held by its caller), so the inner peak and what autograd keeps are the
join's; its module is the split's module then the join's (the split returns the tuple the join
takes as its list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import InnerPeak, Shape, Walk, definition, register
from scalelab.blocks.layers.plumbing import SeveralOutputs
from scalelab.blocks.layers.wiring import Node, Wiring, peak, walk

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


@register
@dataclass(frozen=True)
class Unpack(Wiring):
    """``join(list(split(x)))``: ``split`` a Split or Unbind, ``join`` a node of several inputs."""

    kind = "unpack"
    split: SeveralOutputs
    join: Node

    def walk(self, shape: Shape) -> Walk:
        cut = walk(self.split, shape)
        joined = walk(self.join, list(self.split.pieces(shape)))
        return Walk(joined.out, cut.costs + joined.costs)

    def peak(self, shape: Shape) -> InnerPeak:
        """The pieces are views of the input: only the join allocates."""
        return peak(self.join, list(self.split.pieces(shape)))

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        whole = walker.run(self.split, x)  # a view: it shares x's storage
        pieces = [type(whole)(piece, whole.grad, whole.storage) for piece in self.split.pieces(x.shape)]
        return walker.run(self.join, pieces)  # a join of several inputs takes the list

    def module(self) -> nn.Module:
        from torch import nn

        return nn.Sequential(self.split.module(), definition(self.join).module())
