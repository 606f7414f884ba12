"""Patterns of several traced operations that one block states exactly."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from scalelab.blocks import KINDS
from scalelab.importer.table import activation_of, op_key, op_label, table
from scalelab.importer.trace import Traced, scope_of, shape_of

if TYPE_CHECKING:  # pragma: no cover
    from torch import fx


def _handler(node, traced: Traced):
    return table().get(op_key(node, traced.module))


# --------------------------------------------------------------------------------------------------
# Squeeze-excite: x * gate(conv(act(conv(pool(x))))), Hu et al. 2018


def _se_chain(gate, x, traced: Traced) -> "list | None":
    """The nodes pool, conv, act, conv, gate if ``gate`` computes squeeze-excite weights of ``x``."""
    from torch import nn

    chain = [gate]
    for _ in range(4):
        if not chain[-1].args or not hasattr(chain[-1].args[0], "op"):
            return None
        chain.append(chain[-1].args[0])
    gate_act, conv2, act, conv1, pool = chain
    if pool.args[0] is not x or any(len(n.users) != 1 for n in chain):
        return None
    if activation_of(_handler(gate_act, traced)) not in ("sigmoid", "hardsigmoid"):
        return None
    if activation_of(_handler(act, traced)) in (None, "none"):
        return None
    for conv in (conv1, conv2):
        m = traced.submodule(conv.target) if conv.op == "call_module" else None
        if not isinstance(m, nn.Conv2d) or m.kernel_size != (1, 1) or m.groups != 1 or m.bias is None \
                or m.padding_mode != "zeros" or m.stride != (1, 1) or m.padding != (0, 0) or m.dilation != (1, 1):
            return None
    if shape_of(pool) != (shape_of(x)[0], 1, 1) or shape_of(gate) != shape_of(pool):  # type: ignore[index]  # x feeds the pool: a tensor
        return None
    return [pool, conv1, act, conv2, gate_act]


def _squeeze_excite(node, traced: Traced):
    """(fields, input, members, absorbed nodes) if ``node`` is the product of a squeeze-excite."""
    if node.target not in (operator.mul, "mul") and op_label(op_key(node, traced.module)) != "torch.mul":
        return None
    a, b = (node.args + (None, None))[:2]
    for gate, x in ((a, b), (b, a)):
        if hasattr(gate, "op") and hasattr(x, "op"):
            chain = _se_chain(gate, x, traced)
            if chain:
                pool, conv1, act, _, gate_act = chain
                fields = {"kind": "squeeze_excite", "squeeze": traced.submodule(conv1.target).out_channels,
                          "activation": activation_of(_handler(act, traced)),
                          "gate": activation_of(_handler(gate_act, traced))}
                members = [str(n.target) if n.op == "call_module" else scope_of(n) for n in chain]
                return fields, x, members, chain
    return None


def find_squeeze_excite(traced: Traced) -> tuple[dict, set]:
    """Product node -> (fields, input, members) of every squeeze-excite, and the nodes inside them."""
    found, absorbed = {}, set()
    for node in traced.nodes():
        match = _squeeze_excite(node, traced) if node.op in ("call_function", "call_method") else None
        if match:
            found[node] = match[:3]
            absorbed.update(match[3])
    return found, absorbed


# --------------------------------------------------------------------------------------------------
# Channel shuffle and split (ShuffleNet, Zhang et al. 2018; Ma et al. 2018), channels-last permutes


def _has_kind(kind: str) -> bool:
    return kind in KINDS


def _method_or_function(node, name: str) -> bool:
    return (node.op == "call_method" and node.target == name) or \
        (node.op == "call_function" and getattr(node.target, "__name__", "") == name and
         getattr(node.target, "__module__", "torch") in (None, "torch", "torch.functional"))


def _shuffle(node):
    """(input, groups, inner nodes) if ``node`` ends view(n, g, c/g, h, w), transpose(1, 2),
    [contiguous], view(n, c, h, w): torchvision's channel_shuffle."""
    if not (_method_or_function(node, "view") or _method_or_function(node, "reshape")):
        return None
    inner, current = [], node.args[0]
    if hasattr(current, "op") and _method_or_function(current, "contiguous"):
        inner.append(current)
        current = current.args[0]
    if not (hasattr(current, "op") and _method_or_function(current, "transpose")
            and tuple(current.args[1:3]) in ((1, 2), (2, 1))):
        return None
    inner.append(current)
    grouped = current.args[0]
    if not (hasattr(grouped, "op") and (_method_or_function(grouped, "view") or _method_or_function(grouped, "reshape"))):
        return None
    inner.append(grouped)
    x = grouped.args[0]
    five, shape = grouped.meta.get("tensor_meta"), shape_of(x)
    if five is None or shape is None or len(shape) != 3 or shape_of(node) != shape:
        return None
    if tuple(five.shape[1:]) != (five.shape[1], shape[0] // five.shape[1], *shape[1:]) or any(len(n.users) != 1 for n in inner):
        return None
    return x, int(five.shape[1]), inner


def find_channel_shuffle(traced: Traced) -> tuple[dict, set]:
    """Final view node -> (fields, input, members) of every channel shuffle, and the nodes inside."""
    found: dict[fx.Node, tuple[dict, fx.Node, list[str]]] = {}
    absorbed: set[fx.Node] = set()
    if not _has_kind("channel_shuffle"):
        return found, absorbed  # left to the table, which refuses the view and transpose by name
    for node in traced.nodes():
        match = _shuffle(node) if node.op in ("call_function", "call_method") else None
        if match:
            x, groups, inner = match
            found[node] = ({"kind": "channel_shuffle", "groups": groups}, x, [])
            absorbed.update(inner)
    return found, absorbed


def channel_split(node) -> "int | None":
    """The number of pieces if ``node`` chunks a feature map along its channels, as ``channel_split`` states."""
    if not (_method_or_function(node, "chunk") and _has_kind("channel_split")):
        return None
    parts = node.kwargs.get("chunks", node.args[1] if len(node.args) > 1 else None)
    dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
    shape = shape_of(node.args[0])
    if not isinstance(parts, int) or shape is None or len(shape) != 3 or dim not in (1, -3):
        return None
    return parts


def permute_layout(node, channels_last: bool) -> "str | None":
    """'last' for a permute of a feature map to (h, w, c), 'first' for the way back, else None."""
    if not _method_or_function(node, "permute"):
        return None
    dims = node.kwargs.get("dims", node.args[1:])
    dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)
    if dims == [0, 2, 3, 1] and not channels_last and len(shape_of(node.args[0]) or ()) == 3:
        return "last"
    if dims == [0, 3, 1, 2] and channels_last:
        return "first"
    return None
