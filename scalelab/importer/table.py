"""The one table from captured ATen operators to spec blocks.

Each entry maps an operator overload (``aten.conv2d.default``) to a handler ``handler(call) -> list
of block field dicts`` (a chain: the last block produces the node's output) or ``ALIAS`` (the node
passes its input through: a view that changes nothing the spec states, an identity in eval). A
handler raises ``Unsupported`` when the call uses options no block kind states. Adding an operator is
one entry in one of the ``ops_*`` modules; every handler reads the call's arguments by their ATen
schema names (``call.arg("stride")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from scalelab.blocks import KINDS
from scalelab.importer.capture import BatchMerged, Captured

ALIAS = "alias"


class Unsupported(Exception):
    """The operator, or the way it is called, has no exact spec block."""


def needs_kind(kind: str) -> None:
    """Refuse an operator whose block kind this scalelab does not have."""
    if kind not in KINDS:
        raise Unsupported(f"needs the '{kind}' block kind")


@dataclass
class Call:
    """A captured node as a handler sees it: its arguments by schema name, shapes per sample."""

    node: Any
    cap: Captured
    channels_last: bool = False  # the input is a feature map permuted to (height, width, channels)

    def arg(self, name: str, default: Any = None) -> Any:
        if name in self.node.kwargs:
            return self.node.kwargs[name]
        schema = getattr(self.node.target, "_schema", None)
        names = [a.name for a in schema.arguments] if schema is not None else []
        index = names.index(name) if name in names else -1
        return self.node.args[index] if 0 <= index < len(self.node.args) else default

    def shape(self, node) -> tuple[int, ...]:
        try:
            shape = self.cap.shape_of(node)
        except BatchMerged as exc:
            raise Unsupported(str(exc)) from None
        if shape is None:
            raise Unsupported("an input is not a tensor")
        return shape

    def place(self, node):
        """Where ``node``'s tensor holds the batch (capture.Place, or None), refused where it cannot be told."""
        try:
            return self.cap.place(node)
        except BatchMerged as exc:
            raise Unsupported(str(exc)) from None

    def in_line(self, operand) -> bool:
        """Whether ``operand`` holds the batch where the call's output does, counted from the last
        axis (as broadcasting lines axes up), alone or merged alike; one without a batch is."""
        theirs, ours = self.place(operand), self.place(self.node)
        if theirs is None:
            return True
        if ours is None or (theirs.merged, theirs.before) != (ours.merged, ours.before):
            return False
        return self.rank(operand) - theirs.axis == self.rank(self.node) - ours.axis

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.shape(self.node.args[0])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape(self.node)

    def rank(self, node=None) -> int:
        """The rank of the tensor as torch holds it, batch included."""
        return len(self.cap.torch_shape(node if node is not None else self.node.args[0]) or ())

    def state(self, name: str) -> "str | None":
        """The source's name of the parameter or buffer an argument is, None if the argument is None.
        A tensor computed from parameters (weight standardisation) is not one."""
        value = self.arg(name)
        if value is None:
            return None
        if value not in self.cap.state:
            raise Unsupported(f"its {name} is computed, not a parameter")
        return self.cap.state[value]

    def weight(self) -> str:
        """The learned weight of a conv or linear call: a buffer (a fixed filter) is refused, the
        spec's layers learn theirs."""
        name = self.state("weight")
        if name not in self.cap.trainable:
            raise Unsupported("its weight is a buffer (a fixed filter), not a parameter")
        return name

    def batch_first(self) -> None:
        """Refuse a call whose tensors do not hold the batch on axis 0 (the spec's layout)."""
        for n in [*self.node.all_input_nodes, self.node]:
            try:
                axis = self.cap.batch_axis(n)
            except BatchMerged as exc:
                raise Unsupported(str(exc)) from None
            if axis not in (0, None):
                raise Unsupported(f"the batch is on axis {axis}")


Handler = Callable[[Call], Any]


def _table() -> dict:
    from scalelab.importer import ops_activation, ops_compute, ops_shape, ops_tensor, ops_views

    table: dict = {}
    for module in (ops_tensor, ops_compute, ops_activation, ops_shape, ops_views):
        table.update(module.entries())
    return table


_TABLE: dict = {}


def table() -> dict:
    if not _TABLE:
        _TABLE.update(_table())
    return _TABLE


def handler_of(target) -> "Handler | None":
    return table().get(target)


def known(target) -> bool:
    """Whether the table has an entry for an operator (decomposition keeps those)."""
    return target in table() or target in PASSIVE


def _passive() -> set:
    import operator

    import torch

    aten = torch.ops.aten
    return {operator.getitem, aten.sym_size.int, aten.sym_numel.default, aten.sym_stride.int,
            operator.mul, operator.add, operator.sub, operator.floordiv, operator.truediv}


class _Lazy(set):
    """The operators that only move values between nodes (tuple parts, sizes), built on first use."""

    def __contains__(self, item) -> bool:
        if not len(self):
            self.update(_passive())
        return super().__contains__(item)


PASSIVE = _Lazy()


def label(target) -> str:
    """A readable name of an operator: aten.mul.Tensor, mylib.wiggle.default, operator.getitem."""
    name = getattr(target, "__name__", None)
    if getattr(target, "__module__", "") in ("_operator", "operator"):
        return f"operator.{name}"
    text = str(target)
    return text if "." in text else (name or text)
