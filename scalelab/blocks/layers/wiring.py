"""The nodes that wire primitives into a block: sequence, residual, parallel branches, gate, merge.

Each answers the same protocol as a primitive (``walk``, ``peak``, ``train``, ``module``) by
recursing into its children, and gives the latency kind of the one elementwise operation it adds
itself (a residual's add, a concatenation, a gate's multiply). The eval-mode memory each one
models is described in ``scalelab.analysis.block_memory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from scalelab.blocks.layers.base import (
    _CLASSES, InnerPeak, LatencyClass, LayerCost, Primitive, Shape, ShapeError, Walk, definition, elements,
    fmt_shape, missing_face, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk
    from scalelab.blocks.layers.unpack import Unpack


def walk(node: Node, shape: "Shape | list[Shape]") -> Walk:
    """Propagate ``shape`` through ``node``; return the output shape and each layer's cost."""
    if type(node) not in _CLASSES:
        definition(node)  # raises UnknownLayer
    # a node gets what its place gives it: a Merge (or an opaque merge) the list of its inputs' shapes,
    # every other node one shape; the types cannot pair the two
    return node.walk(shape)  # type: ignore[arg-type]


def peak(node: Node, shape: "Shape | list[Shape]") -> InnerPeak:
    """The elements ``node`` allocates and holds at once as the built eval module runs it."""
    return definition(node).peak(shape)  # type: ignore[arg-type]  # a Merge gets a list of shapes, as in walk


