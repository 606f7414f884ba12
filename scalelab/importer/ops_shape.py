"""Table entries for pooling, flatten, dropout, identities and merges (add, cat, layer scale)."""

from __future__ import annotations

from scalelab.importer.ops_compute import pair, short
from scalelab.importer import ops_tensor, ops_views
from scalelab.importer.capture import Place
from scalelab.importer.table import ALIAS, Call, Unsupported, needs_kind


def _pool_fields(kind: str, kernel, stride, padding, ceil_mode) -> dict:
    kernel = pair(kernel)
    stride = pair(stride) if stride not in (None, [], ()) else kernel
    return {"kind": kind, "kernel": short(kernel), "stride": short(stride), "padding": short(pair(padding)),
            "ceil_mode": bool(ceil_mode)}


def _feature_map(c: Call) -> None:
    c.batch_first()
    if len(c.in_shape) != 3 or c.channels_last:
        raise Unsupported(f"pooling over a {'x'.join(map(str, c.in_shape))} sample")


def _max_pool(c: Call) -> list[dict]:
    """aten.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode) (and _with_indices)."""
    _feature_map(c)
    if pair(c.arg("dilation", 1)) != (1, 1):
        raise Unsupported("max pooling with dilation")
    return [_pool_fields("maxpool", c.arg("kernel_size"), c.arg("stride"), c.arg("padding", 0), c.arg("ceil_mode"))]


def _avg_pool(c: Call) -> list[dict]:
    """aten.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)."""
    _feature_map(c)
    if c.arg("divisor_override") is not None:
        raise Unsupported("average pooling with a divisor override")
    fields = _pool_fields("avgpool", c.arg("kernel_size"), c.arg("stride"), c.arg("padding", 0), c.arg("ceil_mode"))
    return [{**fields, "count_include_pad": bool(c.arg("count_include_pad", True))}]


def _adaptive_avg_pool(c: Call) -> list[dict]:
    _feature_map(c)
    size = c.out_shape[1:]
    return [{"kind": "global_avgpool"}] if size == (1, 1) else [{"kind": "adaptive_avgpool", "size": short(size)}]


def _mean(c: Call) -> list[dict]:
    """aten.mean.dim(input, dim, keepdim): over height and width of a feature map a global pool,
    else a reduction."""
    rank = c.rank()
    dims = c.arg("dim")
    dims = {d % rank for d in ([dims] if isinstance(dims, int) else dims or ())}
    if dims != {2, 3} or len(c.in_shape) != 3 or c.channels_last or c.cap.batch_axis(c.node.args[0]) != 0:
        return ops_tensor.REDUCE_MEAN(c)
    pool = {"kind": "global_avgpool"}
    return [pool] if c.arg("keepdim", False) else [pool, {"kind": "flatten"}]


def _flatten(c: Call):
    """aten.flatten.using_ints(input, start_dim, end_dim): all but the batch is the zoo's flatten,
    any other run of axes a reshape (a view, or a copy where torch copies)."""
    rank = c.rank()
    start, end = c.arg("start_dim", 0) % rank, c.arg("end_dim", -1) % rank
    if start == end:
        return ALIAS
    if start != 1 or end != rank - 1 or c.cap.batch_axis(c.node.args[0]) != 0:
        return ops_views.RESHAPE(c)
    return ALIAS if len(c.in_shape) == 1 else [{"kind": "flatten"}]


def _dropout(c: Call) -> list[dict]:
    """aten.dropout(input, p, train) in eval: an identity stated as the dropout the model trains with."""
    return [{"kind": "dropout", "p": float(c.arg("p", 0.5))}]


def _identity(c: Call):
    return ALIAS


def _add(c: Call) -> list[dict]:
    """aten.add.Tensor(self, other, alpha): two samples of one shape are the zoo's ``add``; anything
    else (broadcasting, a parameter, a number, alpha) a binary or unary block."""
    a, b = c.arg("self"), c.arg("other")
    same = all(hasattr(t, "op") and t not in c.cap.state and c.place(t) == Place(0) for t in (a, b))
    if same and c.arg("alpha", 1) == 1 and c.shape(a) == c.shape(b):
        return [{"kind": "add"}]
    return ops_tensor.BINARY_ADD(c)


def _cat(c: Call):
    tensors = c.arg("tensors")
    return ALIAS if len(tensors) == 1 else ops_tensor.cat(c)


def _mul(c: Call) -> list[dict]:
    """aten.mul.Tensor: a product with a learned per-channel parameter is layer scale (CaiT, ConvNeXt),
    any other a binary or unary block."""
    a, b = c.arg("self"), c.arg("other")
    params = [t for t in (a, b) if t in c.cap.state]
    tensors = [t for t in (a, b) if hasattr(t, "op") and t not in params]
    if len(params) == 1 and len(tensors) == 1:
        out = c.out_shape
        channels = out[-1] if c.channels_last else out[0]
        per_channel = (channels,) if c.channels_last else (channels, 1, 1)
        if c.shape(params[0]) == per_channel and c.shape(tensors[0]) == out and c.cap.batch_axis(tensors[0]) == 0:
            needs_kind("layer_scale")
            return [{"kind": "layer_scale"}]
    return ops_tensor.BINARY_MUL(c)


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    return {
        aten.max_pool2d.default: _max_pool, aten.max_pool2d_with_indices.default: _max_pool,
        aten.avg_pool2d.default: _avg_pool, aten.adaptive_avg_pool2d.default: _adaptive_avg_pool,
        aten.mean.dim: _mean, aten.flatten.using_ints: _flatten,
        aten.dropout.default: _dropout, aten.dropout_.default: _dropout, aten.feature_dropout.default: _dropout,
        aten.feature_dropout_.default: _dropout, aten.alpha_dropout.default: _dropout,
        aten.alias.default: _identity,
        aten.detach.default: _identity, aten.detach_.default: _identity,
        aten.add.Tensor: _add, aten.add_.Tensor: _add, aten.cat.default: _cat,
        aten.mul.Tensor: _mul,
    }
