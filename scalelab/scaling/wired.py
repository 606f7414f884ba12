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
- a block stating fixed sizes (reshape, expand, split, slice, select, pad, roll, opaque) refuses,
  naming itself, when its input's channels would change.

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

    def __init__(self, rule: str, out: Term, inp: Optional[Term] = None, group_width: int = 1) -> None:
        self.rule, self.out, self.inp, self.group_width = rule, out, inp, group_width


class _Walk:
    def __init__(self, spec: Spec, width: float, divisor: int) -> None:
        self.spec, self.width, self.divisor = spec, width, divisor
        self.net = resolve(spec)
        self.tied: set[int] = set()  # the convs whose groups follow their input: their groups divide nothing
        self.ties = Ties(width, divisor)
        self.terms: dict[str, Term] = {"input": Fixed(spec.input.channels)}
        self.plans: dict[tuple, _Plan] = {}  # by (entry,), and (entry, j, ...) for body[j] of a wrap
        self._derived: dict[str, list[int]] = {}
        for b in self.net.blocks.values():
            self._visit(b)
        # every other count that divides a block's input divides every channel count, as in a zoo spec
        self.channel_divisor = math.lcm(divisor, *(v for b in _blocks_of(spec.blocks) if id(b) not in self.tied
                                                   for v in _dividers(b, "input")))
        self.ties.divisor = self.channel_divisor

    def _visit(self, b: ResolvedBlock) -> None:
        ins = [self.terms[t] for t in b.inputs]
        shapes = self._in_shapes(b)
        entry = b.path[1]
        if b.outputs:  # several outputs: each piece as the block derives it
            if b.kind in SIZED:
                self._keep(b, ins, shapes)
            for i, piece in enumerate(b.outputs):
                self.terms[f"{b.name}.{i}"] = (Fixed(piece[0]) if b.kind in SIZED else self._derive(b, ins, shapes, i)) \
                    if piece else Fixed(1)
            self.terms[b.name] = Fixed(b.out_shape[0]) if b.out_shape else Fixed(1)
            return
        if (entry,) in self.plans and b.stage is not None:  # a stage's later repeats: the same block
            self.terms[b.name] = self.plans[(entry,)].out
            return
        written = self.spec.blocks[entry]  # as written: a stage's first repeat may be a copy with its stride
        original = written.block if isinstance(written, Stage) else written
        if b.kind == "wrap":
            self.terms[b.name] = self._wrap(b, original, ins[0], shapes[0], (entry,), _steady(b))
            return
        plan = self._plan(b, ins, shapes, _steady(b))
        if plan is not None:
            self.plans[(entry,)] = plan
            if plan.rule in TIED:
                self.tied.add(id(original))
            self.terms[b.name] = plan.out
        else:
            self.terms[b.name] = self._follow(b, ins, shapes)

    def _wrap(self, b: ResolvedBlock, wrap: Block, term: Term, shape: tuple, key: tuple, steady: bool) -> Term:
        """``wrap`` (as the spec writes it) resolved as ``b``: its body, block by block (a wrap in it
        likewise), as blocks of their own; then the join: an identity add unifies the body's output
        with the input, a dense concatenation sums them. ``key`` names the wrap among the plans:
        (entry,), then a body index per level."""
        first, start = shape, term
        for j, inner in enumerate(wrap.body):  # type: ignore[attr-defined]  # channels only: the stride aside
            sub = ResolvedBlock(f"{b.name}.body.{j}", inner, b.path, [], b.stage, shape)
            try:
                sub.out_shape = walk(inner.layers(shape), shape).out
            except ShapeError as exc:
                raise ScalelabError(f"block {_label(b)}: body[{j}]: {exc}") from None
            here = j > 0 or steady  # body[0] reads the wrap's input
            if inner.kind == "wrap":
                term = self._wrap(sub, inner, term, shape, (*key, j), here)
            else:
                plan = self._plan(sub, [term], [shape], here)
                if plan is not None:
                    self.plans[(*key, j)] = plan
                    if plan.rule in TIED:
                        self.tied.add(id(inner))
                term = plan.out if plan is not None else self._follow(sub, [term], [shape])
            shape = sub.out_shape
        if wrap.join == "concat":  # type: ignore[attr-defined]
            term = Sum((start, term))
        elif tuple(b.out_shape) == tuple(first) and wrap.shortcut != "none":  # type: ignore[attr-defined]  # identity add
            self.ties.unify(term, start, _label(b))
        self.plans[key] = _Plan("wrap", term)
        return term

    def _in_shapes(self, b: ResolvedBlock) -> list[tuple]:
        arity = type(b.block).arity
        if arity == 0:
            return []
        return [tuple(s) for s in b.in_shape] if arity is None else [tuple(b.in_shape)]  # type: ignore[arg-type]

    def _plan(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], steady: bool) -> Optional[_Plan]:
        """The plan of a block whose own fields state its output channels, else None. ``steady``:
        its input has the same channels every time it runs (a stage's repeats may not)."""
        block, out, ties = b.block, b.out_shape, self.ties
        if b.kind == "param" and out:
            return _Plan("param", ties.free(out[0], passive=True))
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

    def _follow(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple]) -> Term:
        """The output's term of a block that states no output channels of its own."""
        out = b.out_shape
        if not out:
            return Fixed(1)
        if b.kind in SIZED:
            self._keep(b, ins, shapes)
            return Fixed(out[0])
        dim = getattr(b.block, "dim", None)
        if b.kind == "concat" or (b.kind == "cat" and dim in (0, -len(out))):
            return Sum(tuple(ins))
        if b.kind in JOINS or b.kind == "cat":
            return self._join(b, ins, shapes)
        if len(shapes) == 1 and shapes[0] and shapes[0][0] == out[0]:
            return ins[0]
        return self._derive(b, ins, shapes)

    def _join(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple]) -> Term:
        """An element-wise join: inputs of the output's rank and channels are one count; a broadcast
        one (1 channel) joins nothing; one of a lower rank lines up elsewhere and must keep its size."""
        out = b.out_shape
        joined = [t for t, s in zip(ins, shapes) if len(s) == len(out) and s[0] == out[0]]
        for t, s in zip(ins, shapes):
            if s and len(s) < len(out) and s[0] > 1:
                self.ties.keep(t, s[0], _label(b))
        for t in joined[1:]:
            self.ties.unify(joined[0], t, _label(b))
        return joined[0] if joined else Fixed(out[0])

    def _keep(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple]) -> None:
        for t, s in zip(ins, shapes):
            if s:
                self.ties.keep(t, s[0], _label(b))

    def _derive(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple], piece: int = -1) -> Term:
        def compute() -> int:
            if b.name not in self._derived:
                self._derived[b.name] = self._run(b, ins, shapes)
            return self._derived[b.name][piece]
        return Derived(compute, _label(b))

    def _run(self, b: ResolvedBlock, ins: list[Term], shapes: list[tuple]) -> list[int]:
        """Run the scaled block on its inputs' scaled shapes: each piece's channels, then its output's."""
        new = [(self.ties.value(t), *s[1:]) if s else s for t, s in zip(ins, shapes)]
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
            return _with(block, {"shape": _param_shape(block, value)}, self.width)
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


def _param_shape(block: Block, channels: int) -> list[int]:
    """A learned tensor's shape with its first per-sample axis (the channels) set to ``channels``."""
    shape, batch = list(block.shape), block.batch_axis  # type: ignore[attr-defined]
    axis = 1 if batch == 0 else 0
    shape[axis] = channels
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
