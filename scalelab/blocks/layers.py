"""Primitive layers and the nodes that wire them: shape and cost formulas, written once.

A block's ``layers()`` returns a tree of these nodes. ``walk`` derives the output shape and the
per-layer costs from it; ``scalelab.build`` turns the same tree into torch modules. Nothing here
imports torch.

Shapes are per sample: ``(channels, height, width)`` for feature maps, ``(features,)`` for vectors.

Counting convention (stated in every report):
  * ``macs``: multiply-accumulates of conv, linear and matmul, bias excluded (torchvision ``_ops``,
    fvcore's conv/linear handles, and the papers' "FLOPs").
  * ``ops``: every other arithmetic or copy, by the per-element formula given on each primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """A layer cannot accept the shape it is given."""


def elements(shape: Shape) -> int:
    return math.prod(shape)


@dataclass(frozen=True)
class LayerCost:
    """Cost of one primitive layer at one input shape, per sample."""

    layer: str
    params: int = 0
    macs: int = 0
    ops: int = 0
    in_elems: int = 0
    out_elems: int = 0


def _spatial(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{what} needs a (channels, height, width) feature map, got {fmt_shape(shape)}")
    return shape  # type: ignore[return-value]


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window, exactly as torch computes it (incl. ceil_mode's edge rule)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1  # torch drops a last window that would start entirely in the right padding
    return out


# --------------------------------------------------------------------------------------------------
# Primitives


@dataclass(frozen=True)
class Conv:
    """2-D convolution. MACs = out_h * out_w * out * (in / groups) * kh * kw."""

    in_ch: int
    out_ch: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False
    padding_mode: str = "zeros"

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = _spatial(s, "conv")
        if c != self.in_ch:
            raise ShapeError(f"conv expects {self.in_ch} input channels, got {c}")
        # torch's limits: reflection needs padding < size, circular padding may wrap only once
        limit = {"reflect": lambda pad, size: pad < size, "circular": lambda pad, size: pad <= size}.get(self.padding_mode)
        if limit and not all(limit(p, n) for p, n in zip(self.padding, (h, w))):
            raise ShapeError(f"{self.padding_mode} padding {self.padding[0]}x{self.padding[1]} is too large for a {h}x{w} map")
        oh = _window_out(h, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0])
        ow = _window_out(w, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1])
        if oh < 1 or ow < 1:
            raise ShapeError(
                f"a {self.kernel[0]}x{self.kernel[1]} conv (padding {self.padding[0]}, dilation "
                f"{self.dilation[0]}) does not fit a {h}x{w} map"
            )
        return (self.out_ch, oh, ow)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        per_out = (self.in_ch // self.groups) * self.kernel[0] * self.kernel[1]
        weights = self.out_ch * per_out
        return LayerCost(
            "conv",
            params=weights + (self.out_ch if self.bias else 0),
            macs=elements(out) * per_out,
            ops=elements(out) if self.bias else 0,  # one add per output for the bias
            in_elems=elements(s),
            out_elems=elements(out),
        )


@dataclass(frozen=True)
class Linear:
    """Fully connected layer on a vector. MACs = in * out."""

    in_features: int
    out_features: int
    bias: bool = True

    def out_shape(self, s: Shape) -> Shape:
        if len(s) != 1 or s[0] != self.in_features:
            raise ShapeError(f"linear expects a vector of {self.in_features}, got {fmt_shape(s)}")
        return (self.out_features,)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(
            "linear",
            params=self.in_features * self.out_features + (self.out_features if self.bias else 0),
            macs=self.in_features * self.out_features,
            ops=self.out_features if self.bias else 0,
            in_elems=self.in_features,
            out_elems=self.out_features,
        )


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over channels: 2 parameters per channel; at inference it folds into
    a scale and a shift, 2 ops per element (fvcore's eval-mode count)."""

    channels: int
    eps: float = 1e-5
    momentum: float = 0.1

    def out_shape(self, s: Shape) -> Shape:
        _spatial(s, "batchnorm")  # the built module is BatchNorm2d, which takes feature maps only
        if s[0] != self.channels:
            raise ShapeError(f"batchnorm expects {self.channels} channels, got {s[0]}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("batchnorm", params=2 * self.channels, ops=2 * n, in_elems=n, out_elems=n)


@dataclass(frozen=True)
class LocalResponseNorm:
    """AlexNet's LRN: b = a / (k + alpha/size * sum of a^2 over `size` neighbouring channels)^beta.
    Per element: size squares, size-1 adds, then scale, add k, power and divide: 2*size + 3 ops."""

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def out_shape(self, s: Shape) -> Shape:
        _spatial(s, "local response norm")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("lrn", ops=(2 * self.size + 3) * n, in_elems=n, out_elems=n)


# Per-element operation counts of each activation, from its defining formula.
ACTIVATION_OPS = {
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "sigmoid": 4,  # 1 / (1 + exp(-x)): negate, exp, add, divide
    "tanh": 5,  # (exp(2x) - 1) / (exp(2x) + 1)
    "silu": 5,  # x * sigmoid(x), a.k.a. swish
    "hardsigmoid": 4,  # relu6(x + 3) / 6
    "hardswish": 5,  # x * hardsigmoid(x)
    "gelu": 5,  # x * (1 + erf(x / sqrt(2))) / 2: divide, erf, add, multiply, halve
}


@dataclass(frozen=True)
class Activation:
    fn: str

    def out_shape(self, s: Shape) -> Shape:
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost(self.fn, ops=ACTIVATION_OPS[self.fn] * n, in_elems=n, out_elems=n)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling over a window. Max: kh*kw - 1 comparisons per output; average:
    kh*kw - 1 adds and a divide per output."""

    op: str  # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = _spatial(s, f"{self.op} pool")
        for k, p in zip(self.kernel, self.padding):
            if p > k // 2:
                raise ShapeError(f"pool padding {p} must be at most half the kernel {k}")
        oh = _window_out(h, self.kernel[0], self.stride[0], self.padding[0], ceil=self.ceil_mode)
        ow = _window_out(w, self.kernel[1], self.stride[1], self.padding[1], ceil=self.ceil_mode)
        if oh < 1 or ow < 1:
            raise ShapeError(f"a {self.kernel[0]}x{self.kernel[1]} {self.op} pool does not fit a {h}x{w} map")
        return (c, oh, ow)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        window = self.kernel[0] * self.kernel[1]
        per_out = window - 1 if self.op == "max" else window
        return LayerCost(f"{self.op}pool", ops=per_out * elements(out), in_elems=elements(s), out_elems=elements(out))


@dataclass(frozen=True)
class AdaptiveAvgPool:
    """Average pooling to a fixed output size (1x1 = global). One add per input element, as fvcore
    counts it."""

    size: tuple[int, int]

    def out_shape(self, s: Shape) -> Shape:
        c, _, _ = _spatial(s, "adaptive average pool")
        return (c, *self.size)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("avgpool", ops=elements(s), in_elems=elements(s), out_elems=elements(out))


@dataclass(frozen=True)
class Flatten:
    def out_shape(self, s: Shape) -> Shape:
        return (elements(s),)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("flatten", in_elems=elements(s), out_elems=elements(s))


@dataclass(frozen=True)
class Dropout:
    """Identity at inference: no ops. ``stochastic_depth`` drops whole residual branches
    (Huang et al. 2016); the rate is kept for the built module."""

    p: float
    stochastic_depth: bool = False

    def out_shape(self, s: Shape) -> Shape:
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("dropout", in_elems=elements(s), out_elems=elements(s))


@dataclass(frozen=True)
class ZeroPadShortcut:
    """ResNet option A shortcut (He et al. 2016, §4.2): subsample by the stride and append
    zero channels. No parameters; one copy per output element."""

    stride: int
    out_ch: int

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = _spatial(s, "zero-padding shortcut")
        if self.out_ch < c:
            raise ShapeError(f"a zero-padding shortcut cannot shrink {c} channels to {self.out_ch}")
        return (self.out_ch, -(-h // self.stride), -(-w // self.stride))

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("zeropad", ops=elements(out), in_elems=elements(s), out_elems=elements(out))


Primitive = Union[
    Conv, Linear, BatchNorm, LocalResponseNorm, Activation, Pool, AdaptiveAvgPool, Flatten, Dropout, ZeroPadShortcut
]


# --------------------------------------------------------------------------------------------------
# Wiring nodes


@dataclass(frozen=True)
class Sequence:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Residual:
    """y = post(body(x) + shortcut(x)); shortcut None is the identity."""

    body: "Node"
    shortcut: "Node | None" = None
    post: "Node | None" = None


@dataclass(frozen=True)
class Parallel:
    """Branches on the same input, concatenated along channels (Inception)."""

    branches: tuple["Node", ...]


@dataclass(frozen=True)
class Gate:
    """y = x * body(x), body giving one weight per channel (squeeze-and-excitation)."""

    body: "Node"


@dataclass(frozen=True)
class Merge:
    """Joins the outputs of several blocks: "add" (element-wise sum) or "concat" (channels)."""

    op: str


Node = Union[Primitive, Sequence, Residual, Parallel, Gate, Merge]


def seq(*items: "Node | None") -> Sequence:
    """A sequence, skipping the ``None`` placeholders of optional layers."""
    return Sequence(tuple(i for i in items if i is not None))


# --------------------------------------------------------------------------------------------------
# The walk: shape and cost of a node tree


def _merged(op: str, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    if op == "add":
        for s in shapes[1:]:
            if s != first:
                raise ShapeError(f"cannot add {fmt_shape(first)} and {fmt_shape(s)}")
        return first
    for s in shapes[1:]:
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ShapeError(f"cannot concatenate {fmt_shape(first)} and {fmt_shape(s)} along channels")
    return (sum(s[0] for s in shapes), *first[1:])


def _merge_cost(op: str, shapes: list[Shape], out: Shape) -> LayerCost:
    n = elements(out)
    ops = (len(shapes) - 1) * n if op == "add" else n  # adds, or one copy per element
    return LayerCost(op, ops=ops, in_elems=sum(elements(s) for s in shapes), out_elems=n)


@dataclass
class Walk:
    out: Shape
    costs: list[LayerCost] = field(default_factory=list)


def walk(node: Node, shape: "Shape | list[Shape]") -> Walk:
    """Propagate ``shape`` through ``node``; return the output shape and each primitive's cost."""
    if isinstance(node, Merge):
        shapes = list(shape)  # type: ignore[arg-type]
        out = _merged(node.op, shapes)
        return Walk(out, [_merge_cost(node.op, shapes, out)])
    if isinstance(node, Sequence):  # its first item may be a Merge of several shapes
        result = Walk(shape)  # type: ignore[arg-type]
        for item in node.items:
            step = walk(item, result.out)
            result = Walk(step.out, result.costs + step.costs)
        return result
    assert isinstance(shape, tuple)
    if isinstance(node, Residual):
        body = walk(node.body, shape)
        short = walk(node.shortcut, shape) if node.shortcut is not None else Walk(shape)
        out = _merged("add", [body.out, short.out])
        costs = body.costs + short.costs + [_merge_cost("add", [body.out, short.out], out)]
        if node.post is not None:
            post = walk(node.post, out)
            return Walk(post.out, costs + post.costs)
        return Walk(out, costs)
    if isinstance(node, Parallel):
        walks = [walk(b, shape) for b in node.branches]
        shapes = [w.out for w in walks]
        out = _merged("concat", shapes)
        return Walk(out, [c for w in walks for c in w.costs] + [_merge_cost("concat", shapes, out)])
    if isinstance(node, Gate):
        body = walk(node.body, shape)
        if body.out != (shape[0], 1, 1):
            raise ShapeError(f"a gate must give one weight per channel ({shape[0]}x1x1), got {fmt_shape(body.out)}")
        n = elements(shape)
        return Walk(shape, body.costs + [LayerCost("mul", ops=n, in_elems=n + shape[0], out_elems=n)])
    out = node.out_shape(shape)
    return Walk(out, [node.cost(shape, out)])
