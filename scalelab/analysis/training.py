"""Training compute, exact: the multiply-adds of one training step (forward, backward) per block.

A layer with multiply-adds (conv, linear) costs in backward, at most (the standard decomposition of
a conv's backward into two convs, e.g. Chetlur et al. 2014, "cuDNN", §3):

  * input gradient  dX = conv_transpose(dY, W): one MAC per forward MAC, computed only when the
    layer's input requires a gradient (a trained layer upstream of it);
  * weight gradient dW = conv(X, dY): one MAC per forward MAC, computed only when the layer's own
    weights are trained (not frozen).

So below the first trained layer nothing flows back, and a frozen layer above it passes gradients
through without computing its own. Bias gradients are sums (no multiply-adds), as in the inference
convention. Every block runs in a training step, training-only heads included. Other ops (norm,
activation, pooling, add) are counted for the forward pass as at inference; their backward is not
counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scalelab.analysis.trace import layer_cost, trace
from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph import INPUT, Network

#: the primitives whose multiply-adds have backward counterparts: (input-gradient MACs, weight-gradient
#: MACs) per forward MAC. Every other primitive has no multiply-adds (its walked ``macs`` is zero).
BACKWARD_PER_FORWARD_MAC = {L.Conv: (1, 1), L.Linear: (1, 1)}

RULE = ("training step = forward + backward; backward = input gradients (one MAC per forward MAC of a conv or "
        "linear layer whose input needs a gradient) + weight gradients (one MAC per forward MAC of a trained "
        "conv or linear layer); frozen layers compute no weight gradients, and below the first trained layer no "
        "input gradients either")


@dataclass(frozen=True)
class BlockCompute:
    name: str
    trainable: bool
    forward_macs: int
    input_grad_macs: int
    weight_grad_macs: int
    forward_ops: int

    @property
    def backward_macs(self) -> int:
        return self.input_grad_macs + self.weight_grad_macs

    @property
    def total_macs(self) -> int:
        return self.forward_macs + self.backward_macs


@dataclass(frozen=True)
class TrainingCompute:
    batch: int
    freeze_until: Optional[str]
    blocks: dict[str, BlockCompute]

    def _sum(self, attr: str) -> int:
        return sum(getattr(b, attr) for b in self.blocks.values())

    forward_macs = property(lambda self: self._sum("forward_macs"))
    input_grad_macs = property(lambda self: self._sum("input_grad_macs"))
    weight_grad_macs = property(lambda self: self._sum("weight_grad_macs"))
    backward_macs = property(lambda self: self._sum("backward_macs"))
    total_macs = property(lambda self: self._sum("total_macs"))
    forward_ops = property(lambda self: self._sum("forward_ops"))

    def as_dict(self) -> dict:
        return {
            "unit": "multiply-accumulates per batch", "batch": self.batch, "freeze_until": self.freeze_until,
            "rule": RULE, "forward_macs": self.forward_macs, "backward_macs": self.backward_macs,
            "input_grad_macs": self.input_grad_macs, "weight_grad_macs": self.weight_grad_macs,
            "total_macs": self.total_macs, "forward_other_ops": self.forward_ops,
            "blocks": [{"name": b.name, "trainable": b.trainable, "forward_macs": b.forward_macs,
                        "input_grad_macs": b.input_grad_macs, "weight_grad_macs": b.weight_grad_macs,
                        "backward_macs": b.backward_macs, "total_macs": b.total_macs} for b in self.blocks.values()],
        }


@dataclass(frozen=True)
class _Flow:
    """What the walk carries along an edge: the tensor's shape and whether autograd tracks it."""

    shape: tuple
    grad: bool


class _Counter:
    def __init__(self, trainable: bool):
        self.trainable = trainable
        self.forward = self.input_grad = self.weight_grad = self.ops = 0

    def step(self, layer, inputs: list[_Flow]) -> _Flow:
        out, cost = layer_cost(layer, [x.shape for x in inputs])
        self.forward += cost.macs
        self.ops += cost.ops
        needs_input = any(x.grad for x in inputs)
        per_mac = BACKWARD_PER_FORWARD_MAC.get(type(layer))
        if per_mac is None and cost.macs:
            raise ScalelabError(f"no training-compute rule for {type(layer).__name__}")
        if per_mac is not None:
            self.input_grad += per_mac[0] * cost.macs if needs_input else 0
            self.weight_grad += per_mac[1] * cost.macs if self.trainable else 0
        return _Flow(out, needs_input or (self.trainable and cost.params > 0))


def frozen_blocks(network: Network, freeze_until: Optional[str]) -> set[str]:
    """``freeze_until`` and every block before it in execution order."""
    if freeze_until is None:
        return set()
    names = list(network.blocks)
    if freeze_until not in network.blocks:
        raise ScalelabError(f"--freeze-until: no block named '{freeze_until}'{did_you_mean(freeze_until, names)}")
    return set(names[: names.index(freeze_until) + 1])


def training_compute(network: Network, batch: int = 1, freeze_until: Optional[str] = None,
                     cached: frozenset = frozenset()) -> TrainingCompute:
    """MACs of one training step at ``batch``; blocks in ``cached`` are skipped (their outputs are read
    from a cache, which needs no gradient)."""
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    frozen = frozen_blocks(network, freeze_until)
    flows: dict[str, _Flow] = {INPUT: _Flow(network.input_shape, False)}
    rows = {}
    for b in network.blocks.values():
        if b.name in cached:
            flows[b.name] = _Flow(b.out_shape, False)
            continue
        counter = _Counter(b.name not in frozen)
        ins = [flows[i] for i in b.inputs]
        flows[b.name] = trace(b.layers, ins[0] if type(b.block).arity == 1 else ins, counter.step)
        rows[b.name] = BlockCompute(b.name, b.name not in frozen, batch * counter.forward,
                                    batch * counter.input_grad, batch * counter.weight_grad, batch * counter.ops)
    return TrainingCompute(batch, freeze_until, rows)
