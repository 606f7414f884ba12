"""A layer tree walked as one training step runs it: which tensors autograd records ops on.

A tensor needs a gradient when its input did or when the layer that made it has trained weights
(the network input needs none). Wiring nodes call back ``run``, ``joined`` (add, cat: the result
needs a gradient if any input does) and ``product`` (a gate's multiply); each primitive goes to
``primitive``, which the consumers (training memory, training compute) extend. A source (a learned
tensor) goes to ``source``: a view of a weight, it holds no activation storage, and needs a gradient
when it trains. The outputs of a split are views sharing its input's storage.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Callable, Collection, Iterator, Optional, TypeVar

from scalelab.blocks.layers import Node, Primitive, Shape, definition, elements
from scalelab.graph.network import INPUT, Network, ResolvedBlock


@dataclass(eq=False)
class Storage:
    elems: int
    saved: bool = False  # already kept for backward by some layer


@dataclass(eq=False)
class Tensor:
    shape: Shape
    grad: bool  # whether autograd records the ops on it
    storage: Storage = field(init=False)
    shares: InitVar[Optional[Storage]] = None  # the storage of the tensor it is a view of; None: its own

    def __post_init__(self, shares: Optional[Storage]) -> None:
        self.storage = shares if shares is not None else Storage(elements(self.shape))


class TrainWalk:
    #: the kernel scaled dot-product attention runs by: "math" (keeps the score matrix) or "fused"
    attention_kernel = "math"
    #: samples in the step (each consumer sets its own): whether torch can fold the batch into a view
    batch = 1

    def __init__(self, trainable: bool) -> None:
        self.trainable = trainable  # the block's weights are trained

    def run(self, node: Node, x: "Tensor | list[Tensor]") -> Tensor:
        return definition(node).train(self, x)  # type: ignore[arg-type]  # a Merge gets its inputs' list, any other node one tensor

    def joined(self, shape: Shape, inputs: list[Tensor]) -> Tensor:
        return Tensor(shape, any(t.grad for t in inputs))

    def product(self, x: Tensor, g: Tensor) -> Tensor:
        """x * g: the gradient of each factor needs the other, kept only if that gradient is needed."""
        if g.grad:
            self.keep(x)
        if x.grad:
            self.keep(g)
        return Tensor(x.shape, x.grad or g.grad)

    def keep(self, t: Tensor) -> None:
        """Autograd keeps ``t`` for backward (nothing to do unless memory is counted)."""

    def source(self, node: Primitive, trainable: bool) -> Tensor:
        """A learned tensor (or a buffer) expanded to the batch: its storage is the weight's."""
        return Tensor(node.out_shape(()), trainable and self.trainable, Storage(0))

    def primitive(self, node: Primitive, x: Tensor) -> Tensor:
        out_shape = node.out_shape(x.shape)
        trained = node.has_weights and self.trainable
        return self.layer(node, x, out_shape, trained)

    def layer(self, node: Primitive, x: Tensor, out_shape: Shape, trained: bool) -> Tensor:
        return Tensor(out_shape, x.grad or trained)

    def several(self, node: Primitive, xs: list[Tensor], out_shape: Shape) -> Tensor:
        """A primitive of several inputs and no weights (matmul, attention), recorded when an input
        needs a gradient; its ``grad_macs`` and ``saved`` faces take each input's own need."""
        return Tensor(out_shape, any(t.grad for t in xs))


def frozen_prefix(network: Network, freeze_until: Optional[str]) -> set[str]:
    """The blocks whose weights do not train: ``freeze_until`` (a block, or a stage: its last block)
    and every block before it in execution order (none when it is None)."""
    if freeze_until is None:
        return set()
    names = list(network.blocks)
    last = network.block_named(freeze_until, "--freeze-until")
    return set(names[: names.index(last) + 1])


Walker = TypeVar("Walker", bound=TrainWalk)


def run_network(network: Network, frozen: Collection[str], walker_for: Callable[[ResolvedBlock, bool], Walker]
                ) -> Iterator[tuple[ResolvedBlock, Walker]]:
    """Walk every block (training-only heads included: they run in training) in execution order;
    yield each block with the walker ``walker_for(block, trainable)`` that walked it."""
    tensors = {INPUT: Tensor(network.input_shape, False)}
    for b in network.blocks.values():
        walker = walker_for(b, b.name not in frozen)
        ins = [tensors[i] for i in b.inputs]
        out = tensors[b.name] = walker.run(b.layers, ins[0] if type(b.block).arity == 1 else ins)
        for name, shape in zip(b.tensors(), b.outputs):  # several outputs: views of what the block gives
            tensors[name] = Tensor(shape, out.grad, out.storage)
        yield b, walker
