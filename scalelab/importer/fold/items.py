"""The flat imported spec as items to fold: each block with what it reads, its shapes, and its
layers, each layer with the signature that exactness compares and the source state it holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.blocks.layers import LayerCost, Shape, Wiring
from scalelab.graph import INPUT, Network

#: what a layer is, for exactness: its cost label and figures, and the layer itself where it is a
#: primitive (kernel, stride, groups, eps, activation function...); a wiring node (add, gate) by its figures
Signature = tuple


def signature(cost: LayerCost) -> Signature:
    node = None if isinstance(cost.node, Wiring) else repr(cost.node)
    return (cost.label, cost.params, cost.macs, cost.ops, cost.in_elems, cost.out_elems, cost.weight_ops, node)


@dataclass
class Layer:
    signature: Signature
    state: list[str]  # the source state-dict keys this layer holds, in its module's order


@dataclass
class Item:
    """A block of the spec being folded: a primitive of the flat import or a folded block."""

    name: str
    fields: dict  # the block as written, without name and from
    inputs: list[str]  # the tensors it reads (a block's name, ``split.0``, or ``input``)
    in_shape: "Shape | list[Shape]"
    out_shape: Shape
    layers: list[Layer]
    node: object = field(default=None, repr=False)  # the layer tree (its data flow)
    training_only: bool = False
    folded: bool = False
    parts: tuple[str, ...] = ()  # the names of its outputs where it gives several
    members: list["Item"] = field(default_factory=list, repr=False)  # the items a folded block replaced

    @property
    def kind(self) -> str:
        return self.fields["kind"]

    @property
    def source_name(self) -> str:
        """The name of the flat block whose output this item's is (the module's shape is known by it)."""
        return self.members[-1].source_name if self.members else self.name

    @property
    def state(self) -> list[str]:
        return [k for layer in self.layers for k in layer.state]

    def tensors(self) -> tuple[str, ...]:
        return self.parts or (self.name,)


def state_counts(costs: list[LayerCost]) -> list[int]:
    """How many source state entries each layer's module holds (batch norm's counter aside, which
    state_keys places itself). torch: the layers' modules are built on the meta device."""
    import torch  # the importer's side: the modules say what state they hold

    from scalelab.build import to_torch  # torch: the spec-to-module side, loaded with the modules it builds

    counts = []
    with torch.device("meta"):
        for cost in costs:
            if isinstance(cost.node, Wiring) or cost.node is None:
                counts.append(0)
                continue
            keys = to_torch(cost.node).state_dict()
            counts.append(sum(1 for k in keys if not k.endswith("num_batches_tracked")))
    return counts


def _layers(costs: list[LayerCost], state: list[str], where: str) -> list[Layer]:
    layers, pending = [], list(state)
    for cost, count in zip(costs, state_counts(costs)):
        layers.append(Layer(signature(cost), pending[:count]))
        pending = pending[count:]
    if pending:
        raise ValueError(f"{where}: source state {pending} has no layer")
    return layers


def flat_items(network: Network, blocks: list[dict], held: list[tuple[list[str], list[str]]]) -> list[Item]:
    """One item per block of the flat spec (written as ``blocks``), in order, with the state ``held``
    gives each (a draft's blocks hold its state in order)."""
    state_of: dict[str, list[str]] = {}
    for names, state in held:
        pending = list(state)
        for name in names:
            costs = network.blocks[name].costs if name in network.blocks else []
            count = sum(state_counts(costs))
            state_of[name], pending = pending[:count], pending[count:]
    items = []
    for block in blocks:
        name = block["name"]
        resolved = network.blocks[name]
        fields = {k: v for k, v in block.items() if k not in ("name", "from", "training_only")}
        items.append(Item(name, fields, list(resolved.inputs), resolved.in_shape, resolved.out_shape,
                          _layers(resolved.costs, state_of.get(name, []), name), resolved.layers, resolved.training_only,
                          parts=tuple(resolved.tensors()) if resolved.outputs else ()))
    return items


def tensor_shapes(network: Network) -> dict[str, Shape]:
    """The shape of every tensor a block may read: the input, each block's output and each part."""
    shapes: dict[str, Shape] = {INPUT: network.input_shape}
    for b in network.blocks.values():
        shapes[b.name] = b.out_shape
        shapes.update(zip(b.tensors(), b.outputs) if b.outputs else ())
    return shapes
