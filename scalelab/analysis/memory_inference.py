"""Inference memory of a network: weight bytes and the activation peak over an execution order.

The model (layer granularity, matching the eval-mode module ``scalelab.build`` makes): blocks run one
at a time in an execution order (a topological order of the DAG; training-only blocks do not run).
Between blocks, the tensors alive are the network input (its caller holds it for the whole pass) and
every block output whose consumers have not all run yet (the network output is never freed). While
block ``b`` runs, its inputs stay alive and its own layers allocate temporaries and its output; the
block's contribution is its inner peak (``scalelab.analysis.block_memory``: the most elements its
layers hold at once, e.g. an inverted residual's expanded tensors, or the finished branch outputs of
an inception module). The bytes alive while ``b`` runs are the tensors kept for later blocks plus
that inner peak; the network peak is the largest such sum. A block whose output is a view or its
input itself (flatten, eval dropout) shares its input's storage, counted once; so do the several
outputs of a split or unbind (views of its input: the storage lives until the last block taking any
of them has run). A source block (a learned tensor expanded to the batch) holds no activation
memory: its bytes are weight bytes (a buffer's are in neither, as batchnorm's statistics). Weights
are counted apart (``weight_bytes``). Attention holds what its kernel writes while it runs
(``INFERENCE_KERNELS``): a fused one's figure only where torch can run it (``math_fallback``).
Measured against torch in ``benchmarks/memory.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

from scalelab.analysis.block_memory import block_peak
from scalelab.analysis.memory_units import attends, check_batch, check_kernel, dtype_bytes, math_fallback, weight_bytes
from scalelab.blocks.layers import Attention, elements
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph.network import INPUT, Network, ResolvedBlock


@dataclass(frozen=True)
class BlockMemory:
    name: str
    weight_bytes: int
    activation_bytes: int  # the block's output (a view of its input allocates none of it)
    inner_peak_bytes: int  # the most the block's own layers hold at once: temporaries and output
    alive_bytes: int  # activations alive at the block's inner peak, in the order used


@dataclass(frozen=True)
class InferenceMemory:
    dtype: str
    batch: int
    order: tuple[str, ...]
    weight_bytes: int
    peak_bytes: int  # activations alive at the peak
    peak_block: str
    blocks: dict[str, BlockMemory] = field(repr=False)
    attention_kernel: Optional[str] = None  # the kernel attention's inner peak assumes; None: no attention
    #: blocks whose attention torch runs by the math kernel though a fused one is asked for -> why
    math_blocks: dict[str, str] = field(default_factory=dict)
    model: str = ("layer granularity, as the built eval module runs: tensors kept for later blocks and the "
                  "network input, plus the running block's inputs, temporaries and output (no in-place "
                  "activations; flatten and eval dropout are views)")

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.peak_bytes


class Dag:
    """The inference part of a network as tensors (sizes in bytes, storages shared by views),
    consumers, and each block's inner peak."""

    def __init__(self, network: Network, nbytes: int, batch: int, attention_kernel: str = "math"):
        self.blocks = [b for b in network.blocks.values() if not b.training_only]
        scale = batch * nbytes
        self.size = {INPUT: scale * elements(network.input_shape)}
        self.inner = {}  # bytes a block's layers hold at their peak
        self.storage = {INPUT: INPUT}  # tensor -> the tensor whose storage it uses
        # the blocks each one takes from: a several-output block's outputs are views of one storage
        self.inputs = {b.name: list(dict.fromkeys(b.sources)) for b in self.blocks}
        for b in self.blocks:
            inner, self.inner[b.name] = block_peak(b.layers, b.in_shape, batch, nbytes, attention_kernel,
                                                   self._layout(b, scale))
            self.size[b.name] = scale * inner.out_elems
            # a view (flatten, eval dropout) shares its single input's storage; a source has its own, of no
            # activation bytes (a view of a weight)
            view = not inner.out_elems and self.inputs[b.name]
            self.storage[b.name] = self.storage[self.inputs[b.name][0]] if view else b.name
        self.consumers: dict[str, set[str]] = {t: set() for t in self.size}
        for name, ins in self.inputs.items():
            for t in ins:
                self.consumers[t].add(name)
        self.kept = {INPUT, network.output}  # the caller holds the input; the output is returned
        self.names = [b.name for b in self.blocks]

    def _layout(self, b: ResolvedBlock, scale: int) -> str:
        """How q, k and v of attention in ``b`` lie: inside a block the transformer kinds' token-major
        pieces; for the attention kind too where an input's storage is larger (an unbind's piece)."""
        if not isinstance(b.layers, Attention):
            return "token-major"
        qkv = zip(b.sources[:3], list(b.in_shape)[:3])  # a merge's list of shapes; a mask after them is no piece
        pieces = any(self.size[self.storage[t]] > scale * elements(s) for t, s in qkv)  # type: ignore[arg-type]
        return "token-major" if pieces else "own"

    def alive_after(self, done: frozenset) -> int:
        """Bytes alive once the blocks in ``done`` have run (each storage once)."""
        storages = {self.storage[t] for t in itertools.chain([INPUT], done)
                    if t in self.kept or not self.consumers[t] <= done}
        return sum(self.size[s] for s in storages)

    def ready(self, done: frozenset) -> list[str]:
        return [n for n in self.names if n not in done and all(i == INPUT or i in done for i in self.inputs[n])]

    def step(self, done: frozenset, name: str) -> int:
        """Bytes alive at the inner peak of ``name`` run after ``done``."""
        return self.alive_after(done) + self.inner[name]

    def trace(self, order: Iterable[str]) -> list[int]:
        done: frozenset = frozenset()
        alive = []
        for name in order:
            if name not in self.inputs:
                raise ScalelabError(f"execution order names '{name}', not an inference block{did_you_mean(name, self.names)}")
            missing = [i for i in self.inputs[name] if i != INPUT and i not in done]
            if missing:
                raise ScalelabError(f"execution order runs '{name}' before its input '{missing[0]}'")
            alive.append(self.step(done, name))
            done = done | {name}
        if len(done) != len(self.names):
            left = [n for n in self.names if n not in done]
            raise ScalelabError(f"execution order leaves out {len(left)} block(s), first '{left[0]}'")
        return alive


def inference_memory(network: Network, dtype: str = "fp32", batch: int = 1,
                     order: Optional[Iterable[str]] = None, attention_kernel: str = "math") -> InferenceMemory:
    """Weight bytes and the activation peak over ``order`` (default: the spec's execution order),
    attention run by ``attention_kernel`` (one of ``ATTENTION_KERNELS``)."""
    check_batch(batch)
    check_kernel(attention_kernel)
    nbytes = dtype_bytes(dtype)
    dag = Dag(network, nbytes, batch, attention_kernel)
    order = tuple(order) if order is not None else tuple(dag.names)
    alive = dag.trace(order)
    at = dict(zip(order, alive))
    peak_at = max(range(len(order)), key=lambda i: alive[i])
    rows = {
        b.name: BlockMemory(b.name, weight_bytes(dtype) * sum(c.params for c in b.costs), batch * nbytes * b.out_elems,
                            dag.inner[b.name], at[b.name])
        for b in dag.blocks
    }
    return InferenceMemory(dtype, batch, order, sum(r.weight_bytes for r in rows.values()),
                           alive[peak_at], order[peak_at], rows, attention_kernel=attention_kernel if attends(network, windows=True) else None,
                           math_blocks=math_fallback(network, attention_kernel))
