"""Width scaling that follows the wiring (``from:``), as an imported spec needs: which channel counts
are free and which are tied to others.

The base network is resolved once; walking it in execution order, every tensor's channel count
becomes a term (``scaling.ties``):

- a block stating its output channels (a conv's ``out``, a zoo block's) gives a free count;
- a conv with one group per input channel (depthwise) follows its input, groups included;
- another grouped conv keeps its group width (RegNet's) or its group count (AlexNet's two), whichever
  rounds more finely with the divisor; its input then rounds to a multiple of it;
- both sides of an add (any element-wise join) become one count, so they round alike; a
  concatenation's count is the sum of its inputs';
- a learned tensor (``param``) takes the count of what it is joined with; every other block keeps
  its input's channels or derives its own from its scaled input (a flatten, a linear);
- a tensor's channels are tracked on their axis (``scaling.layout``): a permute moves them, so a
  ``linear`` over the last axis of a channels-last map or of tokens states a free count of its own
  (ConvNeXt's and token MLPs), its input features the channels it reads; a reshape that keeps
  them whole restates their size;
- a ``split`` of the channels is a concatenation in reverse: its pieces are whole numbers of one
  free unit, a multiple of the divisor, and its input is their sum (CSPNet's equal halves stay
  equal); a ``channel_split`` into equal pieces of whole divisors is its input over the parts;
- a block stating fixed sizes (reshape, expand, split, slice, select, pad, roll, opaque) it cannot
  restate refuses, naming itself, when its input's channels would change.

Free counts round as ``round_channels`` does; zoo blocks scale their inner fields as before."""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import ValidationError

from scalelab.blocks import Block
from scalelab.blocks.layers import ShapeError, definition, walk
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.graph.network import ResolvedBlock
from scalelab.scaling.layout import (param_axis, permuted_axis, reduced_axis, reshaped_axis, restated_shape,
                                     sample_axis, split_unit)
from scalelab.scaling.ties import Derived, Fixed, Ratio, Sum, Term, Ties
from scalelab.scaling.widths import _blocks_of, _dividers, dump, scale_block, width_fields
from scalelab.spec.load import describe_error, yaml_path
from scalelab.spec.model import Spec, Stage

#: kinds that state sizes of their input (a target shape, split sizes, bounds, pads, shifts)
SIZED = {"reshape", "expand", "split", "slice", "select", "pad", "roll", "opaque", "opaque_merge", "unbind"}
#: element-wise joins: their inputs' channels are one count
JOINS = {"add", "binary"}
#: conv rules whose groups follow the conv's input, so they divide no other channel count
TIED = ("depthwise", "width")


def conv_rule(block: Block, in_channels: int, divisor: int) -> Optional[str]:
    """How a conv written with ``groups`` scales: 'depthwise' (one group per input channel), 'width'
    (its group width kept), 'count' (its group count kept), or None (one group, or zoo fields)."""
    if block.kind not in ("conv", "conv1d") or getattr(block, "out", None) is None:
        return None
    groups = getattr(block, "groups", 1)
    if groups <= 1 or getattr(block, "depthwise", False) or getattr(block, "group_width", None) is not None:
        return None
    if groups == in_channels:
        return "depthwise"
    group_width = in_channels // groups
    return "width" if math.lcm(divisor, group_width) <= math.lcm(divisor, groups) else "count"


class _Plan:
    """What the walk found for one spec entry: its output's term and how its fields follow it."""

    def __init__(self, rule: str, out: Term, inp: Optional[Term] = None, group_width: int = 1, axis: int = 0) -> None:
        self.rule, self.out, self.inp, self.group_width = rule, out, inp, group_width
        self.axis = axis  # the output's channel axis (a reshape's: the entry of its shape it restates)
        self.pieces: tuple[Term, ...] = ()  # a split's, in order


