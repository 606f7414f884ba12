"""Table entries for tensor operations on any rank: element-wise unary and binary operations (a
parameter operand becomes a ``param`` block), reductions, softmax, cat, split and chunk, pad and
interpolation. Axes are translated to per-sample axes (the batch axis left out); an operation on
the batch axis itself is refused by name."""

from __future__ import annotations

from scalelab.blocks.layers.elementwise import UNARY
from scalelab.importer.table import Call, Unsupported, needs_kind

#: the key a handler's first block carries to name its inputs (parameters included) in order
OPERANDS = "_operands"

UNARY_ATEN = {"neg": "neg", "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
              "reciprocal": "reciprocal", "sign": "sign", "floor": "floor", "ceil": "ceil", "round": "round",
              "erf": "erf", "sin": "sin", "cos": "cos", "square": "square"}
BINARY_ATEN = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "maximum": "maximum", "minimum": "minimum",
               "pow": "pow"}


def sample_dim(c: Call, node, dim: int) -> int:
    """A torch axis of ``node`` as a per-sample axis; the batch axis itself (or an axis the batch is
    merged into) is refused."""
    rank = c.rank(node)
    dim %= rank
    place = c.place(node)
    if place is None:
        return dim
    if dim == place.axis:
        raise Unsupported("it acts on the batch axis" if place.merged == 1 else "it acts on an axis the batch is merged into")
    return dim - (dim > place.axis and place.merged == 1)  # a merged axis stays, per sample, an axis


def _unary(op: str):
    def handler(c: Call) -> list[dict]:
        needs_kind("unary")
        if op not in UNARY:
            raise Unsupported(f"needs the '{op}' unary operation")
        return [{"kind": "unary", "op": op}]
    return handler


def _scalar(c: Call, op: str, scalar) -> list[dict]:
    needs_kind("unary")
    if op in ("add", "sub") and c.arg("alpha", 1) != 1:
        scalar = scalar * c.arg("alpha", 1)
    return [{"kind": "unary", "op": op, "scalar": float(scalar)}]


def _binary(op: str):
    """a op b: tensors (one may be a parameter), or a tensor and a number (a unary scalar form)."""
    def handler(c: Call) -> list[dict]:
        a, b = c.node.args[0], c.node.args[1] if len(c.node.args) > 1 else c.arg("other")
        if not hasattr(b, "op"):
            return _scalar(c, op, b)
        if not hasattr(a, "op"):
            if op == "sub":
                return _scalar(c, "rsub", a)
            if op in ("add", "mul"):
                return _scalar(c, op, a)
            raise Unsupported(f"a number {op} a tensor")
        needs_kind("binary")
        if not all(c.in_line(t) for t in (a, b)):
            raise Unsupported("operands that hold the batch on different axes")
        fields: dict = {"kind": "binary", "op": op, OPERANDS: [a, b]}
        if op in ("add", "sub") and c.arg("alpha", 1) != 1:
            fields["alpha"] = float(c.arg("alpha"))
        return [fields]
    return handler


def _rsub(c: Call) -> list[dict]:
    if hasattr(c.arg("other"), "op"):
        raise Unsupported("rsub of two tensors")
    return _scalar(c, "rsub", c.arg("other"))


def _clamp(c: Call) -> list[dict]:
    needs_kind("unary")
    bounds = {k: float(c.arg(k)) for k in ("min", "max") if c.arg(k) is not None}
    if any(hasattr(v, "op") for v in bounds.values()):
        raise Unsupported("clamp to tensor bounds")
    return [{"kind": "unary", "op": "clamp", **bounds}]


def _reduce(op: str):
    def handler(c: Call) -> list[dict]:
        needs_kind("reduce")
        x = c.node.args[0]
        dims = c.arg("dim")
        dims = list(range(c.rank(x))) if dims in (None, []) else [dims] if isinstance(dims, int) else list(dims)
        fields = {"kind": "reduce", "op": op, "dims": [sample_dim(c, x, d) for d in dims],
                  "keepdim": bool(c.arg("keepdim", False))}
        return [fields]
    return handler


def _softmax(log: bool):
    def handler(c: Call) -> list[dict]:
        needs_kind("softmax")
        dim = sample_dim(c, c.node.args[0], c.arg("dim"))
        return [{"kind": "softmax", "dim": dim, **({"log": True} if log else {})}]
    return handler


