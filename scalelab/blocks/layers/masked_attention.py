"""Scaled dot-product attention with an additive mask, softmax(q k^T * scale + mask) v, every face, as
torch's math kernel runs it (``F.scaled_dot_product_attention(..., attn_mask=mask)``): attention whose
scores take a position bias (CoAtNet's and MaxViT's relative position bias passed as the mask). Its
torch module is in ``masked_attention_torch``.

The mask, the fourth input, broadcasts to the scores (..., L, S). The faces are attention's
(``attention.py``) with the mask's addition: L*S more ops per head, and the mask's gradient, which is
the scores' gradient itself (no product of its own, but it needs probs' gradient, dout @ v^T)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.attention import Attention, Sizes
from scalelab.blocks.layers.base import LayerCost, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, register

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


def _sizes(s: list[Shape]) -> Sizes:
    """q, k and v's sizes, the mask checked to broadcast to the scores (..., L, S)."""
    if len(s) != 4:
        raise ShapeError(f"masked attention takes four inputs q, k, v, mask, got {len(s)}")
    z = Sizes.of(list(s[:3]))
    scores = (*s[0][:-2], z.L, z.S)
    mask = s[3]
    if len(mask) > len(scores) or any(m not in (1, d) for m, d in zip(mask[::-1], scores[::-1])):
        raise ShapeError(f"masked attention: a mask of {fmt_shape(mask)} does not broadcast to the scores "
                         f"{fmt_shape(scores)}")
    return z


@register
@dataclass(frozen=True)
class MaskedAttention(Attention):
    """softmax(q k^T * scale + mask) v of four inputs; ``scale`` None for 1/sqrt(E). MACs = heads * L *
    S * (E + Ev), as attention's. Other ops per head: attention's, and the mask's addition (L*S)."""

    kind = "masked_attention"

    def out_shape(self, s: list[Shape]) -> Shape:  # type: ignore[override]  # four inputs' shapes
        return _sizes(list(s)).out

    def cost(self, s: list[Shape], out: Shape) -> LayerCost:  # type: ignore[override]
        z = _sizes(s)
        base = super().cost(list(s[:3]), out)
        return LayerCost("masked_attention", macs=base.macs, ops=base.ops + z.heads * z.L * z.S,
                         in_elems=base.in_elems + elements(s[3]), out_elems=base.out_elems, node=self)

    def grad_macs(self, s: list[Shape], grads: tuple[bool, ...]) -> TrainMacs:
        """Attention's for q, k and v; the mask's gradient is the scores' (probs' gradient needed)."""
        z = _sizes(s)
        gq, gk, gv, gm = grads
        per_head = z.L * z.S * (z.Ev * (gq or gk or gm) + z.E * gq + z.E * gk + z.Ev * gv)
        return TrainMacs(forward=z.macs, grad_input=z.heads * per_head)

    def train_macs(self, s: list[Shape], out: Shape) -> TrainMacs:  # type: ignore[override]
        return self.grad_macs(s, (True, True, True, True))

    def saved(self, s: list[Shape], out: Shape, weights_trained: bool,  # type: ignore[override]
              input_grad: "bool | tuple[bool, ...]", device: str) -> Saved:
        """Attention's (probs; v for any of q, k or the mask; scaled k^T for q, scaled q for k); the
        addition keeps nothing."""
        gq, gk, gv, gm = input_grad if isinstance(input_grad, tuple) else (input_grad,) * 4
        z = _sizes(s)
        extra = z.heads * (z.L * z.S + z.S * z.E * gq + z.L * z.E * gk)
        return Saved(inputs=(False, False, gq or gk or gm, False), per_sample_elements=extra)

    def fused_saved(self, s: list[Shape], out: Shape) -> Saved:
        """The memory-efficient kernel (the fused one that takes a mask): q, k, v and the mask as
        given, and the log-sum-exp of each query's scores, fp32."""
        z = _sizes(s)
        return Saved(inputs=(True, True, True, True), per_sample_bytes=4 * z.heads * z.L)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.masked_attention_torch import MaskedAttention as Module  # torch: only when built

        return Module(self.scale)

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        return walker.several(self, list(xs), self.out_shape([t.shape for t in xs]))