class _Walk:
    def __init__(self, spec: Spec, width: float, divisor: int) -> None:
        self.spec, self.width, self.divisor = spec, width, divisor
        self.net = resolve(spec)
        self.tied: set[int] = set()  # the convs whose groups follow their input: their groups divide nothing
        self.ties = Ties(width, divisor)
        self.terms: dict[str, Term] = {"input": Fixed(spec.input.channels)}
        self.axes: dict[str, int] = {}  # each tensor's channel axis where it is not the first
        self.params: dict[str, _Plan] = {}  # learned tensors by name, until a join has tied them
        self.plans: dict[tuple, _Plan] = {}  # by (entry,), and (entry, j, ...) for body[j] of a wrap
        self._derived: dict[str, list[int]] = {}
        for b in self.net.blocks.values():
            self._visit(b)
        # every other count that divides a block's input divides every channel count, as in a zoo spec
        self.channel_divisor = math.lcm(divisor, *(v for b in _blocks_of(spec.blocks) if id(b) not in self.tied
                                                   for v in _dividers(b, "input")))
        self.ties.divisor = self.channel_divisor

    def _set(self, name: str, term: Term, axis: int) -> None:
        self.terms[name] = term
        if axis:
            self.axes[name] = axis

    def _visit(self, b: ResolvedBlock) -> None:
        ins = [self.terms[t] for t in b.inputs]
        axes = [self.axes.get(t, 0) for t in b.inputs]
        shapes = self._in_shapes(b)
        entry = b.path[1]
        if b.outputs:  # several outputs: each piece as the block derives it
            self._pieces(b, ins, shapes, axes)
            return
        if (entry,) in self.plans and b.stage is not None:  # a stage's later repeats: the same block
            self._set(b.name, self.plans[(entry,)].out, self.plans[(entry,)].axis)
            return
        written = self.spec.blocks[entry]  # as written: a stage's first repeat may be a copy with its stride
        original = written.block if isinstance(written, Stage) else written
        if b.kind == "wrap":
            self._set(b.name, *self._wrap(b, original, (ins[0], axes[0]), shapes[0], (entry,), _steady(b)))
            return
        plan = self._plan(b, ins, shapes, axes, _steady(b))
        if plan is not None:
            self.plans[(entry,)] = plan
            if plan.rule in TIED:
                self.tied.add(id(original))
            if plan.rule == "param":
                self.params[b.name] = plan
            self._set(b.name, plan.out, plan.axis)
        else:
            self._set(b.name, *self._follow(b, ins, shapes, axes))

    def _pieces(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int]) -> None:
        """The terms of a block's several outputs: a split's in proportion, others fixed (a block
        stating sizes) or as the block derives them."""
        pieces = self._split(b, ins[0], shapes[0], axes[0]) if b.kind == "split" else None
        if pieces is None and b.kind in SIZED:
            why = ""
            if b.kind == "split":
                why = (f" (its pieces {list(b.block.sizes)} have no common size that is a multiple of the "  # type: ignore[attr-defined]
                       f"divisor {self.divisor}, so they cannot scale in proportion)")
            self._keep(b, ins, shapes, axes, why)
        for i, piece in enumerate(b.outputs):
            name = f"{b.name}.{i}"
            if pieces is not None:
                self._set(name, pieces[i], axes[0])
            else:
                self.terms[name] = (Fixed(piece[0]) if b.kind in SIZED else self._derive(b, ins, shapes, axes, i)) \
                    if piece else Fixed(1)
        self.terms[b.name] = Fixed(b.out_shape[0]) if b.out_shape else Fixed(1)

    def _split(self, b: ResolvedBlock, term: Term, shape: tuple, axis: int) -> Optional[list[Term]]:
        """A split's pieces: the input's channels along another axis; along the channels, whole
        numbers of one free unit whose sum is the input (None: they cannot scale in proportion)."""
        sizes: list[int] = list(b.block.sizes)  # type: ignore[attr-defined]
        if sample_axis(b.block.dim, len(shape)) != axis:  # type: ignore[attr-defined]
            return [term] * len(sizes)
        unit = split_unit(sizes, self.divisor)
        if unit is None or isinstance(term, Fixed):
            return None
        count, ties = sum(sizes) // unit, self.ties
        one = ties.free(unit)
        if ties.is_open(term):  # the input is the units' sum, so it rounds as they do
            ties.unify(term, Ratio(one, count, 1), _label(b))
        else:  # the input is settled elsewhere: the unit is its share
            ties.require(term, count, _label(b))
            ties.unify(one, Ratio(term, 1, count), _label(b))
        pieces: list[Term] = [one if size == unit else Ratio(one, size // unit, 1) for size in sizes]
        self.plans[(b.path[1],)] = plan = _Plan("split", term)
        plan.pieces = tuple(pieces)
        return pieces

    def _wrap(self, b: ResolvedBlock, wrap: Block, held: tuple[Term, int], shape: tuple, key: tuple,
              steady: bool) -> tuple[Term, int]:
        """``wrap`` (as the spec writes it) resolved as ``b``: its body, block by block (a wrap in it
        likewise), as blocks of their own; then the join: an identity add unifies the body's output
        with the input, a dense concatenation sums them. ``key`` names the wrap among the plans:
        (entry,), then a body index per level; ``held``: the input's term and channel axis."""
        first, (start, axis) = shape, held
        term = start
        for j, inner in enumerate(wrap.body):  # type: ignore[attr-defined]  # channels only: the stride aside
            sub = ResolvedBlock(f"{b.name}.body.{j}", inner, b.path, [], b.stage, shape)
            try:
                sub.out_shape = walk(inner.layers(shape), shape).out
            except ShapeError as exc:
                raise ScalelabError(f"block {_label(b)}: body[{j}]: {exc}") from None
            here = j > 0 or steady  # body[0] reads the wrap's input
            if inner.kind == "wrap":
                term, axis = self._wrap(sub, inner, (term, axis), shape, (*key, j), here)
            else:
                plan = self._plan(sub, [term], [shape], [axis], here)
                if plan is not None:
                    self.plans[(*key, j)] = plan
                    if plan.rule in TIED:
                        self.tied.add(id(inner))
                term, axis = (plan.out, plan.axis) if plan is not None else self._follow(sub, [term], [shape], [axis])
            shape = sub.out_shape
        if wrap.join == "concat":  # type: ignore[attr-defined]
            term = Sum((start, term))
        elif tuple(b.out_shape) == tuple(first) and wrap.shortcut != "none":  # type: ignore[attr-defined]  # identity add
            self.ties.unify(term, start, _label(b))
        self.plans[key] = _Plan("wrap", term, axis=axis)
        return term, axis

    def _in_shapes(self, b: ResolvedBlock) -> list[tuple]:
        arity = type(b.block).arity
        if arity == 0:
            return []
        return [tuple(s) for s in b.in_shape] if arity is None else [tuple(b.in_shape)]  # type: ignore[arg-type]

    def _plan(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int],
              steady: bool) -> Optional[_Plan]:
        """The plan of a block whose own fields state its output channels, else None. ``steady``:
        its input has the same channels every time it runs (a stage's repeats may not)."""
        block, out, ties = b.block, b.out_shape, self.ties
        if b.kind == "param" and out:
            return _Plan("param", ties.free(out[0], passive=True))
        if b.kind == "reshape" and out and shapes[0]:
            axis = reshaped_axis(shapes[0], out, axes[0])
            return None if axis is None or isinstance(ins[0], Fixed) else _Plan("reshape", ins[0], axis=axis)
        if b.kind == "linear":
            return self._linear(b, shapes[0], axes[0])
        rule = conv_rule(block, shapes[0][0], self.divisor) if steady and shapes and shapes[0] else None
        if rule is not None and block.scale_width:
            cin, groups = shapes[0][0], block.groups  # type: ignore[attr-defined]
            if rule == "depthwise":
                return _Plan(rule, Ratio(ins[0], out[0] // cin, 1), ins[0])
            if rule == "width":
                ties.require(ins[0], cin // groups, _label(b))
                return _Plan(rule, Ratio(ins[0], out[0] // groups, cin // groups), ins[0], cin // groups)
            ties.require(ins[0], groups, _label(b))
        if "out" not in width_fields(type(block)) or getattr(block, "out", None) != (out[0] if out else None):
            return None
        if not block.scale_width:
            if rule in ("depthwise", "width"):
                ties.keep(ins[0], shapes[0][0], _label(b))
            return _Plan("fixed", Fixed(out[0]))
        free = ties.free(out[0])
        for k in _dividers(block, "out"):
            ties.require(free, k, _label(b))
        return _Plan("out", free)

    def _linear(self, b: ResolvedBlock, shape: tuple, axis: int) -> Optional[_Plan]:
        """A linear over the channels of a channels-last map or of tokens (its input's last axis):
        its output features are a free count on that axis, unless the network ends in them."""
        block = b.block
        flatten = len(shape) == 3 if block.flatten is None else block.flatten  # type: ignore[attr-defined]
        if len(shape) < 2 or flatten or axis != len(shape) - 1 or not block.scale_width \
                or block.bias_zeroed or b.name == self.net.output:  # type: ignore[attr-defined]
            return None
        return _Plan("out", self.ties.free(b.out_shape[-1]), axis=len(b.out_shape) - 1)

    def _follow(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int]) -> tuple[Term, int]:
        """The output's term and channel axis of a block that states no output channels of its own."""
        out, axis = b.out_shape, axes[0] if axes else 0
        if not out:
            return Fixed(1), 0
        if b.kind in SIZED:
            self._keep(b, ins, shapes, axes)
            return Fixed(out[0]), 0
        if b.kind == "permute":
            return ins[0], permuted_axis(b.block, axis, len(shapes[0]))
        if b.kind == "concat" or (b.kind == "cat" and set(axes) == {sample_axis(b.block.dim, len(out))}):  # type: ignore[attr-defined]
            return Sum(tuple(ins)), axis
        if b.kind in JOINS or b.kind == "cat":
            return self._join(b, ins, shapes, axes)
        if b.kind == "channel_split" and axis == 0 and not isinstance(ins[0], (Fixed, Derived)):
            parts = b.block.parts  # type: ignore[attr-defined]
            if shapes[0][0] % (parts * self.divisor) == 0:  # equal pieces of whole divisors stay so
                self.ties.require(ins[0], parts * self.divisor, _label(b))
                return Ratio(ins[0], 1, parts), 0
        if b.kind == "reduce" and len(shapes) == 1 and shapes[0]:
            kept = reduced_axis(b.block, axis, len(shapes[0]))
            return (ins[0], kept) if kept is not None else (self._derive(b, ins, shapes, axes), 0)
        if len(shapes) == 1 and shapes[0] and axis < len(out) and shapes[0][:axis + 1] == out[:axis + 1]:
            return ins[0], axis
        return self._derive(b, ins, shapes, axes), 0

    def _join(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int]) -> tuple[Term, int]:
        """An element-wise join: inputs whose channels line up (broadcast from the right) on one
        axis of the output, with its size, are one count; a broadcast one (1 channel) joins nothing;
        a learned tensor not yet joined takes the axis that lines up; any other input must keep its size."""
        out = b.out_shape
        lined = [a + len(out) - len(s) if s else -1 for a, s in zip(axes, shapes)]
        fits = [i for i, s in enumerate(shapes) if s and s[axes[i]] == out[lined[i]]]
        if not fits:
            return Fixed(out[0]), 0
        axis = next((lined[i] for i in fits if len(shapes[i]) == len(out)), lined[fits[0]])
        joined = [i for i in fits if lined[i] == axis]
        for i, (t, s) in enumerate(zip(ins, shapes)):
            here = axis - len(out) + len(s)
            name = b.inputs[i]
            if i not in joined and name in self.params and 0 <= here < len(s) and s[here] == out[axis] > 1:
                plan = self.params[name]  # a layer scale lined up on another of its axes: it follows that one
                plan.out, plan.axis = self.ties.free(s[here], passive=True), here
                self._set(name, plan.out, here)
                ins[i] = plan.out
                joined.append(i)
            elif i not in joined and s and s[axes[i]] > 1:
                self.ties.keep(t, s[axes[i]], _label(b))
        for i in joined:
            self.params.pop(b.inputs[i], None)  # tied now: its axis is settled
        for i in joined[1:]:
            self.ties.unify(ins[joined[0]], ins[i], _label(b))
        return ins[joined[0]], axis

    def _keep(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int], why: str = "") -> None:
        for t, s, a in zip(ins, shapes, axes):
            if s:
                self.ties.keep(t, s[a], _label(b), why)

    def _derive(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int],
                piece: int = -1) -> Term:
        def compute() -> int:
            if b.name not in self._derived:
                self._derived[b.name] = self._run(b, ins, shapes, axes)
            return self._derived[b.name][piece]
        return Derived(compute, _label(b))

    def _run(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], axes: list[int]) -> list[int]:
        """Run the scaled block on its inputs' scaled shapes: each piece's channels, then its output's."""
        new = [tuple(self.ties.value(t) if k == a else d for k, d in enumerate(s)) if s else s
               for t, s, a in zip(ins, shapes, axes)]
        block = scale_block(b.block, self.width, self.channel_divisor)
        arg: Any = new if type(block).arity is None else new[0]
        try:
            layers = block.layers(arg)
            outs = [walk(layers, arg).out]
            if type(block).several_outputs:
                outs += list(definition(layers).pieces(arg))  # type: ignore[union-attr]
        except ShapeError as exc:
            raise ScalelabError(f"block '{b.name}' ({b.kind}) at width x{self.width:g}: {exc}") from None
        return [o[0] if o else 1 for o in outs[1:]] + [outs[0][0] if outs[0] else 1]

    def scaled(self, key: tuple, block: Block) -> Block:
        """The block of entry ``key[0]`` (a stage's: the block it repeats; further indices: body[j] of
        a wrap) with its channels scaled."""
        plan = self.plans.get(key)
        if plan is not None and plan.rule == "wrap":
            body = [dump(self.scaled((*key, j), inner)) for j, inner in enumerate(block.body)]  # type: ignore[attr-defined]
            return _with(block, {"body": body}, self.width)
        if plan is None or plan.rule == "fixed":
            return scale_block(block, self.width, self.channel_divisor)
        value = self.ties.value(plan.out)
        if plan.rule == "param":
            return _with(block, {"shape": _param_shape(block, value, plan.axis)}, self.width)
        if plan.rule == "reshape":
            return _with(block, {"shape": restated_shape(block, plan.axis, value)}, self.width)
        if plan.rule == "split":
            return _with(block, {"sizes": [self.ties.value(p) for p in plan.pieces]}, self.width)
        if plan.rule == "out":
            return _with(scale_block(block, self.width, self.channel_divisor), {"out": value}, self.width)
        inp = self.ties.value(plan.inp)  # type: ignore[arg-type]
        groups = inp if plan.rule == "depthwise" else inp // plan.group_width
        return _with(block, {"out": value, "groups": groups}, self.width)


def _steady(b: ResolvedBlock) -> bool:
    """Whether the block's input has the same channels every time it runs: a block of its own, or a
    stage's block that keeps its channels (a stage's first repeat takes the channel change)."""
    shape = b.in_shape
    return b.stage is None or (type(b.block).arity == 1 and bool(shape) and bool(b.out_shape)
                               and shape[0] == b.out_shape[0])


def _label(b: ResolvedBlock) -> str:
    return f"'{b.name}' ({b.kind})"


def _param_shape(block: Block, channels: int, axis: int) -> list[int]:
    """A learned tensor's shape with its per-sample channel axis ``axis`` set to ``channels``."""
    shape = list(block.shape)  # type: ignore[attr-defined]
    shape[param_axis(block, axis)] = channels
    return shape


def _with(block: Block, updates: dict, width: float) -> Block:
    data = dump(block)
    if all(data.get(k, getattr(block, k)) == v for k, v in updates.items()):
        return block
    data.update(updates)
    try:
        return type(block).model_validate(data)
    except ValidationError as exc:
        path, message = describe_error(exc.errors(include_url=False)[0], data)
        raise ScalelabError(f"block '{block.name or block.kind}' at width x{width:g}: {yaml_path(path)}: {message}") from None


def scaled_entries(spec: Spec, width: float, divisor: int) -> list[tuple[Any, Block]]:
    """Each spec entry with its block scaled: (the entry, the block it now holds or repeats)."""
    if width == 1.0:
        return [(e, e.block if isinstance(e, Stage) else e) for e in spec.blocks]
    walked = _Walk(spec, width, divisor)
    walked.ties.check()
    return [(e, walked.scaled((i,), e.block if isinstance(e, Stage) else e)) for i, e in enumerate(spec.blocks)]
