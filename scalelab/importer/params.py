"""A parameter read as a tensor operand (a layer scale ``x * gamma``, a bias added by hand, a class
token) becomes a ``param`` block: the tensor as the operation reads it, after any views of the
parameter (``gamma.reshape(1, -1, 1, 1)``), its axis that lines up with the batch marked."""

from __future__ import annotations

from scalelab.importer.capture import Captured
from scalelab.importer.table import Unsupported, needs_kind

#: views of a parameter that only change its shape: the param block holds the viewed shape
RESHAPES = ("view", "reshape", "_unsafe_view", "unsqueeze", "squeeze", "flatten", "unflatten", "alias", "detach")


def _source(cap: Captured, operand):
    """The parameter or buffer ``operand`` is, through views that only reshape it (and a product by 1:
    ``addcmul``'s decomposition scales its first factor by its ``value``)."""
    node = operand
    while node not in cap.state:
        packet = getattr(getattr(node, "target", None), "_overloadpacket", None)
        times_one = packet is not None and packet.__name__ == "mul" and len(node.args) == 2 and node.args[1] == 1
        if node.op != "call_function" or packet is None or not (packet.__name__ in RESHAPES or times_one):
            raise Unsupported("an operand is computed from parameters (weight-side computation)")
        node = node.args[0]
    return node


def short_name(node) -> str:
    packet = getattr(node.target, "_overloadpacket", None)
    return packet.__name__ if packet is not None else ""


def operand_param(cap: Captured, reader, operand) -> tuple[dict, object]:
    """The param block's fields for ``operand`` as ``reader`` reads it, and the placeholder it is."""
    needs_kind("param")
    source = _source(cap, operand)
    shape = [int(d) for d in operand.meta["val"].shape]
    out = cap.full_shape(reader) or ()
    batch = cap.batch_axis(reader)
    fields: dict = {"kind": "param", "shape": shape, "trainable": cap.state[source] in cap.trainable}
    matrix = 2 if short_name(reader) in ("mm", "bmm", "matmul") else 0  # a product's last two axes are its matrix
    if batch is not None and len(out) - len(shape) <= batch < len(out) - matrix:
        axis = batch - (len(out) - len(shape))
        if shape[axis] != 1:
            raise Unsupported("a parameter operand spans the batch axis")
        fields["batch_axis"] = axis
    return fields, source
