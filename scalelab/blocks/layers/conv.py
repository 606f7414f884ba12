"""2-D convolution: every face."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, register, spatial,
    window_out,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: how a convolution pads its input (torch's ``padding_mode``)
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

# torch's limits: reflection needs padding < size, circular padding may wrap only once
_PAD_LIMIT = {"reflect": lambda pad, size: pad < size, "circular": lambda pad, size: pad <= size}


@register
@dataclass(frozen=True)
class Conv(Primitive):
    """2-D convolution. MACs = out_h * out_w * out * (in / groups) * kh * kw."""

    kind = "conv"
    has_weights = True

    in_ch: int
    out_ch: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False
    padding_mode: PaddingMode = "zeros"

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = spatial(s, "conv")
        if c != self.in_ch:
            raise ShapeError(f"conv expects {self.in_ch} input channels, got {c}")
        limit = _PAD_LIMIT.get(self.padding_mode)
        if limit and not all(limit(p, n) for p, n in zip(self.padding, (h, w))):
            raise ShapeError(f"{self.padding_mode} padding {self.padding[0]}x{self.padding[1]} is too large for a {h}x{w} map")
        oh = window_out(h, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0])
        ow = window_out(w, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1])
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"a {self.kernel[0]}x{self.kernel[1]} conv (padding {self.padding[0]}, dilation "
                f"{self.dilation[0]}) does not fit a {h}x{w} map"
            )
        return (self.out_ch, oh, ow)

    def _per_out(self) -> int:
        return (self.in_ch // self.groups) * self.kernel[0] * self.kernel[1]

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        weights = self.out_ch * self._per_out()
        return LayerCost(
            "conv",
            params=weights + (self.out_ch if self.bias else 0),
            macs=elements(out) * self._per_out(),
            ops=elements(out) if self.bias else 0,  # one add per output for the bias
            in_elems=elements(s),
            out_elems=elements(out),
            node=self,
        )

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        """Each (output position, weight) pair is one multiply-add in every pass: the forward sums
        it into the output, the input gradient (a transposed convolution of the output gradient)
        sends it back to the input, the weight gradient accumulates it into the weight. So all
        three equal the forward MACs, groups included.

        torch's FlopCounterMode (``conv_backward_flop``) counts the weight gradient as a dense
        convolution of the transposed input with the output gradient, which ignores ``groups``:
        it reports ``groups`` times the multiply-adds done (a depthwise conv over C channels: C
        times). scalelab counts the true figure; the tests assert that exact difference."""
        macs = elements(out) * self._per_out()
        return TrainMacs(forward=macs, grad_input=macs, grad_weight=macs)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """torch's convolution node keeps its input whenever it is recorded, even with a frozen weight
        (measured: tests/test_layer_registry.py). Other padding modes pad first (F.pad): the conv
        keeps the padded copy, and a reflection or replication pad keeps its input when that needs a
        gradient (circular padding is slices and a cat, which keep only sizes)."""
        if self.padding_mode == "zeros":
            return Saved(input=True)
        c, h, w = s
        padded = c * (h + 2 * self.padding[0]) * (w + 2 * self.padding[1])
        return Saved(input=input_grad and self.padding_mode in ("reflect", "replicate"), per_sample_elements=padded)

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        n = elements(out)
        if self.padding_mode == "zeros":
            return InnerPeak(out, n, n)
        c, h, w = s  # nn.Conv2d first pads its input into a new tensor (F.pad), alive with the output
        return InnerPeak(out, n, c * (h + 2 * self.padding[0]) * (w + 2 * self.padding[1]) + n)

    def latency(self) -> tuple[LatencyClass, int]:
        if self.groups == 1:
            kind = LatencyClass.POINTWISE_CONV if self.kernel == (1, 1) else LatencyClass.DENSE_CONV
        elif self.groups != self.in_ch:
            kind = LatencyClass.GROUPED_CONV
        else:
            kind = LatencyClass.DEPTHWISE_CONV if self.stride == (1, 1) else LatencyClass.STRIDED_DEPTHWISE_CONV
        return kind, self.out_ch

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.Conv2d(self.in_ch, self.out_ch, self.kernel, self.stride, self.padding, self.dilation,
                         self.groups, self.bias, self.padding_mode)
