"""Activation memory inside one block: the most elements its layers hold at once during inference.

The model follows what the module built by ``scalelab.build`` really does in eval mode, step by
step (CPython frees a tensor as soon as its last reference goes; the caller of a node holds the
node's input for the whole call):

* every primitive allocates a new output, except ``Flatten`` (a view of its contiguous input) and
  ``Dropout`` / stochastic depth (they return their input unchanged in eval). Activations are not
  in-place (``scalelab.build`` uses ``nn.ReLU()`` etc. without ``inplace=True``), and batchnorm in
  eval writes a new tensor;
* a ``Conv`` with a padding mode other than zeros first pads its input into a new tensor
  (``nn.Conv2d`` calls ``F.pad``), alive while the convolution writes its output;
* ``LocalResponseNorm`` is torch's ``F.local_response_norm``: x*x, a channel-padded copy, an average
  pool, then ``.mul(alpha).add(k).pow(beta)`` and ``x / div`` — at most ``max(n + padded, 3n)``;
* ``Sequence``: while an item runs, its input (the previous item's output) stays alive; it is freed
  once the next output exists. A nested sequence is one item, so its input stays alive until the
  whole nested sequence returns (conv -> batchnorm -> activation inside an inverted residual keeps
  the previous stage's output alive);
* ``Residual``: ``post(body(x) + shortcut(x))`` — the body's output stays alive while the shortcut
  runs, both are alive with the sum, and the sum while ``post`` runs;
* ``Parallel``: ``cat([branch(x) for branch in branches])`` — finished branch outputs stay alive
  while later branches run and during the concatenation;
* ``Gate``: ``x * body(x)`` — the body's (channels x 1 x 1) output is alive with the product;
* ``Merge``: ``add`` writes one sum (further inputs are added into it in place); ``concat`` writes
  its output.

* attention (``Attention``, Swin's ``WindowAttention``) holds more than its output while it runs:
  the score matrix and the probabilities under the math kernel, the log-sum-exp under a fused one;
  its phases say what, and some of it (a causal mask, Swin's position bias and shifted-window mask)
  is one tensor for the whole batch. A fused kernel writes its output in the layout of q: from
  q, k and v cut token-major (the transformer kinds' pieces) the output is token-major, so the
  transpose that puts the heads back beside each other gives a contiguous tensor and the
  ``Contiguous`` after it copies nothing (torch's ``.contiguous()`` returns the tensor itself;
  measured under ``SDPBackend.FLASH_ATTENTION``). The math kernel's output is head-major: copied.

Each rule lives with the node it describes (its ``inner_peak`` face, or a wiring node's ``peak``).
Counts are elements per sample; the input of the node is held by its caller and not counted.
Kernel-internal scratch space (a convolution's im2col buffer, a cuDNN workspace) is not modelled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from scalelab.blocks.layers import Attention, Contiguous, InnerPeak, Node, Permute, Primitive, Sequence, Shape, Unpack, Wiring, peak
from scalelab.blocks.layers.attention import FUSED_Q_RANKS, LIFT, RUN, InferenceRun, Phase

__all__ = ["InnerPeak", "block_peak", "fused_refusals", "inner_peak"]


def inner_peak(node: Node, shape: "Shape | list[Shape]") -> InnerPeak:
    """Walk ``node`` on ``shape`` as the built module runs it (see the module docstring)."""
    return peak(node, shape)


def block_peak(node: Node, shape: "Shape | list[Shape]", batch: int, nbytes: int, kernel: str = "math",
               layout: str = "token-major") -> tuple[InnerPeak, int]:
    """The per-sample walk of ``node`` and the bytes its batch holds at its peak, attention run by
    ``kernel`` on q, k, v laid out as ``layout`` (``attention.LAYOUTS``). Tensors the batch shares, alive in some
    phase of an attention layer, are added to what the block holds beside that phase: the walk is
    repeated with that phase lifted above every other step, so that its maximum is that phase's."""
    if kernel == "fused" and layout == "token-major":
        node = fused_views(node)
    seen: list[tuple[object, tuple[Phase, ...]]] = []
    plain = _walk(node, shape, InferenceRun(batch, kernel, nbytes, layout, seen=seen))
    most = batch * nbytes * plain.peak_elems
    shared = {(key, i): p.fixed_bytes for key, phases in seen for i, p in enumerate(phases) if p.fixed_bytes}
    for lift, fixed in shared.items():
        beside = _walk(node, shape, InferenceRun(batch, kernel, nbytes, layout, lift=lift)).peak_elems - LIFT
        most = max(most, batch * nbytes * beside + fixed)
    return plain, most


def fused_refusals(node: Node, shape: "Shape | list[Shape]") -> list[str]:
    """Why torch runs attention layers of ``node`` on ``shape`` by the math kernel though a fused one
    is asked for (``Attention.fused_refusal``), each reason once; empty where every one runs fused."""
    seen: list[tuple[object, tuple[Phase, ...]]] = []
    _walk(node, shape, InferenceRun(kernel="fused", seen=seen))
    layers = [cast(tuple, key) for key, _ in seen]  # (the layer, its inputs' shapes)
    reasons = [layer.fused_refusal(list(shapes)) for layer, shapes in layers if isinstance(layer, Attention)]
    return list(dict.fromkeys(r for r in reasons if r))


def _walk(node: Node, shape: "Shape | list[Shape]", run: InferenceRun) -> InnerPeak:
    token = RUN.set(run)
    try:
        return peak(node, shape)
    finally:
        RUN.reset(token)


def fused_views(node: Node) -> Node:
    """``node`` with each ``Contiguous`` that follows a fused attention's output transposed back to
    tokens-major dropped: that output is token-major already, so the copy is the tensor itself."""
    if isinstance(node, Sequence):
        items = [fused_views(item) for item in node.items]
        kept = [item for i, item in enumerate(items) if not (i >= 2 and _copies_nothing(items[i - 2:i + 1]))]
        return dataclasses.replace(node, items=tuple(kept))
    if not isinstance(node, (Primitive, Wiring)) or not dataclasses.is_dataclass(node):
        return node
    changed: dict[str, Any] = {}  # a field's rewritten node or tuple of nodes
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, (Primitive, Wiring)):
            changed[f.name] = fused_views(cast(Node, value))
        elif isinstance(value, tuple) and value and all(isinstance(v, (Primitive, Wiring)) for v in value):
            changed[f.name] = tuple(fused_views(v) for v in value)
    return dataclasses.replace(cast(Any, node), **changed) if changed else node


def _copies_nothing(run: "list[Node]") -> bool:
    """Whether ``run`` is attention, the permute that swaps its heads and tokens axes back, and a
    ``Contiguous``: under a fused kernel on token-major q, the permuted output is contiguous. Only
    where torch runs a fused kernel: q of a rank it takes (the permute's, with the batch; the pieces
    of one unbind are as wide as each other); otherwise the math kernel's head-major output is copied."""
    attention, permute, copy = run
    if isinstance(attention, Unpack):
        attention = attention.join
    if not (isinstance(attention, Attention) and isinstance(permute, Permute) and isinstance(copy, Contiguous)):
        return False
    r = len(permute.dims)
    return r >= 3 and r + 1 in FUSED_Q_RANKS and tuple(d % r for d in permute.dims) == (*range(r - 3), r - 2, r - 3, r - 1)
