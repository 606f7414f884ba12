"""The one table from traced operations to spec blocks.

Each entry maps a leaf module type, a function, or a tensor method (``"Tensor.view"``) to a handler
``handler(node, ctx) -> list of block field dicts`` (a chain; the last block produces the node's
output) or ``ALIAS`` (the node passes its input through: no block). A handler raises
``Unsupported`` when the call uses options the spec language cannot state. Adding an operation
is one entry here.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

from scalelab.blocks import KINDS
from scalelab.blocks.layers import ACTIVATIONS
from scalelab.importer.trace import shape_of

ALIAS = "alias"


class Unsupported(Exception):
    """The operation, or the way it is called, has no exact spec block."""


@dataclass
class Call:
    """A traced node as a handler sees it: the module (for module calls) and the call's arguments."""

    node: Any
    module: Any = None
    channels_last: bool = False  # the input is a feature map permuted to (height, width, channels)

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        args, kwargs = self.node.args, self.node.kwargs
        if name in kwargs:
            return kwargs[name]
        return args[index] if index < len(args) else default

    @property
    def in_shape(self) -> tuple[int, ...]:
        return shape_of(self.node.args[0])  # type: ignore[return-value]  # a handler's input is a tensor

    @property
    def out_shape(self) -> tuple[int, ...]:
        return shape_of(self.node)  # type: ignore[return-value]  # a handler's node yields a tensor


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _short(pair: tuple[int, ...]) -> "int | list[int]":
    """7 for (7, 7): the spec accepts both, one number reads better."""
    return pair[0] if pair[0] == pair[1] else list(pair)


# --------------------------------------------------------------------------------------------------
# Convolution, linear, normalisation


def _conv(c: Call) -> list[dict]:
    m = c.module
    kernel, dilation = _pair(m.kernel_size), _pair(m.dilation)
    padding = m.padding
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        if any(d * (k - 1) % 2 for k, d in zip(kernel, dilation)):
            raise Unsupported("'same' padding with an even kernel pads unevenly")
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    same = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return [{"kind": "conv", "out": m.out_channels, "kernel": _short(kernel), "stride": _short(_pair(m.stride)),
             "padding": "same" if tuple(padding) == same else _short(_pair(padding)), "dilation": _short(dilation),
             "groups": m.groups, "bias": m.bias is not None, "padding_mode": m.padding_mode,
             "norm": "none", "activation": "none"}]


def needs_kind(kind: str) -> None:
    """Refuse an operation whose block kind this scalelab does not have."""
    if kind not in KINDS:
        raise Unsupported(f"needs the '{kind}' block kind")


def _linear(c: Call) -> list[dict]:
    if c.channels_last:  # ConvNeXt's pointwise MLP: a linear layer over the channels of every position
        needs_kind("channel_linear")
        return [{"kind": "channel_linear", "out": c.module.out_features, "bias": c.module.bias is not None}]
    if len(c.in_shape) != 1:
        raise Unsupported(f"linear over the last dimension of a {'x'.join(map(str, c.in_shape))} tensor")
    return [{"kind": "linear", "out": c.module.out_features, "bias": c.module.bias is not None}]


def _batchnorm(c: Call) -> list[dict]:
    m = c.module
    if not (m.affine and m.track_running_stats):
        raise Unsupported("batchnorm without affine parameters or running statistics")
    return [{"kind": "batchnorm", "norm_eps": m.eps}]


def _layer_norm(c: Call) -> list[dict]:
    """Layer norm over the channels of a channels-last map (ConvNeXt's LayerNorm and LayerNorm2d)."""
    if c.module is not None:
        shape, eps = tuple(c.module.normalized_shape), c.module.eps
        affine = c.module.elementwise_affine and c.module.bias is not None
    else:
        shape, eps = tuple(c.arg(1, "normalized_shape")), c.arg(4, "eps", 1e-5)
        affine = c.arg(2, "weight") is not None and c.arg(3, "bias") is not None
    if not (c.channels_last and shape == c.in_shape[-1:] and affine):
        raise Unsupported("layer norm other than over the channels of each position, with scale and shift")
    needs_kind("layer_norm")
    return [{"kind": "layer_norm", "norm_eps": eps}]


def _lrn(c: Call) -> list[dict]:
    m = c.module
    return [{"kind": "lrn", "size": m.size, "alpha": m.alpha, "beta": m.beta, "k": m.k}]


# --------------------------------------------------------------------------------------------------
# Activations: module types, functions and methods, all to one ``activation`` block


def _activation(function: str) -> Callable[[Call], list[dict]]:
    def handler(c: Call) -> list[dict]:
        if function not in ACTIVATIONS:
            raise Unsupported(f"needs the '{function}' activation")
        return [{"kind": "activation", "function": function}]

    handler.activation = function  # type: ignore[attr-defined]  # read by the folding pass (activation_of)
    return handler


