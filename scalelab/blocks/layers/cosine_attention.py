"""The sources Swin Transformer V2's cosine attention reads (Liu et al. 2022, §3.1 and §3.2), each
computed from its parameters and fields on every pass as torchvision's and timm's V2 compute it:
the continuous position bias (an MLP over a constant table of log-spaced relative coordinates of a
window, gathered by the window's relative index, 16 sigmoid) and the logit scale (exp of a learned
per-head parameter clamped to log 100). Every face; the torch modules are in
``cosine_attention_torch``.

Like ``position_bias``, each is one tensor for the whole batch (``shape`` as the scores read it,
``batch_axis`` an axis of size 1 that lines up with the batch): their work is on the weights alone,
once per forward pass whatever the batch, and they hold no activation memory of the batch. The
position-bias MLP's multiply-accumulates are MACs of the forward pass (``weight_macs``), counted
once; the training faces count per-sample work only, so a training step's figures leave out the
MLP's backward (the MLP's forward is 0.1% of swin_v2_t's MACs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import LayerCost, Shape, register
from scalelab.blocks.layers.positions import _core, _Source

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


@register
@dataclass(frozen=True)
class ContinuousPositionBias(_Source):
    """Swin V2's continuous relative position bias of ``heads`` heads over a ``window`` (rows,
    columns) of N tokens, (heads, N, N): the (2 rows - 1)(2 columns - 1) relative coordinates,
    normalised to [-8, 8] and mapped by sign(x) log2(1 + |x|) / 3, run through Linear(2, hidden),
    ReLU, Linear(hidden, heads, no bias), gathered by Swin's relative index (``position_bias``'s
    signed offsets), 16 sigmoid. Parameters: the MLP's. Per pass: MACs entries (2 hidden + hidden
    heads); ops the bias and the ReLU (2 entries hidden), the gather and its layout copy, the
    sigmoid and the scaling (4 heads N^2)."""

    kind = "continuous_position_bias"
    has_weights = True

    window: tuple[int, int]
    heads: int
    hidden: int
    shape: Shape
    batch_axis: Optional[int] = None

    def entries(self) -> int:
        return (2 * self.window[0] - 1) * (2 * self.window[1] - 1)

    def core(self) -> Shape:
        n = self.window[0] * self.window[1]
        return (self.heads, n, n)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        gathered, entries, hidden = math.prod(self.core()), self.entries(), self.hidden
        return LayerCost("continuous_position_bias", params=3 * hidden + hidden * self.heads, out_elems=gathered,
                         weight_macs=entries * (2 * hidden + hidden * self.heads),
                         weight_ops=2 * entries * hidden + 4 * gathered, node=self)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.cosine_attention_torch import ContinuousPositionBias as Module  # torch: only when a module is built

        return Module(self.window, self.heads, self.hidden, self.shape, self.batch_axis)

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.source(self, True)


@register
@dataclass(frozen=True)
class LogitScale(_Source):
    """Cosine attention's learned temperature: exp(min(p, ``max``)) of a parameter p of ``shape``
    (torchvision's and timm's (heads, 1, 1), ``max`` log 100). Parameters: its elements; weight ops
    per pass: the clamp and the exp, 2 per element."""

    kind = "logit_scale"
    has_weights = True

    shape: Shape
    max: float
    batch_axis: Optional[int] = None

    def core(self) -> Shape:
        return self.shape

    def out_shape(self, s: Shape) -> Shape:
        return _core(self.shape, self.batch_axis, self.shape, self.kind)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = math.prod(self.shape)
        return LayerCost("logit_scale", params=n, out_elems=n, weight_ops=2 * n, node=self)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.cosine_attention_torch import LogitScale as Module  # torch: only when a module is built

        return Module(self.shape, self.max, self.batch_axis)

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.source(self, True)
