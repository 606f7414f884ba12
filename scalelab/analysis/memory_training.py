"""Training memory of a network, per inner layer, from what torch's autograd keeps for backward:
weights, a gradient per trainable weight, optimizer state (SGD none, SGD with momentum one buffer,
Adam two buffers per trainable weight), and the activations saved for backward. Each layer's
``saved`` face says what it keeps; a tensor saved by two layers (a conv's output is the batchnorm's
saved input) is counted once. Attention keeps what its kernel keeps (``ATTENTION_KERNELS``): eager
PyTorch's math kernel the score matrix, the fused kernels (flash, memory-efficient) only their
log-sum-exp, where torch can run them (``math_fallback``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from scalelab.analysis.memory_units import (
    OPTIMIZER_STATES, attends, check_batch, check_kernel, dtype_bytes, math_fallback, weight_bytes,
)
from scalelab.analysis.train_walk import Tensor, TrainWalk, frozen_prefix, run_network
from scalelab.blocks.layers import Attention, Primitive, Shape, check_device
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph.network import Network


@dataclass(frozen=True)
class BlockTraining:
    name: str
    trainable: bool
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    saved_bytes: int  # activations this block's layers keep for backward (first keeper pays)

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + self.saved_bytes


@dataclass(frozen=True)
class TrainingMemory:
    dtype: str
    batch: int
    optimizer: str
    freeze_until: Optional[str]
    blocks: dict[str, BlockTraining] = field(repr=False)
    attention_kernel: Optional[str] = None  # the kernel attention's saved tensors assume; None: no attention
    #: blocks whose attention torch runs by the math kernel though a fused one is asked for -> why
    math_blocks: dict[str, str] = field(default_factory=dict)

    def _sum(self, attr: str) -> int:
        return sum(getattr(b, attr) for b in self.blocks.values())

    weight_bytes = property(lambda self: self._sum("weight_bytes"))
    gradient_bytes = property(lambda self: self._sum("gradient_bytes"))
    optimizer_bytes = property(lambda self: self._sum("optimizer_bytes"))
    saved_bytes = property(lambda self: self._sum("saved_bytes"))
    total_bytes = property(lambda self: self._sum("total_bytes"))


class SavedWalk(TrainWalk):
    """Walk a block's layer tree as torch runs it, charging what autograd keeps for backward (each
    layer's ``saved`` face on ``device``) to the block; a tensor kept twice is paid once."""

    def __init__(self, trainable: bool, batch: int, nbytes: int, device: str, attention_kernel: str = "math") -> None:
        super().__init__(trainable)
        self.batch, self.nbytes, self.device = batch, nbytes, device
        self.attention_kernel = attention_kernel
        self.bytes = 0  # saved bytes charged to this block (the first layer keeping a tensor pays)

    def keep(self, t: Tensor) -> None:
        if not t.storage.saved:
            t.storage.saved = True
            self.bytes += self.batch * self.nbytes * t.storage.elems

    def layer(self, node: Primitive, x: Tensor, out_shape: Shape, trained: bool) -> Tensor:
        saved = node.saved(x.shape, out_shape, trained, x.grad, self.device)
        grad = x.grad or trained
        out = Tensor(out_shape, grad, x.storage if saved.view else None)
        if not grad:
            return out  # nothing on this path needs a gradient: autograd records nothing
        if saved.input:
            self.keep(x)
        if saved.output:
            self.keep(out)
        self.bytes += self.batch * (saved.per_sample_bytes + self.nbytes * saved.per_sample_elements) + saved.fixed_bytes \
            + self.nbytes * saved.fixed_elements
        return out

    def several(self, node: Primitive, xs: list[Tensor], out_shape: Shape) -> Tensor:
        out = super().several(node, xs, out_shape)
        if not out.grad:
            return out
        if isinstance(node, Attention) and node.runs_fused([t.shape for t in xs], self.attention_kernel):
            saved = node.fused_saved([t.shape for t in xs], out_shape)
        else:
            saved = node.saved([t.shape for t in xs], out_shape, False, tuple(t.grad for t in xs),  # type: ignore[arg-type]  # its shapes, each input's need
                               self.device)
        for t, keep in zip(xs, saved.inputs):
            if keep:
                self.keep(t)
        if saved.output:
            self.keep(out)
        self.bytes += self.batch * (saved.per_sample_bytes + self.nbytes * saved.per_sample_elements) + saved.fixed_bytes \
            + self.nbytes * saved.fixed_elements
        return out


def training_memory(network: Network, dtype: str = "fp32", batch: int = 1, optimizer: str = "sgd",
                    freeze_until: Optional[str] = None, device: str = "cpu",
                    attention_kernel: str = "math") -> TrainingMemory:
    """Weights, gradients, optimizer state and saved activations, per block, for one training step.

    Every block runs, training-only heads included. ``freeze_until`` names a block: it and every block
    before it in execution order keep no gradients or optimizer state, and record nothing for backward
    unless an input needs a gradient. All tensors use ``dtype`` except max-pool indices (int64) and
    batchnorm statistics (fp32). ``device`` is the kind of device torch trains on ("cpu" or "gpu"):
    some kernels keep different tensors there (dropout's mask: see ``Dropout.saved``). ``attention_kernel``
    is one of ``ATTENTION_KERNELS``: what scaled dot-product attention keeps for backward."""
    check_batch(batch)
    nbytes = dtype_bytes(dtype)
    if optimizer not in OPTIMIZER_STATES:
        raise ScalelabError(f"unknown optimizer '{optimizer}'{did_you_mean(optimizer, OPTIMIZER_STATES)}; "
                            f"one of {', '.join(OPTIMIZER_STATES)}")
    frozen = frozen_prefix(network, freeze_until)
    check_device(device)
    check_kernel(attention_kernel)
    rows = {}
    walks = run_network(network, frozen, lambda b, trainable: SavedWalk(trainable, batch, nbytes, device, attention_kernel))
    for b, walker in walks:
        params = sum(c.params for c in b.costs)
        weights = weight_bytes(dtype) * params
        grads = (4 if dtype == "amp" else nbytes) * params if walker.trainable else 0  # autocast: fp32 gradients
        rows[b.name] = BlockTraining(b.name, walker.trainable, weights, grads, OPTIMIZER_STATES[optimizer] * grads,
                                     walker.bytes)
    return TrainingMemory(dtype, batch, optimizer, freeze_until, rows, attention_kernel if attends(network) else None,
                          math_fallback(network, attention_kernel, training=True))
