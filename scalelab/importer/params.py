"""A parameter read as a tensor operand (a layer scale ``x * gamma``, a bias added by hand, a class
token) becomes a ``param`` block: the tensor as the operation reads it, after any views of the
parameter (``gamma.reshape(1, -1, 1, 1)``), its axis that lines up with the batch marked. An operand
computed from parameters and constants becomes the source block that recomputes it, where one does
(positions.py: Swin's relative position bias and shifted-window mask)."""

from __future__ import annotations

from scalelab.importer.capture import BatchMerged, Captured, scope_of
from scalelab.importer.positions import COMPUTED, recomputed
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
            raise Unsupported(COMPUTED)
        node = node.args[0]
    return node


def short_name(node) -> str:
    packet = getattr(node.target, "_overloadpacket", None)
    return packet.__name__ if packet is not None else ""


def operand_param(cap: Captured, reader, operand) -> tuple[dict, list[str], list, str]:
    """The source block's fields for ``operand`` as ``reader`` reads it, the source state it holds,
    every placeholder it reads and its block name: a ``param`` (a parameter or buffer through views),
    or a ``position_bias`` or ``window_mask`` that gives the operand's value (positions.py)."""
    try:
        source = _source(cap, operand)
    except Unsupported:
        source = None
    learned = source is not None and cap.state[source] in cap.trainable
    found = None if learned else recomputed(cap, operand, cached=source is not None)
    if found is not None:
        fields, state, nodes = found
        name = state[0] if len(state) == 1 else f"{scope_of(operand)}.{fields['kind']}".lstrip(".")
    elif source is None:
        raise Unsupported(COMPUTED)
    else:
        needs_kind("param")
        fields, state, nodes = {"kind": "param", "trainable": learned}, [cap.state[source]], [source]
        name = cap.state[source]
    shape = [int(d) for d in operand.meta["val"].shape]
    return {**fields, **_placed(cap, reader, shape)}, state, nodes, name


def _placed(cap: Captured, reader, shape: list[int]) -> dict:
    """``shape`` and, where an axis of it lines up with the reader's batch, ``batch_axis``."""
    rank = len(cap.torch_shape(reader) or ())
    try:
        place = cap.place(reader)
    except BatchMerged as exc:
        raise Unsupported(str(exc)) from None
    fields: dict = {"shape": shape}
    matrix = 2 if short_name(reader) in ("mm", "bmm", "matmul") else 0  # a product's last two axes are its matrix
    if place is not None and rank - len(shape) <= place.axis < rank - matrix:
        axis = place.axis - (rank - len(shape))
        if shape[axis] != 1:
            raise Unsupported("a parameter operand spans the batch axis")
        if place.merged == 1:  # per sample, an axis the batch is merged into stays: the operand broadcasts on it
            fields["batch_axis"] = axis
    return fields
