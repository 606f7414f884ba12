"""Operands computed from parameters and constants that a source block recomputes: a relative position
bias gathered from a table by Swin's relative position index (``position_bias``), the mask of
shifted windows (``window_mask``), and Swin V2's continuous position bias (an MLP over constant
coordinates: ``continuous_position_bias``) and logit scale (``logit_scale``). The operand's value is computed from the source's own tensors and
compared with the block's, element for element: a block is stated only where it gives the very
tensor the module adds, so any other index or mask stays refused by name. A bias the module gathers on
its first eval pass only and keeps (EfficientFormer's and LeViT's ``attention_bias_cache``) is
``cached``: its second pass reads the kept tensor, not the table (``Captured.read_once``)."""

from __future__ import annotations

import math
from typing import Any

from scalelab.importer.capture import Captured
from scalelab.importer.table import Unsupported, needs_kind

COMPUTED = "an operand is computed from parameters (weight-side computation)"


def reads(cap: Captured, node) -> list:
    """The state placeholders (parameters, buffers, constants) a weight-side node derives from."""
    seen, order, todo = set(), [], [node]
    while todo:
        n = todo.pop(0)
        if n in seen:
            continue
        seen.add(n)
        if n in cap.state:
            order.append(n)
        else:
            todo.extend(n.all_input_nodes)
    return order


def evaluate(cap: Captured, node, given: "dict | None" = None):
    """The value of a weight-side node, computed op by op from the source's tensors (or, for the
    placeholders in ``given``, from the tensors given)."""
    import torch  # the importer runs torch
    from torch.fx.node import map_arg

    memo: dict = dict(given or {})

    def value(n):
        if n not in memo:
            if n in cap.state:
                memo[n] = cap.values[cap.state[n]]
            elif n.op == "call_function":
                memo[n] = n.target(*map_arg(n.args, value), **map_arg(n.kwargs, value))
            else:
                raise Unsupported(COMPUTED)
        return memo[n]

    with torch.no_grad():
        return value(node)


def _factors(n: int) -> list[tuple[int, int]]:
    """(a, b) with a * b = n, the squarest first."""
    pairs = [(a, n // a) for a in range(1, n + 1) if n % a == 0]
    return sorted(pairs, key=lambda p: abs(p[0] - p[1]))


def _bias(table, value) -> "dict | None":
    """A position_bias whose gather of ``table`` is ``value``: signed offsets from an (entries, heads)
    table, or absolute ones from a (heads, entries) table."""
    from scalelab.blocks.layers.positions_torch import gathered_bias  # torch: the module side, only where a gather is matched

    core = [d for d in value.shape if d != 1]
    if table.dim() != 2 or len(core) != 3 or core[1] != core[2]:
        return None
    heads, n = core[0], core[1]
    for offsets, (entries, width) in (("signed", table.shape), ("absolute", table.shape[::-1])):
        for window in _factors(n) if width == heads else ():
            size = (2 * window[0] - 1) * (2 * window[1] - 1) if offsets == "signed" else n
            if size == entries and gathered_bias(table, window, offsets).reshape(value.shape).equal(value):
                return {"kind": "position_bias", "window": list(window), "heads": heads,
                        **({"offsets": offsets} if offsets != "signed" else {})}
    return None


def _mask(value, cached: bool) -> "dict | None":
    from scalelab.blocks.layers.positions_torch import window_mask  # torch: the module side, only where a mask is matched

    core = [d for d in value.shape if d != 1]
    fills = {float(v) for v in value.unique()} - {0.0}
    if len(core) != 3 or core[1] != core[2] or len(fills) != 1:
        return None
    fill = fills.pop()
    for window in _factors(core[1]):
        for grid in _factors(core[0]):
            halves = [(window[0] // 2, window[1] // 2)]
            for shift in halves + [(r, c) for r in range(1, window[0]) for c in range(1, window[1])]:
                if 0 in shift:
                    continue
                if window_mask(window, grid, shift, fill).reshape(value.shape).equal(value):
                    return {"kind": "window_mask", "window": list(window), "grid": list(grid), "shift": list(shift),
                            **({"fill": fill} if fill != -100.0 else {}), **({"cached": True} if cached else {})}
    return None


def recomputed(cap: Captured, operand, cached: bool) -> "tuple[dict, list[str], list[Any]] | None":
    """The source block's fields for a computed operand (shape and batch axis still to add), the
    source state it holds and every placeholder it reads; None where no block gives its value."""
    nodes = reads(cap, operand)
    learned = [cap.state[n] for n in nodes if cap.state[n] in cap.trainable]
    if math.prod(operand.meta["val"].shape) > 2 ** 24:
        return None
    value = evaluate(cap, operand)
    tensors = [cap.values[name] for name in learned]
    if len(learned) == 1:
        fields = _bias(tensors[0], value) or _logit_scale(operand, tensors[0], value)
        if fields is not None and fields["kind"] == "position_bias" and cap.read_once(learned[0]):
            fields["cached"] = True  # kept after the first eval pass: no gather on the passes after it
    elif learned:
        fields, learned = _continuous(dict(zip(learned, tensors)), value)
    else:
        fields = _mask(value, cached)
    if fields is None:
        return None
    needs_kind(fields["kind"])
    return fields, learned, nodes


def _logit_scale(operand, scale, value) -> "dict | None":
    """A logit_scale whose exp(clamp(scale, max)) is ``value``: the operand an exp of a clamp from above."""
    import torch  # the importer runs torch

    clamp = operand.args[0] if getattr(operand.target, "__name__", "") == "exp.default" else None
    if clamp is None or getattr(clamp.target, "__name__", "") != "clamp.default" or len(clamp.args) != 3 \
            or clamp.args[1] is not None or not isinstance(clamp.args[2], (int, float)):
        return None
    most = float(clamp.args[2])
    if value.shape != scale.shape or not torch.clamp(scale, max=most).exp().equal(value):
        return None
    return {"kind": "logit_scale", "max": most}


def _continuous(learned: dict, value) -> "tuple[dict | None, list[str]]":
    """A continuous_position_bias whose MLP, read from the three learned tensors (Linear(2, hidden)'s
    weight and bias, Linear(hidden, heads)'s weight), gives ``value``; with them in module order."""
    import torch  # the importer runs torch

    from scalelab.blocks.layers.cosine_attention_torch import ContinuousPositionBias  # torch: only where one is matched

    core = [d for d in value.shape if d != 1]
    firsts = [(n, t) for n, t in learned.items() if t.dim() == 2 and t.shape[1] == 2]
    vectors = [(n, t) for n, t in learned.items() if t.dim() == 1]
    if len(learned) != 3 or len(core) != 3 or core[1] != core[2] or len(firsts) != 1 or len(vectors) != 1:
        return None, []
    (w0, first), (b0, bias) = firsts[0], vectors[0]
    hidden, heads = first.shape[0], core[0]
    rest = [(n, t) for n, t in learned.items() if n not in (w0, b0) and t.shape == (heads, hidden)]
    if len(rest) != 1 or bias.shape != (hidden,):
        return None, []
    order = [w0, b0, rest[0][0]]
    for window in _factors(core[1]):
        if min(window) < 2:
            continue
        module = ContinuousPositionBias(window, heads, hidden, tuple(value.shape), None)
        module.load_state_dict(dict(zip(module.state_dict(), (learned[n] for n in order))))
        with torch.no_grad():
            if module(torch.zeros(1))[0].equal(value):
                return {"kind": "continuous_position_bias", "window": list(window), "heads": heads,
                        "hidden": hidden}, order
    return None, []
