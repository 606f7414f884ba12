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

Counts are elements per sample; the input of the node is held by its caller and not counted.
Kernel-internal scratch space (a convolution's im2col buffer, a cuDNN workspace) is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.blocks import layers as L
from scalelab.blocks.layers import Shape, elements


@dataclass(frozen=True)
class InnerPeak:
    """Elements per sample a node allocates: its output (0 when the output is a view or the input
    itself) and the most alive at once while it runs (the output included)."""

    out: Shape
    out_elems: int
    peak_elems: int


def inner_peak(node: L.Node, shape: Shape | list[Shape]) -> InnerPeak:
    """Walk ``node`` on ``shape`` as the built module runs it (see the module docstring)."""
    if isinstance(node, L.Merge):
        shapes = list(shape)  # type: ignore[arg-type]
        out = L.walk(node, shapes).out
        n = elements(out)
        return InnerPeak(out, n, n)
    if isinstance(node, L.Sequence):
        return _sequence(node, shape)
    assert isinstance(shape, tuple)
    if isinstance(node, L.Residual):
        return _residual(node, shape)
    if isinstance(node, L.Parallel):
        done = peak = 0
        shapes = []
        for branch in node.branches:
            r = inner_peak(branch, shape)
            peak = max(peak, done + r.peak_elems)
            done += r.out_elems
            shapes.append(r.out)
        out = L.walk(L.Merge("concat"), shapes).out
        return InnerPeak(out, elements(out), max(peak, done + elements(out)))
    if isinstance(node, L.Gate):
        r = inner_peak(node.body, shape)
        n = elements(shape)
        return InnerPeak(shape, n, max(r.peak_elems, r.out_elems + n))
    return _primitive(node, shape)


def _sequence(node: L.Sequence, shape) -> InnerPeak:
    current = peak = 0  # elements of the item output now held (0: still the caller's input)
    for item in node.items:
        r = inner_peak(item, shape)
        peak = max(peak, current + r.peak_elems)
        if r.out_elems:  # a view keeps the storage it views; otherwise the old one is freed
            current = r.out_elems
        shape = r.out
    return InnerPeak(shape, current, peak)  # type: ignore[arg-type]


def _residual(node: L.Residual, shape: Shape) -> InnerPeak:
    body = inner_peak(node.body, shape)
    short = inner_peak(node.shortcut, shape) if node.shortcut is not None else InnerPeak(shape, 0, 0)
    n = elements(body.out)
    peak = max(body.peak_elems, body.out_elems + short.peak_elems, body.out_elems + short.out_elems + n)
    if node.post is None:
        return InnerPeak(body.out, n, peak)
    post = inner_peak(node.post, body.out)
    return InnerPeak(post.out, post.out_elems or n, max(peak, n + post.peak_elems))


def _primitive(node, shape: Shape) -> InnerPeak:
    out = node.out_shape(shape)
    n = elements(out)
    if isinstance(node, (L.Flatten, L.Dropout)):
        return InnerPeak(out, 0, 0)
    if isinstance(node, L.Conv) and node.padding_mode != "zeros":
        c, h, w = shape
        padded = c * (h + 2 * node.padding[0]) * (w + 2 * node.padding[1])
        return InnerPeak(out, n, padded + n)
    if isinstance(node, L.LocalResponseNorm):
        c, h, w = shape
        padded = (c + node.size - 1) * h * w  # size // 2 channels before, (size - 1) // 2 after
        return InnerPeak(out, n, max(n + padded, 3 * n))
    return InnerPeak(out, n, n)
