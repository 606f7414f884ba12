"""Table entries for views and copies on any rank: reshape (view, unsqueeze, squeeze), permute and
transpose, expand, slice, select, roll, stack, and the copies to contiguous memory torch makes
(``contiguous``, ``clone``, a ``reshape`` it cannot view). Axes are per sample: the batch axis is
left out, and an operation that moves or splits it is refused by name."""

from __future__ import annotations

import math
import sys

from scalelab.importer.capture import EXAMPLE_BATCH
from scalelab.importer.ops_tensor import OPERANDS, sample_dim
from scalelab.importer.table import ALIAS, Call, Unsupported, needs_kind


def _fmt(shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def _strided(c: Call, node):
    """An empty meta tensor with the node's sizes and strides at the example batch, as the module
    built from the spec lays it out: torch's own rules then say whether it is contiguous and whether
    a reshape of it is a view. The captured strides are the source's, except where its kernel's
    layout is not the spec's: attention's output is contiguous as its math kernel writes it (the
    capture's fake kernel writes it transposed, the real one does not), and a transpose or permute of
    it follows from that."""
    import torch  # the importer runs torch

    val = node.meta["val"]

    def concrete(d) -> int:
        return int(d) if isinstance(d, int) else int(d.node.expr.subs(c.cap.batch, EXAMPLE_BATCH))

    sizes = [concrete(d) for d in val.shape]
    aten = torch.ops.aten
    if node.target is aten.scaled_dot_product_attention.default:
        return torch.empty(sizes, device="meta")
    if node.target in (aten.transpose.int, aten.permute.default) and hasattr(node.args[0], "meta"):
        return node.target(_strided(c, node.args[0]), *node.args[1:])
    return torch.empty_strided(sizes, [concrete(d) for d in val.stride()], device="meta")


def _not_contiguous(c: Call, node) -> bool:
    return not _strided(c, node).is_contiguous()


def _copies(c: Call, node, out_node) -> bool:
    """Whether torch's reshape of ``node`` to ``out_node``'s shape copies (it cannot view it)."""
    out = [int(d) if isinstance(d, int) else int(d.node.expr.subs(c.cap.batch, EXAMPLE_BATCH))
           for d in out_node.meta["val"].shape]
    try:
        _strided(c, node).view(out)
    except RuntimeError:
        return True
    return False


def _reshape(copy: bool):
    """aten.view / reshape / _unsafe_view / unsqueeze / squeeze: a feature map flattened whole is
    the zoo's ``flatten``; any other new shape a ``reshape``, after a ``contiguous`` copy where torch
    copies. The axes before the batch must hold the same elements before and after (else the
    reshape mixes samples)."""
    def handler(c: Call):
        x = c.node.args[0]
        if c.out_shape == c.in_shape:
            return ALIAS
        if c.channels_last:
            raise Unsupported("a reshape of a channels-last feature map")
        full_in, full_out = c.cap.full_shape(x) or (), c.cap.full_shape(c.node) or ()
        b_in, b_out = c.cap.batch_axis(x), c.cap.batch_axis(c.node)
        if b_in is None or b_out is None or math.prod(full_in[:b_in]) != math.prod(full_out[:b_out]):
            raise Unsupported(f"a reshape of {_fmt(c.in_shape)} to {_fmt(c.out_shape)} that moves the batch axis")
        chain = [{"kind": "contiguous"}] if copy and _copies(c, x, c.node) else []
        if not chain and b_in == b_out == 0 and len(c.in_shape) == 3 and c.out_shape == (math.prod(c.in_shape),):
            return [{"kind": "flatten"}]
        needs_kind("reshape")
        return [*chain, {"kind": "reshape", "shape": list(c.out_shape)}]
    return handler


def _permuted(c: Call, dims: list[int]):
    """A permute of the full tensor as per-sample ``dims`` (the batch axis left where it goes)."""
    x = c.node.args[0]
    if c.channels_last:
        raise Unsupported("a permute of a channels-last feature map")
    rank, b_in = c.rank(x), c.cap.batch_axis(x)
    dims = [d % rank for d in dims]
    sample = [d - (b_in is not None and d > b_in) for d in dims if d != b_in]
    if sample == sorted(sample):
        return ALIAS
    needs_kind("permute")
    return [{"kind": "permute", "dims": sample}]


def _permute(c: Call):
    return _permuted(c, list(c.arg("dims")))


def _transpose(c: Call):
    rank = c.rank()
    dims = list(range(rank))
    a, b = c.arg("dim0") % rank, c.arg("dim1") % rank
    dims[a], dims[b] = dims[b], dims[a]
    return _permuted(c, dims)


def _expand(c: Call):
    """aten.expand(self, size): size-1 axes repeated; a parameter expanded to the batch (a class
    token) reads as a ``param`` block."""
    x = c.node.args[0]
    if c.channels_last:
        raise Unsupported("an expand of a channels-last feature map")
    b_in, b_out = c.cap.batch_axis(x), c.cap.batch_axis(c.node)
    if b_in is not None and b_out != b_in + c.rank(c.node) - c.rank(x):
        raise Unsupported("an expand of the batch axis")
    if b_in is not None and c.out_shape == c.in_shape:
        return ALIAS
    needs_kind("expand")
    return [{"kind": "expand", "shape": list(c.out_shape), OPERANDS: [x]}]


def _slice(c: Call):
    """aten.slice.Tensor(self, dim, start, end, step); the whole axis is no block."""
    x = c.node.args[0]
    rank = c.rank(x)
    dim = c.arg("dim", 0) % rank
    size = c.cap.full_shape(x)[dim]  # type: ignore[index]  # a tensor
    start, end, step = c.arg("start"), c.arg("end"), c.arg("step", 1)
    if end is not None and (end >= size or end == sys.maxsize):
        end = None
    if start == 0:
        start = None
    if start is None and end is None and step == 1:
        return ALIAS
    if c.channels_last:
        raise Unsupported("a slice of a channels-last feature map")
    needs_kind("slice")
    fields = {"kind": "slice", "dim": sample_dim(c, x, dim), "start": start, "stop": end, "step": step}
    return [{k: v for k, v in fields.items() if v is not None}]


def _select(c: Call):
    if c.channels_last:
        raise Unsupported("an index into a channels-last feature map")
    needs_kind("select")
    return [{"kind": "select", "dim": sample_dim(c, c.node.args[0], c.arg("dim")), "index": c.arg("index")}]


def _roll(c: Call):
    x = c.node.args[0]
    dims, shifts = list(c.arg("dims") or ()), list(c.arg("shifts"))
    if not dims or len(dims) != len(shifts) or c.channels_last:
        raise Unsupported("a roll of the flattened tensor")
    needs_kind("roll")
    return [{"kind": "roll", "shifts": shifts, "dims": [sample_dim(c, x, d) for d in dims]}]


def _stack(c: Call):
    """aten.stack(tensors, dim): the new axis counted on the output, per sample."""
    tensors = list(c.arg("tensors"))
    if c.channels_last or len({c.cap.batch_axis(t) for t in tensors}) != 1:
        raise Unsupported("a stack of tensors with the batch on different axes")
    needs_kind("stack")
    return [{"kind": "stack", "dim": sample_dim(c, c.node, c.arg("dim", 0)), OPERANDS: tensors}]


def _contiguous(c: Call):
    """aten.contiguous / clone: a copy where the input is laid out by a permute or an expand (the
    spec's reshapes are views), else nothing the spec states."""
    x = c.node.args[0]
    if c.channels_last or not _not_contiguous(c, x):
        return ALIAS
    needs_kind("contiguous")
    return [{"kind": "contiguous"}]


RESHAPE = _reshape(True)


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    table: dict = {
        aten.view.default: _reshape(False), aten.reshape.default: _reshape(True),
        getattr(aten, "_unsafe_view").default: _reshape(False),
        aten.unsqueeze.default: _reshape(False),
        aten.permute.default: _permute, aten.transpose.int: _transpose,
        aten.t.default: lambda c: _permuted(c, list(range(c.rank()))[::-1]),
        aten.expand.default: _expand, aten.slice.Tensor: _slice, aten.select.int: _select,
        aten.roll.default: _roll, aten.stack.default: _stack,
        aten.contiguous.default: _contiguous, aten.clone.default: _contiguous,
    }
    for overload in ("default", "dim", "dims"):
        if overload in aten.squeeze.overloads():
            table[getattr(aten.squeeze, overload)] = _reshape(False)
    return table
