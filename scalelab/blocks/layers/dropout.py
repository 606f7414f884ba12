"""Dropout and stochastic depth: the identity at inference, a random mask in training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, allocates_nothing, check_device, elements, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


@register
@dataclass(frozen=True)
class Dropout(Primitive):
    """Identity at inference: no ops. ``stochastic_depth`` drops whole residual branches
    (Huang et al. 2016); the rate is kept for the built module."""

    kind = "dropout"

    p: float
    stochastic_depth: bool = False

    def out_shape(self, s: Shape) -> Shape:
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("dropout", in_elems=elements(s), out_elems=elements(s), node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """What ``nn.Dropout`` keeps differs by device (aten/src/ATen/native/Dropout.cpp):

        * CPU: ``at::dropout`` takes the fused kernel only for CUDA tensors (later versions: also
          XPU, lazy and privateuse1); otherwise ``_dropout_impl`` draws a noise tensor
          ``empty_like(input).bernoulli_(1 - p).div_(1 - p)`` and returns ``input * noise``, whose
          backward keeps the noise: one element of the input's dtype per element. Measured: the
          training-step probe on CPU matches exactly (tests/test_memory.py, benchmarks/memory.md).
        * CUDA: the fused kernel (``_fused_dropout``, now ``native_dropout``, in cuda/Dropout.cu)
          returns a one-byte mask (uint8, now bool) beside the output, and its backward keeps only
          that mask: one byte per element. Read from torch's source, not measured here (no GPU).

        p = 0 returns the input itself (a view, nothing kept). Stochastic depth keeps one random
        factor per sample (a few bytes, not modelled)."""
        check_device(device)
        if self.stochastic_depth:
            return Saved()
        if self.p == 0:
            return Saved(view=True)
        n = elements(s)
        return Saved(per_sample_elements=n) if device == "cpu" else Saved(per_sample_bytes=n)

    inner_peak = allocates_nothing  # eval: the input itself

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None  # the identity at inference: no kernel

    def torch_module(self) -> nn.Module:
        if self.stochastic_depth:
            from scalelab.blocks.layers.torch_modules import StochasticDepth  # torch: only when a module is built

            return StochasticDepth(self.p)
        from torch import nn

        return nn.Dropout(self.p)
