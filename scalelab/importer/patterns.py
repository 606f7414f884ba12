"""Patterns of several traced operations that one block states exactly."""

from __future__ import annotations

import operator

from scalelab.importer.table import activation_of, op_key, op_label, table
from scalelab.importer.trace import Traced, scope_of, shape_of


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
    if shape_of(pool) != (shape_of(x)[0], 1, 1) or shape_of(gate) != shape_of(pool):
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
