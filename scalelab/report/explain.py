"""`scalelab explain`: the cost arithmetic of a spec written out as the course notes do it by hand.

For every conv and linear layer: output positions x filters x filter size, e.g.
``28 × 28 × 32 × (5 × 5 × 192) = 120,422,400``, what each factor is, and the parameters the same
way (f × f × n_c × filters + biases). Block and spec totals follow. A depthwise conv followed by a
pointwise 1x1 conv is set against the dense conv it replaces, with the ratio in the notes' form
1/n_c' + 1/f² (Howard et al. 2017, §3.1).

The figures come from the layers' cost faces (``scalelab.analysis.trace``); this module only writes them out
and checks that its factors multiply to the walked cost.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Optional

from scalelab.analysis.trace import traced_layers
from scalelab.blocks import layers as L
from scalelab.blocks.layers.attention import Sizes as AttentionSizes
from scalelab.blocks.layers.matmul import Operands as MatmulOperands
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.report.units import human_shape

TIMES = " × "
FORMULA = ("MACs of a layer = output positions × filters × filter size, i.e. H' × W' × n_c' × (f × f × n_c / groups) "
           "for a conv, inputs × outputs for a linear layer (bias excluded); params = f × f × n_c / groups × filters "
           "(+ one bias per filter), inputs × outputs (+ one bias per output), 2 per channel for batchnorm.")


def n(value: int) -> str:
    return f"{value:,}"


def product(*factors: int) -> str:
    return TIMES.join(str(f) for f in factors)


def sum_text(terms: list[int], limit: int = 8) -> str:
    """'a + b = c' for a few nonzero terms; the total alone otherwise."""
    nonzero = [t for t in terms if t]
    total = sum(terms)
    if 1 < len(nonzero) <= limit:
        return " + ".join(n(t) for t in nonzero) + f" = {n(total)}"
    return n(total)


@dataclass(frozen=True)
class LayerLine:
    """One layer with MACs or parameters, its arithmetic in words."""

    layer: str
    macs: int
    macs_formula: Optional[str]
    factors: Optional[str]
    params: int
    params_formula: Optional[str]


@dataclass(frozen=True)
class SeparablePair:
    """A depthwise conv and the pointwise conv after it, against the dense conv they replace."""

    depthwise_macs: int
    pointwise_macs: int
    dense_macs: int
    dense_formula: str
    filters: int  # n_c'
    kernel_area: int  # f²
    kernel: str

    @property
    def ratio(self) -> Fraction:
        return Fraction(self.depthwise_macs + self.pointwise_macs, self.dense_macs)


@dataclass
class BlockLines:
    name: str
    kind: str
    in_shape: str
    out_shape: str
    training_only: bool
    layers: list[LayerLine] = field(default_factory=list)
    macs: int = 0
    params: int = 0
    other_ops: int = 0
    pairs: list[SeparablePair] = field(default_factory=list)


@dataclass(frozen=True)
class Explanation:
    spec: str
    input_shape: str
    focus: Optional[str]
    blocks: list[BlockLines]
    total_macs: list[int]  # per inference block shown, for the 'a + b = c' line
    total_params: list[int]
    total_other_ops: int


def _conv_line(conv: L.Conv, out: tuple) -> LayerLine:
    oc, *sizes = out  # a conv over 1, 2 or 3 spatial axes
    per_group = conv.in_ch // conv.groups
    kernel = "x".join(map(str, conv.kernel))
    group_note = f" (groups {conv.groups}: each filter sees {per_group} of the {conv.in_ch} channels)" if conv.groups > 1 else ""
    bias = f" + {oc}" if conv.bias else ""
    return LayerLine(
        layer=f"conv {kernel}, {conv.in_ch} -> {oc}" + (f", stride {conv.stride[0]}" if max(conv.stride) > 1 else "")
        + (f", groups {conv.groups}" if conv.groups > 1 else ""),
        macs=0, params=0,  # filled from the walked cost by the caller
        macs_formula=f"{product(*sizes, oc)} × ({product(*conv.kernel, per_group)})",
        factors=f"{' × '.join(map(str, sizes))} output positions, {oc} filters, each "
                f"{' × '.join(map(str, conv.kernel))} × {per_group} (f × f × n_c"
                + (" / groups" if conv.groups > 1 else "") + f"){group_note}",
        params_formula=f"{product(*conv.kernel, per_group, oc)}{bias}",
    )


def _rows(out: tuple) -> int:
    """The rows a linear layer maps (every axis but the last: 1 for a vector)."""
    return math.prod(out[:-1])


def _factors(layer, out: tuple) -> tuple[int, ...]:
    """The factors the MACs line multiplies, which must give the walked cost."""
    if isinstance(layer, L.Conv):
        return (*out[1:], out[0], *layer.kernel, layer.in_ch // layer.groups)
    rows = (_rows(out),) if _rows(out) > 1 else ()
    return (*rows, layer.in_features, layer.out_features)


def _shortcut_layers(node, inside: bool = False) -> set[int]:
    """The primitives (by identity) on the shortcut branch of a residual node of ``node``'s tree:
    a projection's conv and norm read like the body's, so their lines say which branch they are."""
    if not isinstance(node, L.Wiring):
        return {id(node)} if inside else set()
    found: set[int] = set()
    assert dataclasses.is_dataclass(node)  # every wiring node is one
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        short = inside or (isinstance(node, L.Residual) and f.name == "shortcut")
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, (L.Wiring, L.Primitive)):
                found |= _shortcut_layers(child, short)
    return found


def _line(traced, shortcut: bool = False) -> Optional[LayerLine]:
    layer, cost = traced.layer, traced.cost
    if isinstance(layer, (L.Conv, L.Linear)) and math.prod(_factors(layer, traced.out_shape)) != cost.macs:
        raise AssertionError(f"explain's factors for {layer} disagree with the walked cost {cost.macs}")
    if isinstance(layer, L.Conv):
        line = _conv_line(layer, traced.out_shape)
    elif isinstance(layer, L.Linear):
        bias = f" + {layer.out_features}" if layer.bias else ""
        rows = _rows(traced.out_shape)
        on_rows = f" on {rows} rows" if rows > 1 else ""
        line = LayerLine(f"linear {layer.in_features} -> {layer.out_features}{on_rows}", 0,
                         product(*_factors(layer, traced.out_shape)),
                         (f"{rows} rows × " if rows > 1 else "") + f"{layer.in_features} inputs × {layer.out_features} outputs",
                         0, f"{product(layer.in_features, layer.out_features)}{bias}")
    elif isinstance(layer, L.BatchNorm):
        line = LayerLine(f"batchnorm {layer.channels}", 0, None, None, 0,
                         f"2 × {layer.channels}")
    elif isinstance(layer, L.Matmul):
        line = _matmul_line(traced.in_shape)
    elif isinstance(layer, L.Attention):
        line = _attention_line(layer, traced.in_shape)
    elif isinstance(layer, L.Param):
        shape = L.fmt_shape(layer.shape) or "scalar"
        if not layer.trainable:
            return LayerLine(f"param {shape} (a buffer: no parameters)", 0, None, None, 0, None)
        line = LayerLine(f"param {shape} (a learned tensor)", 0, None, None, 0, product(*layer.shape) or "1")
    else:
        return None
    label = f"{line.layer} (projection shortcut)" if shortcut else line.layer
    return LayerLine(label, cost.macs, line.macs_formula and f"{line.macs_formula} = {n(cost.macs)}",
                     line.factors, cost.params,
                     line.params_formula and f"{line.params_formula} = {n(cost.params)}" + _param_note(layer))


def _matmul_line(shapes: list) -> LayerLine:
    o = MatmulOperands.of(shapes)
    lead = (math.prod(o.lead),) if o.lead else ()
    where = f"{math.prod(o.lead)} products of " if o.lead else ""
    return LayerLine(f"matmul {' @ '.join(L.fmt_shape(x) for x in shapes)}", 0, product(*lead, o.rows, o.inner, o.cols),
                     f"{where}{o.rows} rows × {o.inner} inner × {o.cols} columns", 0, None)


def _attention_line(layer, shapes: list) -> LayerLine:
    z = AttentionSizes.of(shapes)
    causal = ", causal" if layer.causal else ""
    return LayerLine(f"attention, {z.heads} heads of {z.L} queries over {z.S} keys{causal}", 0,
                     f"{product(z.heads, z.L, z.S)} × ({z.E} + {z.Ev})",
                     f"{z.heads} heads × {z.L} queries × {z.S} keys, each a q·k product of width {z.E} and a "
                     f"weighted sum of values of width {z.Ev} (the math kernel's two matrix products)", 0, None)


def _param_note(layer) -> str:
    if isinstance(layer, L.Conv):
        return " (weights + one bias per filter)" if layer.bias else " (weights; no bias)"
    if isinstance(layer, L.Linear):
        return " (weights + one bias per output)" if layer.bias else " (weights; no bias)"
    return " (a scale and a shift per channel)" if isinstance(layer, L.BatchNorm) else ""


def _is_depthwise(layer) -> bool:
    return isinstance(layer, L.Conv) and layer.groups > 1 and layer.groups == layer.in_ch == layer.out_ch


def _is_pointwise(layer) -> bool:
    return isinstance(layer, L.Conv) and layer.kernel == (1, 1) and layer.groups == 1 and layer.stride == (1, 1)


def _pair(dw, pw) -> SeparablePair:
    conv, (_, oh, ow) = dw.layer, dw.out_shape
    filters, (kh, kw) = pw.layer.out_ch, conv.kernel
    dense = oh * ow * filters * kh * kw * conv.in_ch
    return SeparablePair(dw.cost.macs, pw.cost.macs, dense,
                         f"{product(oh, ow, filters)} × ({product(kh, kw, conv.in_ch)}) = {n(dense)}",
                         filters, kh * kw, f"{kh}x{kw}")


def _find_pairs(network, traces: dict) -> dict[str, list[SeparablePair]]:
    """Depthwise convs followed (in the same block or the next) by a pointwise conv on their output."""
    convs = [(name, t) for name, ts in traces.items() for t in ts if isinstance(t.layer, L.Conv)]
    pairs: dict[str, list[SeparablePair]] = {}
    for i, (name, dw) in enumerate(convs):
        if not _is_depthwise(dw.layer):
            continue
        after = next(((nm, t) for nm, t in convs[i + 1:] if t.in_shape[1:] == dw.out_shape[1:]), None)
        if after and _is_pointwise(after[1].layer) and after[1].in_shape == dw.out_shape:
            pairs.setdefault(after[0], []).append(_pair(dw, after[1]))
    return pairs


def _selected(network, focus: Optional[str]) -> list:
    blocks = list(network.blocks.values())
    if focus is None:
        return blocks
    chosen = [b for b in blocks if b.name == focus or b.stage == focus]
    if not chosen:
        names = [b.name for b in blocks] + sorted({b.stage for b in blocks if b.stage})
        raise ScalelabError(f"--block: no block or stage named '{focus}' in {network.spec.name}{did_you_mean(focus, names)}")
    return chosen


def explain(network, focus: Optional[str] = None) -> Explanation:
    """The arithmetic of every block of ``network`` (or of the block or stage named ``focus``)."""
    traces = {b.name: traced_layers(b.layers, b.in_shape) for b in network.blocks.values()}
    pairs = _find_pairs(network, traces)
    shown = []
    for b in _selected(network, focus):
        fmt_in = " + ".join(L.fmt_shape(s) for s in b.in_shape) if isinstance(b.in_shape, list) else L.fmt_shape(b.in_shape)
        fmt_out = human_shape(b.outputs) if b.outputs else L.fmt_shape(b.out_shape)  # several: '8x8*9'
        shortcut = _shortcut_layers(b.layers)
        lines = [line for t in traces[b.name] if (line := _line(t, id(t.layer) in shortcut)) is not None]
        shown.append(BlockLines(b.name, b.kind, fmt_in or "no input", fmt_out, b.training_only, lines,
                                sum(c.macs for c in b.costs), sum(c.params for c in b.costs),
                                sum(c.ops for c in b.costs), pairs.get(b.name, [])))
    inference = [b for b in shown if not b.training_only]
    return Explanation(network.spec.name, L.fmt_shape(network.input_shape), focus, shown,
                       [b.macs for b in inference], [b.params for b in inference],
                       sum(b.other_ops for b in inference))


# --------------------------------------------------------------------------------------------------
# Rendering


def _pair_lines(p: SeparablePair) -> list[str]:
    return [
        f"depthwise-separable pair against the dense {p.kernel} conv it replaces:",
        f"  dense      {p.dense_formula}",
        f"  separable  {n(p.depthwise_macs)} + {n(p.pointwise_macs)} = {n(p.depthwise_macs + p.pointwise_macs)}",
        f"  ratio      {n(p.depthwise_macs + p.pointwise_macs)} / {n(p.dense_macs)} = {float(p.ratio):.3f}"
        f" = 1/n_c' + 1/f² = 1/{p.filters} + 1/{p.kernel_area}",
    ]


def _block_lines(b: BlockLines) -> list[str]:
    out = []
    for line in b.layers:
        out.append(line.layer)
        if line.macs_formula:
            out += [f"  MACs    {line.macs_formula}", f"          {line.factors}"]
        if line.params_formula:
            out.append(f"  params  {line.params_formula}")
    for p in b.pairs:
        out += _pair_lines(p)
    macs = sum_text([ln.macs for ln in b.layers])
    params = sum_text([ln.params for ln in b.layers])
    out.append(f"block total: MACs {macs}; params {params}; other ops {n(b.other_ops)}")
    return out


def _total_lines(e: Explanation) -> list[str]:
    what = "total of the shown blocks" if e.focus else "spec total (inference)"
    return [f"{what}: MACs {sum_text(e.total_macs)}", f"{' ' * len(what)}  params {sum_text(e.total_params)}",
            f"{' ' * len(what)}  other ops {n(e.total_other_ops)} (norms, activations, pooling, element-wise, reductions, softmax, copies: counted apart)"]


def _title(b: BlockLines) -> str:
    aux = " [training-only: excluded from the inference total]" if b.training_only else ""
    return f"block {b.name} ({b.kind}), {b.in_shape} -> {b.out_shape}{aux}"


def to_text(e: Explanation) -> str:
    lines = [f"scalelab explain {e.spec}: input {e.input_shape} (channels x height x width), one image", FORMULA, ""]
    for b in e.blocks:
        lines.append(_title(b))
        lines += ["  " + ln for ln in _block_lines(b)]
        lines.append("")
    lines += _total_lines(e)
    return "\n".join(lines) + "\n"


def to_markdown(e: Explanation) -> str:
    lines = [f"# scalelab explain {e.spec}", "", f"Input {e.input_shape} (channels x height x width), one image. {FORMULA}", ""]
    for b in e.blocks:
        lines += [f"## {_title(b)}", "", "```text", *_block_lines(b), "```", ""]
    lines += ["## Total", "", "```text", *_total_lines(e), "```"]
    return "\n".join(lines) + "\n"


def to_json(e: Explanation) -> str:
    data = asdict(e)
    for block, b in zip(data["blocks"], e.blocks):
        for pair, p in zip(block["pairs"], b.pairs):
            pair["ratio"] = float(p.ratio)
            pair["ratio_form"] = f"1/{p.filters} + 1/{p.kernel_area}"
    data["total_macs"], data["total_params"] = sum(e.total_macs), sum(e.total_params)
    data["formula"] = FORMULA
    return json.dumps(data, indent=2) + "\n"


def render(e: Explanation, fmt: str) -> str:
    return {"text": to_text, "markdown": to_markdown, "json": to_json}[fmt](e)
