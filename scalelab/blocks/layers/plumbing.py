"""Layers that give a graph more than one tensor in, one tensor out: a learned tensor that takes no
input (a *source*: ViT's class token and position embedding, a layer-scale vector used by an
element-wise product), and the views ``torch.split`` and ``torch.unbind`` cut out of one tensor (a
block with *several outputs*, named ``block.0``, ``block.1``, ... in ``from:``). Every face; their
torch modules are in ``plumbing_torch``.

A source is one tensor for the whole batch: its torch module returns the parameter expanded to the
batch (a view, no copy), so every layer after it sees a batched tensor of the per-sample shape, as
torch's broadcasting gives it. It holds weights (or a buffer) and no activation memory.

A split's outputs are views of its input: ``out_shape`` is the input itself (what the outputs view
together, so its cost records the elements once) and ``pieces`` gives each output's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, allocates_nothing, elements, fmt_shape,
    no_macs, register, view_of_input,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


def per_sample_axis(dim: int, shape: Shape, what: str) -> int:
    """``dim`` (a per-sample axis, negative from the end as torch counts) as 0..rank-1; a ShapeError
    naming ``what`` when ``shape`` has no such axis."""
    rank = len(shape)
    if not -rank <= dim < rank:
        raise ShapeError(f"{what} along dim {dim} needs a tensor of at least {dim + 1 if dim >= 0 else -dim} "
                         f"dimensions per sample, got {fmt_shape(shape) or 'a scalar'}")
    return dim % rank


def batched_axis(dim: int) -> int:
    """A per-sample axis as an axis of the batched tensor (a negative one counts from the end in both)."""
    return dim + 1 if dim >= 0 else dim


@register
@dataclass(frozen=True)
class Param(Primitive):
    """A learned tensor (``trainable``) or a buffer, the same for every sample; no input.

    ``shape`` is the tensor the module holds (its state dict entry); ``batch_axis``, when given,
    names an axis of size 1 in it that lines up with the batch (timm's ``pos_embed`` of 1 x tokens x
    features), left out of the per-sample shape. Parameters: prod(shape) when trainable; a buffer is
    no parameter and, like batchnorm's running statistics, no weight bytes either (torch's
    ``parameters()``). No MACs, no ops, no activation memory: it launches no kernel."""

    kind = "param"
    has_weights = True

    shape: Shape
    trainable: bool = True
    batch_axis: Optional[int] = None

    def sample_shape(self) -> Shape:
        if self.batch_axis is None:
            return self.shape
        return self.shape[: self.batch_axis] + self.shape[self.batch_axis + 1:]

    def out_shape(self, s: Shape) -> Shape:
        return self.sample_shape()  # a source: no input shape to follow

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("param", params=elements(self.shape) if self.trainable else 0, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # expand's backward needs only sizes; the gradient lands on the parameter

    inner_peak = allocates_nothing  # a view of the parameter

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.plumbing_torch import Param as Module  # torch: only when a module is built

        return Module(self.shape, self.trainable, self.batch_axis)

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.source(self, self.trainable)


class SeveralOutputs(Primitive):
    """A view-only layer with several outputs: ``out_shape`` is its input (what the outputs view),
    ``pieces`` the shape of each output."""

    def pieces(self, s: Shape) -> tuple[Shape, ...]:  # pragma: no cover - every kind overrides
        raise NotImplementedError

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(self.kind, in_elems=elements(s), out_elems=elements(s), node=self)

    train_macs = no_macs

    saved = view_of_input  # split's and unbind's backward need only sizes

    inner_peak = allocates_nothing  # views of the input

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None


@register
@dataclass(frozen=True)
class Split(SeveralOutputs):
    """``torch.split(x, sizes, dim)``: consecutive pieces of ``sizes`` along ``dim``, views."""

    kind = "split"

    dim: int
    sizes: tuple[int, ...]

    def out_shape(self, s: Shape) -> Shape:
        axis = per_sample_axis(self.dim, s, "split")
        if sum(self.sizes) != s[axis]:
            raise ShapeError(f"split sizes {list(self.sizes)} add up to {sum(self.sizes)}, but dim {self.dim} of "
                             f"{fmt_shape(s)} has {s[axis]}")
        return s

    def pieces(self, s: Shape) -> tuple[Shape, ...]:
        axis = per_sample_axis(self.dim, self.out_shape(s), "split")
        return tuple(s[:axis] + (size,) + s[axis + 1:] for size in self.sizes)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.plumbing_torch import Split as Module  # torch: only when a module is built

        return Module(list(self.sizes), batched_axis(self.dim))


@register
@dataclass(frozen=True)
class Unbind(SeveralOutputs):
    """``torch.unbind(x, dim)``: one view per index along ``dim``, that axis removed."""

    kind = "unbind"

    dim: int

    def out_shape(self, s: Shape) -> Shape:
        per_sample_axis(self.dim, s, "unbind")
        return s

    def pieces(self, s: Shape) -> tuple[Shape, ...]:
        axis = per_sample_axis(self.dim, s, "unbind")
        return (s[:axis] + s[axis + 1:],) * s[axis]

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.plumbing_torch import Unbind as Module  # torch: only when a module is built

        return Module(batched_axis(self.dim))