def merged(op: str, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    if op == "add":
        for s in shapes[1:]:
            if s != first:
                raise ShapeError(f"cannot add {fmt_shape(first)} and {fmt_shape(s)}")
        return first
    if any(not s for s in shapes):  # one value per sample (an unbind's output) has no axis to join along
        raise ShapeError("cannot concatenate a scalar per sample; stack such inputs")
    for s in shapes[1:]:
        if len(s) != len(first) or s[1:] != first[1:]:
            raise ShapeError(f"cannot concatenate {fmt_shape(first)} and {fmt_shape(s)} along channels")
    return (sum(s[0] for s in shapes), *first[1:])


def merge_cost(op: str, shapes: list[Shape], out: Shape, node: Node) -> LayerCost:
    n = elements(out)
    ops = (len(shapes) - 1) * n if op == "add" else n  # adds, or one copy per element
    return LayerCost(op, ops=ops, in_elems=sum(elements(s) for s in shapes), out_elems=n, node=node)


class Wiring:
    """Base of the wiring nodes: a face a node does not define is an error."""

    kind = "wiring"

    def latency(self) -> tuple[LatencyClass, int | None]:
        missing_face(self, "latency")


@register
@dataclass(frozen=True)
class Sequence(Wiring):
    """Items one after another; the first may be a Merge of several inputs."""

    kind = "sequence"
    items: tuple["Node", ...]

    def walk(self, shape: "Shape | list[Shape]") -> Walk:
        costs: list[LayerCost] = []
        for item in self.items:
            step = walk(item, shape)
            shape = step.out
            costs += step.costs
        return Walk(shape, costs)  # type: ignore[arg-type]  # a list of shapes only reaches a leading Merge

    def peak(self, shape: "Shape | list[Shape]") -> InnerPeak:
        """An item's input (the previous item's output) stays alive while it runs and is freed once
        the next output exists; a nested sequence is one item."""
        current = most = 0  # elements of the item output now held (0: still the caller's input)
        for item in self.items:
            r = peak(item, shape)
            most = max(most, current + r.peak_elems)
            if r.out_elems:  # a view keeps the storage it views; otherwise the old one is freed
                current = r.out_elems
            shape = r.out
        return InnerPeak(shape, current, most)  # type: ignore[arg-type]  # a list only reaches a leading Merge

    def train(self, walker: TrainWalk, x: "Tensor | list[Tensor]") -> Tensor:
        for item in self.items:
            x = walker.run(item, x)
        return x  # type: ignore[return-value]  # a list of tensors only reaches a leading Merge

    def module(self) -> nn.Module:
        from torch import nn

        return nn.Sequential(*[definition(n).module() for n in self.items])  # a leading Merge takes the list


@register
@dataclass(frozen=True)
class Residual(Wiring):
    """y = post(body(x) + shortcut(x)); shortcut None is the identity."""

    kind = "residual"
    body: "Node"
    shortcut: "Node | None" = None
    post: "Node | None" = None

    def walk(self, shape: Shape) -> Walk:
        body = walk(self.body, shape)
        short = walk(self.shortcut, shape) if self.shortcut is not None else Walk(shape)
        out = merged("add", [body.out, short.out])
        costs = body.costs + short.costs + [merge_cost("add", [body.out, short.out], out, self)]
        if self.post is not None:
            post = walk(self.post, out)
            return Walk(post.out, costs + post.costs)
        return Walk(out, costs)

    def peak(self, shape: Shape) -> InnerPeak:
        """The body's output stays alive while the shortcut runs, both with the sum, the sum while
        ``post`` runs."""
        body = peak(self.body, shape)
        short = peak(self.shortcut, shape) if self.shortcut is not None else InnerPeak(shape, 0, 0)
        n = elements(body.out)
        most = max(body.peak_elems, body.out_elems + short.peak_elems, body.out_elems + short.out_elems + n)
        if self.post is None:
            return InnerPeak(body.out, n, most)
        post = peak(self.post, body.out)
        return InnerPeak(post.out, post.out_elems or n, max(most, n + post.peak_elems))

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        body = walker.run(self.body, x)
        short = walker.run(self.shortcut, x) if self.shortcut is not None else x
        out = walker.joined(body.shape, [body, short])  # add keeps only sizes
        return walker.run(self.post, out) if self.post is not None else out

    def module(self) -> nn.Module:
        from torch import nn

        from scalelab.blocks.layers.torch_modules import Residual as Module  # torch: only when a module is built

        short = definition(self.shortcut).module() if self.shortcut is not None else nn.Identity()
        post = definition(self.post).module() if self.post is not None else nn.Identity()
        return Module(definition(self.body).module(), short, post)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None  # the add


@register
@dataclass(frozen=True)
class Parallel(Wiring):
    """Branches on the same input, concatenated along channels (Inception)."""

    kind = "parallel"
    branches: tuple["Node", ...]

    def walk(self, shape: Shape) -> Walk:
        walks = [walk(b, shape) for b in self.branches]
        shapes = [w.out for w in walks]
        out = merged("concat", shapes)
        return Walk(out, [c for w in walks for c in w.costs] + [merge_cost("concat", shapes, out, self)])

    def peak(self, shape: Shape) -> InnerPeak:
        """Finished branch outputs stay alive while later branches run and during the concatenation."""
        done = most = 0
        shapes: list[Shape] = []
        for branch in self.branches:
            r = peak(branch, shape)
            most = max(most, done + r.peak_elems)
            done += r.out_elems
            shapes.append(r.out)
        out = merged("concat", shapes)
        return InnerPeak(out, elements(out), max(most, done + elements(out)))

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        outs = [walker.run(b, x) for b in self.branches]
        return walker.joined(merged("concat", [t.shape for t in outs]), outs)  # cat keeps only sizes

    def module(self) -> nn.Module:
        from scalelab.blocks.layers.torch_modules import Parallel as Module  # torch: only when a module is built

        return Module([definition(b).module() for b in self.branches])

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None  # the concatenation


@register
@dataclass(frozen=True)
class Gate(Wiring):
    """y = x * body(x), body giving one weight per channel (squeeze-and-excitation)."""

    kind = "gate"
    body: "Node"

    def walk(self, shape: Shape) -> Walk:
        body = walk(self.body, shape)
        if body.out != (shape[0], 1, 1):
            raise ShapeError(f"a gate must give one weight per channel ({shape[0]}x1x1), got {fmt_shape(body.out)}")
        n = elements(shape)
        return Walk(shape, body.costs + [LayerCost("mul", ops=n, in_elems=n + shape[0], out_elems=n, node=self)])

    def peak(self, shape: Shape) -> InnerPeak:
        """The body's (channels x 1 x 1) output is alive with the product."""
        r = peak(self.body, shape)
        n = elements(shape)
        return InnerPeak(shape, n, max(r.peak_elems, r.out_elems + n))

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.product(x, walker.run(self.body, x))  # x * g keeps both factors

    def module(self) -> nn.Module:
        from scalelab.blocks.layers.torch_modules import Gate as Module  # torch: only when a module is built

        return Module(definition(self.body).module())

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None  # the multiply


@register
@dataclass(frozen=True)
class Merge(Wiring):
    """Joins the outputs of several blocks: "add" (element-wise sum) or "concat" (channels)."""

    kind = "merge"
    op: str

    def walk(self, shapes: list[Shape]) -> Walk:
        shapes = list(shapes)
        out = merged(self.op, shapes)
        return Walk(out, [merge_cost(self.op, shapes, out, self)])

    def peak(self, shapes: list[Shape]) -> InnerPeak:
        """``add`` writes one sum (further inputs are added into it in place); ``concat`` its output."""
        out = merged(self.op, list(shapes))
        return InnerPeak(out, elements(out), elements(out))

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:
        return walker.joined(merged(self.op, [t.shape for t in xs]), xs)  # add and cat keep only sizes

    def module(self) -> nn.Module:
        from scalelab.blocks.layers.torch_modules import Merge as Module  # torch: only when a module is built

        return Module(self.op)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None


Node = Union["Primitive", Sequence, Residual, Parallel, Gate, Merge, "Unpack"]


def seq(*items: "Node | None") -> Sequence:
    """A sequence, skipping the ``None`` placeholders of optional layers."""
    return Sequence(tuple(i for i in items if i is not None))
