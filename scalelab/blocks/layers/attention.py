"""Scaled dot-product attention of three inputs, every face, as torch's math kernel runs it
(``torch.nn.attention.SDPBackend.MATH``); its torch module is in ``attention_torch``.

Per sample, q is (..., L, E), k (..., S, E) and v (..., S, Ev), the leading axes (heads) the same for
all three; the output is (..., L, Ev). Per head the kernel computes

    scores = (q * sqrt(scale)) @ (k^T * sqrt(scale))     L x E x S   multiply-accumulates
    probs  = softmax(scores [+ causal mask])             (scale = 1 / sqrt(E) unless given)
    out    = probs @ v                                   L x S x Ev  multiply-accumulates

MACs are the reference figure: FlopCounterMode total / 2 with grad enabled and the math kernel (under
``no_grad`` or a fused kernel FlopCounterMode counts attention as zero). The memory figures are the
math kernel's too: autograd keeps the scaled q, the scaled k^T, the probability matrix and v (the
score matrix in memory), never the fused kernels' log-sum-exp alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


@dataclass(frozen=True)
class Sizes:
    """q, k and v as the kernel sees them: ``heads`` products (the leading axes) of L queries, S keys,
    query/key width E and value width Ev."""

    heads: int
    L: int
    S: int
    E: int
    Ev: int
    out: Shape

    @classmethod
    def of(cls, shapes: list[Shape]) -> "Sizes":
        if len(shapes) != 3 or any(len(s) < 2 for s in shapes):
            raise ShapeError("attention takes three inputs q, k, v of rank 2 or more, got "
                             f"{len(shapes)}: {', '.join(map(fmt_shape, shapes))}")
        q, k, v = shapes
        if not q[:-2] == k[:-2] == v[:-2]:
            raise ShapeError(f"attention of q {fmt_shape(q)}, k {fmt_shape(k)}, v {fmt_shape(v)}: "
                             "their leading axes differ")
        if q[-1] != k[-1]:
            raise ShapeError(f"attention: q's width {q[-1]} and k's width {k[-1]} differ")
        if k[-2] != v[-2]:
            raise ShapeError(f"attention: {k[-2]} keys and {v[-2]} values")
        return cls(math.prod(q[:-2]), q[-2], k[-2], q[-1], v[-1], (*q[:-1], v[-1]))

    @property
    def macs(self) -> int:
        return self.heads * self.L * self.S * (self.E + self.Ev)


@register
@dataclass(frozen=True)
class Attention(Primitive):
    """softmax(q k^T * scale [+ causal mask]) v on per-sample shapes (..., L, E), (..., S, E),
    (..., S, Ev), with the math kernel. ``causal``: query i sees keys 0..i (torch's ``is_causal``,
    aligned top-left); ``scale``: None for 1/sqrt(E).

    MACs = heads * L * S * (E + Ev). Other ops per head: the two scalings (L*E + S*E), the causal
    mask's addition (L*S, when causal) and the softmax (5 per score, as the softmax kind counts it);
    the layout copies torch may make to fold the leading axes are not counted."""

    kind = "attention"
    causal: bool = False
    scale: Optional[float] = None

    def out_shape(self, s: list[Shape]) -> Shape:  # type: ignore[override]  # three inputs' shapes
        return Sizes.of(list(s)).out

    def cost(self, s: list[Shape], out: Shape) -> LayerCost:  # type: ignore[override]
        z = Sizes.of(s)
        ops = z.heads * (z.L * z.E + z.S * z.E + (z.L * z.S if self.causal else 0) + 5 * z.L * z.S)
        return LayerCost("attention", macs=z.macs, ops=ops, in_elems=sum(elements(x) for x in s),
                         out_elems=elements(out), node=self)

    def grad_macs(self, s: list[Shape], grads: tuple[bool, ...]) -> TrainMacs:
        """Forward, and the backward products each input's need calls for: the gradient of probs
        (dout @ v^T) for q or k, then dscores @ k for q, dscores^T @ q for k, probs^T @ dout for v."""
        z = Sizes.of(s)
        gq, gk, gv = grads
        per_head = z.L * z.S * (z.Ev * (gq or gk) + z.E * gq + z.E * gk + z.Ev * gv)
        return TrainMacs(forward=z.macs, grad_input=z.heads * per_head)

    def train_macs(self, s: list[Shape], out: Shape) -> TrainMacs:  # type: ignore[override]
        return self.grad_macs(s, (True, True, True))  # every input needs a gradient (``train`` asks each)

    def saved(self, s: list[Shape], out: Shape, weights_trained: bool,  # type: ignore[override]
              input_grad: "bool | tuple[bool, ...]", device: str) -> Saved:
        """For the given need of each input (one flag: all three): the probabilities always; v when
        q or k needs a gradient; the scaled k^T for q's gradient, the scaled q for k's (measured with
        saved_tensors_hooks, the same on CPU and GPU: the math kernel is composed of aten operators)."""
        gq, gk, gv = input_grad if isinstance(input_grad, tuple) else (input_grad,) * 3
        z = Sizes.of(s)
        extra = z.heads * (z.L * z.S + z.S * z.E * gq + z.L * z.E * gk)
        return Saved(inputs=(False, False, gq or gk), per_sample_elements=extra)

    def fused_saved(self, s: list[Shape], out: Shape) -> Saved:
        """What the fused kernels keep for backward instead (flash attention, on CPU and CUDA; the
        memory-efficient kernel on CUDA): q, k and v as given (views of a qkv projection stay views of
        it), the log-sum-exp of each query's scores, fp32 whatever the dtype, and the output; never
        the score matrix. These kernels write the output queries first, (L, heads, Ev), so the
        transpose and reshape that put the heads back beside each other make no copy: the output is
        the tensor the projection after it keeps, counted there (as in ViT, DeiT and Swin, where
        attention always feeds its projection). Measured on CPU with saved_tensors_hooks under
        SDPBackend.FLASH_ATTENTION; on CUDA the memory-efficient kernel pads its log-sum-exp's
        queries to a multiple of 32 and both keep a few bytes of random state (not modelled)."""
        z = Sizes.of(s)
        return Saved(inputs=(True, True, True), per_sample_bytes=4 * z.heads * z.L)

    def inner_peak(self, s: list[Shape], out: Shape) -> InnerPeak:  # type: ignore[override]
        # in inference mode the kernel is one operator (measured): only its output is seen
        n = elements(out)
        return InnerPeak(out, n, n)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.LINEAR, None  # two batched matrix products: no fixed width for the thin-kernel rule

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        q, k, v = xs
        math_kernel = walker.attention_kernel == "math"  # a fused kernel takes strided views as they are
        folded = (walker.batch > 1) + sum(n > 1 for n in v.shape[:-2])  # axes the batched product folds into one
        if math_kernel and folded > 1 and v.storage.elems > elements(v.shape):
            # v is a view into a larger tensor (unbind of a fused qkv projection): torch copies it to
            # fold the batch and its leading axes into one for the batched product, and keeps that copy,
            # not the larger tensor (measured; where one axis of size > 1 is left, as a single head or a
            # batch of one, it is a view and torch keeps the larger tensor)
            v = type(v)(v.shape, v.grad)  # a tensor of its own storage
        return walker.several(self, [q, k, v], self.out_shape([t.shape for t in xs]))

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.attention_torch import Attention as Module  # torch: only when a module is built

        return Module(self.causal, self.scale)
