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
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


@dataclass(frozen=True)
class InferenceRun:
    """How an eval pass runs the attention layers, for their inner peaks (set by
    ``scalelab.analysis.block_memory`` around a block's walk; the default is a lone layer on three
    tensors of their own): the samples, the kernel ("math" or "fused"), the activation dtype's bytes,
    the layout of q, k and v (``LAYOUTS``), and the phase lifted above every other step of the walk
    (``lifted_peak``)."""

    batch: int = 1
    kernel: str = "math"
    nbytes: int = 4
    layout: str = "own"
    lift: "tuple[object, int] | None" = None  # (the layer and its inputs' shapes, the phase's index)
    seen: "list[tuple[object, tuple[Phase, ...]]] | None" = None  # each attention layer walked, with its phases


@dataclass(frozen=True)
class Phase:
    """A point inside an attention layer: elements per sample alive in it then (its output
    included), and bytes of tensors the whole batch shares then (a mask, a position bias)."""

    per_sample: int
    fixed_bytes: int = 0


#: how q, k and v lie in memory -> the tensors the math kernel's batched products copy to fold the batch
#: and the leading axes into one (when more than one of those axes is over 1)
LAYOUTS = {"own": "tensors of their own, contiguous: none",
           "token-major": "pieces of a qkv projection's (N, 3, heads, d) output, as timm and the transformer "
                          "kinds cut them: the scaled q (unless L is 1), the scaled k^T and v",
           "head-major": "pieces of a (3, heads, N, d) tensor: v (the scaled q and k^T are written head-major)"}
#: the ranks of q, the batch's axis included, that torch's fused kernels take (torch 2.14, CPU, flash
#: attention forced: a 3-d q runs as one sample of as many heads as the batch; q of 2 or 5 dims and more
#: gets "No available kernel"; torch's ``sdp_utils_cpp`` states 4-d as the fused kernels' one shape)
FUSED_Q_RANKS = (3, 4)
#: far above any count of elements: the lifted phase is the walk's maximum, whatever else it holds
LIFT = 1 << 80
RUN: ContextVar[InferenceRun] = ContextVar("attention_inference_run", default=InferenceRun())


def lifted_peak(key: object, out: Shape, out_elems: int, phases: tuple[Phase, ...]) -> InnerPeak:
    """The inner peak of an attention layer from its phases: the largest per-sample count, or, when
    the run lifts one of this layer's phases, that phase raised by ``LIFT`` (the walk's maximum then
    tells what the block holds beside that phase: its fixed bytes are added for the whole batch)."""
    run = RUN.get()
    if run.seen is not None:
        run.seen.append((key, phases))
    most = max(p.per_sample for p in phases)
    if run.lift is not None and run.lift[0] == key:
        most = LIFT + phases[run.lift[1]].per_sample
    return InnerPeak(out, out_elems, most)


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

    def fused_refusal(self, s: list[Shape]) -> Optional[str]:
        """Why torch cannot run this attention by a fused kernel, None where it can: torch then runs
        the math kernel even when a fused one is asked for (``sdpa_kernel([FLASH_ATTENTION, MATH])``),
        and the figures are the math kernel's. Measured with torch 2.14 on CPU, flash attention forced:
        q of ``FUSED_Q_RANKS`` dims (with the batch) only, as torch's dispatcher checks, and v as wide
        as q and k (flash attention's one head width); a float or boolean mask of q's rank, a causal
        mask, L other than S and strided token-major pieces are taken."""
        q, v = s[0], s[2]
        if len(q) + 1 not in FUSED_Q_RANKS:
            return f"torch's fused kernels take q of 3 or 4 dims with the batch, not {len(q) + 1}"
        if v[-1] != q[-1]:
            return f"flash attention takes v as wide as q and k, not {v[-1]} beside {q[-1]}"
        return None

    def runs_fused(self, s: list[Shape], kernel: str) -> bool:
        """Whether torch runs this attention by a fused kernel when ``kernel`` is asked for."""
        return kernel == "fused" and self.fused_refusal(s) is None

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
        # a further input (a float mask, which the math kernel adds into the scores in place) adds no tensor
        return lifted_peak((self, tuple(s)), out, elements(out), self.phases(list(s)[:3]))

    def phases(self, s: list[Shape]) -> tuple[Phase, ...]:
        """What the kernel holds as it runs, per sample (measured with the probe, which sees the math
        kernel's operators). The math kernel: the scaled q lives to the end; the scaled k^T and the
        scores with it, then the scores and the probabilities, then the probabilities, v's layout
        copy and the output; a causal mask (L x S, shared by the batch) throughout. The batched
        products fold the batch and the leading axes into one: where more than one of those axes is
        over 1, torch first copies what the layout of q, k and v calls for (``LAYOUTS``). The fused kernels (flash, on CPU) write the output and the log-sum-exp of each
        query's scores (fp32) only, where torch can run them (``fused_refusal``)."""
        z, run = Sizes.of(s), RUN.get()
        out = z.heads * z.L * z.Ev
        if self.runs_fused(s, run.kernel):
            return (Phase(out + z.heads * z.L * 4 // run.nbytes),)
        q, kt, scores = z.heads * z.L * z.E, z.heads * z.S * z.E, z.heads * z.L * z.S
        folds = (run.batch > 1) + sum(n > 1 for n in s[0][:-2]) > 1 and run.layout != "own"
        token_major = folds and run.layout == "token-major"
        cq, ck, cv = q * (token_major and z.L > 1), kt * token_major, z.heads * z.S * z.Ev * folds
        mask = z.L * z.S * run.nbytes if self.causal else 0
        return (Phase(q + kt + cq + ck + scores, mask), Phase(q + 2 * scores, mask), Phase(q + scores + cv + out, mask))

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.LINEAR, None  # two batched matrix products: no fixed width for the thin-kernel rule

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        q, k, v = xs
        # a fused kernel takes strided views as they are; where torch cannot run one, the math kernel copies
        math_kernel = not self.runs_fused([t.shape for t in xs], walker.attention_kernel)
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