def _gelu(c: Call) -> list[dict]:
    if c.module.approximate != "none":
        raise Unsupported("GELU with the tanh approximation")
    return _activation("gelu")(c)


def activation_of(handler) -> "str | None":
    return getattr(handler, "activation", None)


# --------------------------------------------------------------------------------------------------
# Pooling, reshaping, dropout


def _pool_fields(kind: str, kernel, stride, padding, ceil_mode) -> dict:
    kernel = _pair(kernel)
    stride = _pair(stride) if stride not in (None, []) else kernel
    return {"kind": kind, "kernel": _short(kernel), "stride": _short(stride), "padding": _short(_pair(padding)),
            "ceil_mode": bool(ceil_mode)}


def _maxpool(c: Call) -> list[dict]:
    if c.module is not None:
        m = c.module
        kernel, stride, padding, dilation, ceil, indices = (m.kernel_size, m.stride, m.padding, m.dilation,
                                                            m.ceil_mode, m.return_indices)
    else:
        kernel, stride, padding = c.arg(1, "kernel_size"), c.arg(2, "stride"), c.arg(3, "padding", 0)
        dilation, ceil, indices = c.arg(4, "dilation", 1), c.arg(5, "ceil_mode", False), c.arg(6, "return_indices", False)
    if _pair(dilation) != (1, 1) or indices:
        raise Unsupported("max pooling with dilation or returned indices")
    return [_pool_fields("maxpool", kernel, stride, padding, ceil)]


def _avgpool(c: Call) -> list[dict]:
    if c.module is not None:
        m = c.module
        kernel, stride, padding, ceil, include, divisor = (m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                                           m.count_include_pad, m.divisor_override)
    else:
        kernel, stride, padding = c.arg(1, "kernel_size"), c.arg(2, "stride"), c.arg(3, "padding", 0)
        ceil, include, divisor = c.arg(4, "ceil_mode", False), c.arg(5, "count_include_pad", True), c.arg(6, "divisor_override")
    if divisor is not None:
        raise Unsupported("average pooling with a divisor override")
    return [{**_pool_fields("avgpool", kernel, stride, padding, ceil), "count_include_pad": bool(include)}]


def _adaptive_avgpool(c: Call) -> list[dict]:
    size = c.out_shape[1:]
    if size == (1, 1):
        return [{"kind": "global_avgpool"}]
    return [{"kind": "adaptive_avgpool", "size": _short(size)}]


def _spatial_mean(c: Call) -> list[dict]:
    dims = c.arg(1, "dim")
    dims = {d % len(c.node.args[0].meta["tensor_meta"].shape) for d in ([dims] if isinstance(dims, int) else dims or ())}
    if len(c.in_shape) != 3 or dims != {2, 3}:
        raise Unsupported("mean over dimensions other than height and width")
    pool = {"kind": "global_avgpool"}
    return [pool] if c.arg(2, "keepdim", False) else [pool, {"kind": "flatten"}]


def _flatten_call(c: Call):
    if c.module is not None:
        start, end = c.module.start_dim, c.module.end_dim
    else:
        start, end = c.arg(1, "start_dim", 0), c.arg(2, "end_dim", -1)
    rank = len(c.in_shape) + 1
    if start % rank != 1 or end % rank != rank - 1:
        raise Unsupported(f"flatten of dimensions {start} to {end} (only all but the batch)")
    return ALIAS if len(c.in_shape) == 1 else [{"kind": "flatten"}]


def _reshape(c: Call):
    """view / reshape: exact only as a flatten of each sample (or a no-op)."""
    if c.out_shape == c.in_shape:
        return ALIAS
    if tuple(c.node.meta["tensor_meta"].shape) == (1, math.prod(c.in_shape)):
        return [{"kind": "flatten"}]
    raise Unsupported(f"reshape of {'x'.join(map(str, c.in_shape))} to {'x'.join(map(str, c.out_shape))}")


def _dropout(c: Call) -> list[dict]:
    p = c.module.p if c.module is not None else c.arg(1, "p", 0.5)
    return [{"kind": "dropout", "p": float(p)}]


def _identity(c: Call):
    return ALIAS


# --------------------------------------------------------------------------------------------------
# Merges


def _add(c: Call) -> list[dict]:
    tensors = [a for a in c.node.args[:2] if shape_of(a) is not None]
    if len(tensors) != 2 or len(c.node.args) > 2 or c.node.kwargs.get("alpha", 1) != 1:
        raise Unsupported("addition of a constant or a scaled tensor")
    if shape_of(tensors[0]) != shape_of(tensors[1]):
        raise Unsupported("addition with broadcasting")
    return [{"kind": "add"}]


def _cat(c: Call):
    tensors = c.arg(0, "tensors")
    dim = c.arg(1, "dim", 0)
    rank = len(shape_of(tensors[0])) + 1  # type: ignore[arg-type]  # cat's inputs are tensors
    if dim % rank != 1:
        raise Unsupported(f"concatenation along dimension {dim} (only channels)")
    return ALIAS if len(tensors) == 1 else [{"kind": "concat"}]


