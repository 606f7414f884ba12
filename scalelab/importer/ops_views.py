"""Table entries for views and copies on any rank: reshape (view, unsqueeze, squeeze), permute and
transpose, expand, slice, select, roll, stack, and the copies to contiguous memory torch makes
(``contiguous``, ``clone``, a ``reshape`` it cannot view). Axes are per sample: the batch axis is
left out, and an operation that moves or splits it is refused by name."""

from __future__ import annotations

import math
import sys

from scalelab.importer.capture import EXAMPLE_BATCH, MOVES, VIEWS
from scalelab.importer.params import short_name
from scalelab.importer.ops_tensor import OPERANDS, sample_dim
from scalelab.importer.table import ALIAS, Call, Unsupported, needs_kind


def _fmt(shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def _laid_out(c: Call, node):
    """An empty meta tensor with the node's per-sample sizes behind an example batch, laid out as the
    module built from the spec lays it out: torch's own rules then say whether it is contiguous and
    whether a reshape of it is a view. Memoised on the capture: each layout derives from its input's."""
    memo = c.cap.layouts
    if node not in memo:
        memo[node] = _layout(Call(node, c.cap))
    return memo[node]


def _layout(c: Call):
    """Where the batch is the first axis of both, the source's strides, except where its kernel's
    layout is not the spec's: attention's output is contiguous as its math kernel writes it (the
    capture's fake kernel writes it transposed, the real one does not). Elsewhere (the batch moved or
    merged into an axis) the spec's own: a permute, select or slice is a view of its input, a reshape
    a view where torch can view it, an element-wise operation keeps its input's layout, and any other
    operation writes a contiguous tensor."""
    import torch  # the importer runs torch

    node, val = c.node, c.node.meta["val"]
    name = short_name(node)
    x = node.args[0] if node.args and hasattr(node.args[0], "op") and c.cap.torch_shape(node.args[0]) else None
    source = [_concrete(c, d) for d in val.shape]
    if node.target is torch.ops.aten.scaled_dot_product_attention.default:
        return torch.empty(source, device="meta")
    if name in MOVES and x is not None:
        return _laid_out(c, x).permute(0, *[d + 1 for d in _sample_dims(c, x, _torch_dims(c, node))])
    if c.place(node) is None or (_first(c, node) and (x is None or _first(c, x))):
        return torch.empty_strided(source, [_concrete(c, d) for d in val.stride()], device="meta")
    sizes = [EXAMPLE_BATCH, *c.out_shape]
    if x is None or name in ("clone", "contiguous"):
        return torch.empty(sizes, device="meta")
    t = _laid_out(c, x)
    if name in VIEWS:
        try:
            return t.view(sizes)
        except RuntimeError:  # a reshape that copies writes a contiguous tensor
            return torch.empty(sizes, device="meta")
    if name == "select":
        return t.select(sample_dim(c, x, c.arg("dim")) + 1, c.arg("index"))
    if name == "slice":
        index = (slice(None),) * (sample_dim(c, x, c.arg("dim", 0)) + 1)
        return t[(*index, slice(c.arg("start"), c.arg("end"), c.arg("step", 1)))]
    if c.shape(x) == c.out_shape and name not in WRITES:
        return torch.empty_like(t)
    return torch.empty(sizes, device="meta")


#: operators that write a fresh contiguous output even where it has its input's shape
WRITES = ("linear", "matmul", "bmm", "mm", "layer_norm", "rms_norm", "group_norm", "conv2d", "conv1d",
          "batch_norm", "_native_batch_norm_legit_no_training", "scaled_dot_product_attention", "cat", "stack")


def _concrete(c: Call, d) -> int:
    return int(d) if isinstance(d, int) else int(d.node.expr.subs(c.cap.batch, EXAMPLE_BATCH))


def _first(c: Call, node) -> bool:
    """Whether the batch is the tensor's first axis, alone (its layout is then the spec's)."""
    place = c.place(node)
    return place is not None and place.axis == 0 and place.merged == 1


def _torch_dims(c: Call, node) -> list[int]:
    """The order of axes a permute, transpose or t node gives its input's."""
    rank = c.rank(node)
    name = short_name(node)
    if name == "permute":
        return [d % rank for d in Call(node, c.cap).arg("dims")]
    dims = list(range(rank))
    if name == "transpose":
        a, b = (d % rank for d in node.args[1:3])
        dims[a], dims[b] = dims[b], dims[a]
        return dims
    return dims[::-1]


def _sample_dims(c: Call, x, dims: list[int]) -> list[int]:
    """A permute of the full tensor as per-sample axes: the batch's own axis left out, an axis the
    batch is merged into moved whole (per sample it is an axis)."""
    place = c.place(x)
    if place is None or place.merged > 1:
        return dims
    return [d - (d > place.axis) for d in dims if d != place.axis]


def _not_contiguous(c: Call, node) -> bool:
    return not _laid_out(c, node).is_contiguous()


def _copies(c: Call, node) -> bool:
    """Whether a reshape of ``node`` to the call's per-sample shape copies (torch cannot view it)."""
    try:
        _laid_out(c, node).view(EXAMPLE_BATCH, *c.out_shape)
    except RuntimeError:
        return True
    return False


def _reshape(c: Call):
    """aten.view / reshape / _unsafe_view / unsqueeze / squeeze: a feature map flattened whole is
    the zoo's ``flatten``; any other new shape a ``reshape``, after a ``contiguous`` copy where the
    spec's module would copy (a view in the source may read a layout the spec's is not). The
    per-sample elements before the batch must be as many before and after (else the reshape mixes
    samples): so a reshape may merge the batch into an axis (nn.MultiheadAttention's (L, B*h, d))
    and split it out again, each a reshape per sample."""
    x = c.node.args[0]
    if c.place(x) is None or c.place(c.node) is None or c.cap.outer(x) != c.cap.outer(c.node):
        raise Unsupported(f"a reshape of {_fmt(c.in_shape)} to {_fmt(c.out_shape)} that moves the batch axis")
    if c.out_shape == c.in_shape:
        return ALIAS
    if c.channels_last:
        raise Unsupported("a reshape of a channels-last feature map")
    chain = [{"kind": "contiguous"}] if _copies(c, x) else []
    if not chain and _first(c, x) and _first(c, c.node) and len(c.in_shape) == 3 \
            and c.out_shape == (math.prod(c.in_shape),):
        return [{"kind": "flatten"}]
    needs_kind("reshape")
    return [*chain, {"kind": "reshape", "shape": list(c.out_shape)}]


def _permuted(c: Call, dims: list[int]):
    """A permute of the full tensor as per-sample ``dims`` (the batch axis left where it goes)."""
    x = c.node.args[0]
    if c.channels_last:
        raise Unsupported("a permute of a channels-last feature map")
    sample = _sample_dims(c, x, [d % c.rank(x) for d in dims])
    if sample == sorted(sample):
        return ALIAS
    needs_kind("permute")
    return [{"kind": "permute", "dims": sample}]


def _permute(c: Call):
    return _permuted(c, list(c.arg("dims")))


def _transpose(c: Call):
    return _permuted(c, _torch_dims(c, c.node))


def _expand(c: Call):
    """aten.expand(self, size): size-1 axes repeated; a parameter expanded to the batch (a class
    token) reads as a ``param`` block."""
    x = c.node.args[0]
    if c.channels_last:
        raise Unsupported("an expand of a channels-last feature map")
    p_in = c.place(x)
    if p_in is not None and not c.in_line(x):
        raise Unsupported("an expand of the batch axis")
    if p_in is not None and c.out_shape == c.in_shape:
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


RESHAPE = _reshape


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    table: dict = {
        aten.view.default: _reshape, aten.reshape.default: _reshape,
        getattr(aten, "_unsafe_view").default: _reshape, aten.unsqueeze.default: _reshape,
        aten.permute.default: _permute, aten.transpose.int: _transpose,
        aten.t.default: _transpose,
        aten.expand.default: _expand, aten.slice.Tensor: _slice, aten.select.int: _select,
        aten.roll.default: _roll, aten.stack.default: _stack,
        aten.contiguous.default: _contiguous, aten.clone.default: _contiguous,
    }
    for overload in ("default", "dim", "dims"):
        if overload in aten.squeeze.overloads():
            table[getattr(aten.squeeze, overload)] = _reshape
    return table