def cat(c: Call) -> list[dict]:
    """aten.cat along any per-sample axis (channels of feature maps: the zoo's ``concat``)."""
    tensors = list(c.arg("tensors"))
    dim = sample_dim(c, tensors[0], c.arg("dim", 0))
    if any(c.cap.batch_axis(t) != c.cap.batch_axis(tensors[0]) for t in tensors):
        raise Unsupported("a concatenation of tensors with the batch on different axes")
    if dim == 0 and len(c.shape(tensors[0])) == 3 and not c.channels_last and c.cap.batch_axis(tensors[0]) == 0 \
            and all(t not in c.cap.state for t in tensors):
        return [{"kind": "concat"}]
    needs_kind("cat")
    return [{"kind": "cat", "dim": dim, OPERANDS: tensors}]


def split(c: Call, sizes: list[int]) -> list[dict]:
    needs_kind("split")
    return [{"kind": "split", "dim": sample_dim(c, c.node.args[0], c.arg("dim", 0)), "sizes": sizes}]


def _pad(mode: "str | None"):
    """aten.constant_pad_nd(input, pad, value), aten.pad(input, pad, mode, value) and the
    reflection and replication pads: the trailing axes, never the batch's."""
    def handler(c: Call) -> list[dict]:
        needs_kind("pad")
        pad = list(c.arg("pad", c.arg("padding")))
        batch = c.cap.batch_axis(c.node.args[0])
        if batch is not None and batch >= c.rank() - len(pad) // 2:
            raise Unsupported("it pads the batch axis")
        value = c.arg("value", 0) or 0
        how = mode or c.arg("mode", "constant")
        return [{"kind": "pad", "pad": pad, **({"mode": how} if how != "constant" else {}),
                 **({"value": float(value)} if value else {})}]
    return handler


def _interpolate(mode: str):
    def handler(c: Call) -> list[dict]:
        needs_kind("interpolate")
        if c.cap.batch_axis(c.node.args[0]) != 0:
            raise Unsupported("the batch is not on axis 0")
        size = list(c.out_shape[1:])
        fields: dict = {"kind": "interpolate", "size": size, "mode": mode}
        if mode != "nearest" and c.arg("align_corners"):
            fields["align_corners"] = True
        return [fields]
    return handler


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    table: dict = {}
    for name, op in UNARY_ATEN.items():
        for variant in (name, f"{name}_"):
            packet = getattr(aten, variant, None)
            if packet is not None and "default" in packet.overloads():
                table[packet.default] = _unary(op)
    for name, op in BINARY_ATEN.items():
        for variant in (name, f"{name}_"):
            packet = getattr(aten, variant, None)
            for overload in ("Tensor", "Scalar", "default", "Tensor_Tensor", "Tensor_Scalar"):
                if packet is not None and overload in packet.overloads():
                    table[getattr(packet, overload)] = _binary(op)
    table.update({
        aten.rsub.Scalar: _rsub, aten.clamp.default: _clamp, aten.clamp_.default: _clamp,
        aten.sum.dim_IntList: _reduce("sum"), aten.amax.default: _reduce("amax"), aten.amin.default: _reduce("amin"),
        aten.softmax.int: _softmax(False), aten.log_softmax.int: _softmax(True),
        getattr(aten, "_softmax").default: _softmax(False), getattr(aten, "_log_softmax").default: _softmax(True),
        aten.constant_pad_nd.default: _pad("constant"), aten.pad.default: _pad(None),
        aten.upsample_nearest2d.vec: _interpolate("nearest"), aten.upsample_bilinear2d.vec: _interpolate("bilinear"),
    })
    for n in (1, 2, 3):
        for name, mode in (("reflection", "reflect"), ("replication", "replicate")):
            table[getattr(aten, f"{name}_pad{n}d").default] = _pad(mode)
    for several in (aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default, aten.unbind.int):
        table[several] = _several  # known, so not decomposed; the mapping states their outputs (split_outputs)
    return table


BINARY_ADD, BINARY_MUL, REDUCE_MEAN = _binary("add"), _binary("mul"), _reduce("mean")


def _several(c: Call):
    raise Unsupported("no block has several outputs")


def split_outputs(c: Call) -> list[dict]:
    """split, split_with_sizes and chunk as ``split`` (sizes from the outputs), unbind as ``unbind``."""
    name = getattr(c.node.target, "__name__", "").partition(".")[0]
    x = c.node.args[0]
    if name == "unbind":
        needs_kind("unbind")
        return [{"kind": "unbind", "dim": sample_dim(c, x, c.arg("dim", 0))}]
    dim = c.arg("dim", 0)
    parts = c.node.meta["val"]
    return split(c, [int(p.shape[dim]) for p in parts])