def _mul(c: Call):
    """A product with a learned per-channel parameter is layer scale (CaiT, ConvNeXt); any other
    product outside a squeeze-excite pattern has no block."""
    params = [a for a in c.node.args if getattr(a, "op", None) == "get_attr" and "tensor_meta" in a.meta]
    tensors = [a for a in c.node.args if shape_of(a) is not None and a not in params]
    if len(params) == 1 and len(tensors) == 1 and len(c.node.args) == 2:
        channels = c.out_shape[-1] if c.channels_last else c.out_shape[0]
        per_channel = (channels,) if c.channels_last else (channels, 1, 1)
        if tuple(params[0].meta["tensor_meta"].shape) == per_channel and shape_of(tensors[0]) == c.out_shape:
            needs_kind("layer_scale")
            return [{"kind": "layer_scale"}]
    raise Unsupported("element-wise product outside a squeeze-excite or layer-scale pattern")


def _table() -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    activations = {"relu": (nn.ReLU, F.relu, torch.relu, F.relu_, torch.relu_, "Tensor.relu", "Tensor.relu_"),
                   "relu6": (nn.ReLU6, F.relu6),
                   "sigmoid": (nn.Sigmoid, torch.sigmoid, F.sigmoid, "Tensor.sigmoid", "Tensor.sigmoid_"),
                   "tanh": (nn.Tanh, torch.tanh, F.tanh, "Tensor.tanh"),
                   "silu": (nn.SiLU, F.silu),
                   "hardsigmoid": (nn.Hardsigmoid, F.hardsigmoid),
                   "hardswish": (nn.Hardswish, F.hardswish),
                   "gelu": (F.gelu,)}
    table: dict = {key: _activation(fn) for fn, keys in activations.items() for key in keys}
    table[nn.GELU] = _gelu
    table.update({
        nn.Conv2d: _conv, nn.Linear: _linear, nn.BatchNorm2d: _batchnorm, nn.LocalResponseNorm: _lrn,
        nn.LayerNorm: _layer_norm, F.layer_norm: _layer_norm,
        nn.MaxPool2d: _maxpool, F.max_pool2d: _maxpool, nn.AvgPool2d: _avgpool, F.avg_pool2d: _avgpool,
        nn.AdaptiveAvgPool2d: _adaptive_avgpool, F.adaptive_avg_pool2d: _adaptive_avgpool,
        "Tensor.mean": _spatial_mean, torch.mean: _spatial_mean,
        nn.Flatten: _flatten_call, torch.flatten: _flatten_call, "Tensor.flatten": _flatten_call,
        "Tensor.view": _reshape, "Tensor.reshape": _reshape, torch.reshape: _reshape,
        nn.Dropout: _dropout, nn.Dropout2d: _dropout, F.dropout: _dropout, F.dropout2d: _dropout,
        nn.Identity: _identity, "Tensor.contiguous": _identity,
        operator.add: _add, operator.iadd: _add, torch.add: _add, "Tensor.add": _add, "Tensor.add_": _add,
        torch.cat: _cat, torch.concat: _cat,
        operator.mul: _mul, torch.mul: _mul, "Tensor.mul": _mul,
    })
    try:  # torchvision's stochastic depth: the identity in eval mode
        from torchvision.ops import stochastic_depth
        table[stochastic_depth] = _dropout
    except ImportError:
        pass
    return table


#: handlers exact on a channels-last map besides the activations (every other handler refuses one)
CHANNELS_LAST = {_linear, _layer_norm, _mul, _add, _dropout, _identity, _gelu}


def takes_channels_last(handler) -> bool:
    return handler in CHANNELS_LAST or activation_of(handler) is not None

_TABLE: dict = {}


def table() -> dict:
    if not _TABLE:
        _TABLE.update(_table())
    return _TABLE


def op_key(node, root) -> Any:
    """The table key of a node: its module type, its function, or ``"Tensor.<method>"``."""
    if node.op == "call_module":
        return type(root.get_submodule(node.target))
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return node.target


def op_label(key) -> str:
    """A readable name for an operation: torch.nn.LayerNorm, torch.permute, Tensor.view."""
    if isinstance(key, str):
        return key
    module = getattr(key, "__module__", "") or ""
    name = getattr(key, "__qualname__", None) or getattr(key, "__name__", None) or str(key)
    module = module.removeprefix("_scalelab_import_")  # a model file loaded by path: its file name
    if module.startswith("torch.nn.modules"):
        module = "torch.nn"
    elif module in ("_operator", "operator"):
        module = "operator"
    elif module.startswith("torch._C") or module in ("torch.functional", "torch") or name.startswith("_VariableFunctions"):
        module, name = "torch", getattr(key, "__name__", name)
    return f"{module}.{name}" if module else name
