"""Table entries for activations: every ATen activation (and its in-place form) to one ``activation``
block, its parameters as torch's modules name them. An activation with only default parameters is
one a conv, linear or add block can fold in (``folds``)."""

from __future__ import annotations

from typing import Callable

from scalelab.blocks.layers import FUNCTIONS
from scalelab.importer.table import Call, Unsupported

#: ATen name -> (function, the ATen arguments read as the block's fields)
ACTIVATION_OPS: dict[str, tuple[str, dict[str, str]]] = {
    "relu": ("relu", {}), "sigmoid": ("sigmoid", {}), "tanh": ("tanh", {}), "silu": ("silu", {}),
    "hardsigmoid": ("hardsigmoid", {}), "hardswish": ("hardswish", {}), "mish": ("mish", {}),
    "gelu": ("gelu", {"approximate": "approximate"}), "leaky_relu": ("leaky_relu", {"negative_slope": "negative_slope"}),
    "elu": ("elu", {"alpha": "alpha"}), "celu": ("celu", {"alpha": "alpha"}), "selu": ("selu", {}),
    "hardtanh": ("hardtanh", {"min_val": "min_val", "max_val": "max_val"}),
    "softplus": ("softplus", {"beta": "beta", "threshold": "threshold"}), "log_sigmoid": ("logsigmoid", {}),
    "hardshrink": ("hardshrink", {"lambd": "lambd"}), "softshrink": ("softshrink", {"lambd": "lambd"}),
    "relu6": ("relu6", {}),
}


def _handler(function: str, fields: dict[str, str]) -> Callable[[Call], list[dict]]:
    def handler(c: Call) -> list[dict]:
        if function not in FUNCTIONS:
            raise Unsupported(f"needs the '{function}' activation")
        given = {field: c.arg(arg) for field, arg in fields.items() if c.arg(arg) is not None}
        given = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in given.items()}
        name = function
        if function == "hardtanh" and (given.get("min_val", -1.0), given.get("max_val", 1.0)) == (0.0, 6.0):
            name, given = "relu6", {}  # torch's ReLU6 is hardtanh(0, 6)
        defaults = FUNCTIONS[name].params
        given = {k: v for k, v in given.items() if defaults.get(k, ...) != v}
        return [{"kind": "activation", "function": name, **given}]

    return handler


def folds(fields: dict) -> "str | None":
    """The function an activation block applies if it takes no parameters beyond torch's defaults
    (a conv, linear or add block's ``activation`` field names only such a function)."""
    if fields.get("kind") != "activation" or set(fields) != {"kind", "function"}:
        return None
    return fields["function"]


def entries() -> dict:
    import torch

    table = {}
    for name, (function, fields) in ACTIVATION_OPS.items():
        for variant in (name, f"{name}_"):
            packet = getattr(torch.ops.aten, variant, None)
            if packet is None:
                continue
            for overload in packet.overloads():
                if overload == "default":
                    table[getattr(packet, overload)] = _handler(function, fields)
    return table
