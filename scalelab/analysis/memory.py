"""Memory of a network: weight bytes, the inference peak over an execution order, and training memory.

Inference model (layer granularity, matching the eval-mode module ``scalelab.build`` makes). Blocks
run one at a time in an execution order (a topological order of the DAG; training-only blocks do
not run). Between blocks, the tensors alive are the network input (its caller holds it for the whole
pass) and every block output whose consumers have not all run yet (the network output is never
freed). While block ``b`` runs, its inputs stay alive and its own layers allocate temporaries and
its output; the block's contribution is its inner peak (``scalelab.analysis.block_memory``: the most
elements its layers hold at once, e.g. an inverted residual's expanded tensors, or the finished
branch outputs of an inception module). The bytes alive while ``b`` runs are the tensors kept for
later blocks plus that inner peak; the network peak is the largest such sum. A block whose output is
a view or its input itself (flatten, eval dropout) shares its input's storage, counted once; so do
the several outputs of a split or unbind (views of its input: the storage lives until the last block
taking any of them has run). A source block (a learned tensor expanded to the batch) holds no
activation memory: its bytes are weight bytes (a buffer's are in neither, as batchnorm's statistics).
Weights are counted apart (``weight_bytes``). Attention holds what its kernel writes while it runs
(``INFERENCE_KERNELS``). Measured against torch in ``benchmarks/memory.md``.

Training model (per inner layer, from what torch's autograd keeps for backward): weights, a gradient
per trainable weight, optimizer state (SGD none, SGD with momentum one buffer, Adam two buffers per
trainable weight), and the activations saved for backward. Each layer's ``saved`` face says what it keeps;
a tensor saved by two layers (a conv's output is the batchnorm's saved input) is counted once.
Attention keeps what its kernel keeps (``ATTENTION_KERNELS``): eager PyTorch's math kernel the score
matrix, the fused kernels (flash, memory-efficient) only their log-sum-exp.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from collections.abc import Callable, Generator, Iterable
from typing import Any, Optional

from scalelab.analysis.block_memory import block_peak
from scalelab.analysis.train_walk import Tensor, TrainWalk, frozen_prefix, run_network
from scalelab.blocks.layers import Attention, Primitive, Shape, check_device, elements
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph.network import INPUT, Network, ResolvedBlock

#: tf32 stores fp32; amp (autocast) keeps activations in fp16 (its weights: weight_bytes)
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "amp": 2}
#: autocast keeps the fp32 weights and caches an fp16 copy of each for the forward
#: (torch/csrc/autocast_mode.cpp, cached_cast: leaf tensors that require grad)
WEIGHT_BYTES = {"amp": 4 + 2}
OPTIMIZER_STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2}  # buffers per trainable weight
#: the kernels attention may run by in training -> what the report says each keeps for backward
ATTENTION_KERNELS = {"math": "the math kernel (sdpa_kernel(SDPBackend.MATH)), which keeps the score matrix",
                     "fused": "a fused kernel (flash or memory-efficient), which keeps its log-sum-exp, not the "
                              "score matrix"}
#: the same kernels in an inference pass -> what the report says each holds while it runs
INFERENCE_KERNELS = {"math": "the math kernel (sdpa_kernel(SDPBackend.MATH)), which writes the score matrix and its "
                             "softmax",
                     "fused": "a fused kernel (flash attention, as on CPU), which writes only its output and log-sum-exp"}
#: exact search over execution orders visits at most this many sets of executed blocks
EXACT_STATE_LIMIT = 200_000


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ScalelabError(f"unknown dtype '{dtype}'{did_you_mean(dtype, DTYPE_BYTES)}; one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def weight_bytes(dtype: str) -> int:
    """Bytes per weight held: the dtype's, or under autocast the fp32 weight and its fp16 copy."""
    return WEIGHT_BYTES.get(dtype, dtype_bytes(dtype))


def _check_batch(batch: int) -> None:
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")


def _check_kernel(attention_kernel: str) -> None:
    if attention_kernel not in ATTENTION_KERNELS:
        raise ScalelabError(f"unknown attention kernel '{attention_kernel}'{did_you_mean(attention_kernel, ATTENTION_KERNELS)}; "
                            f"one of {', '.join(ATTENTION_KERNELS)}")


# --------------------------------------------------------------------------------------------------
# Inference


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
    model: str = ("layer granularity, as the built eval module runs: tensors kept for later blocks and the "
                  "network input, plus the running block's inputs, temporaries and output (no in-place "
                  "activations; flatten and eval dropout are views)")

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.peak_bytes


class _Dag:
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
    _check_batch(batch)
    _check_kernel(attention_kernel)
    nbytes = dtype_bytes(dtype)
    dag = _Dag(network, nbytes, batch, attention_kernel)
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
                           alive[peak_at], order[peak_at], rows, attention_kernel=attention_kernel if _attends(network) else None)


def _attends(network: Network) -> bool:
    return any(isinstance(c.node, Attention) for b in network.blocks.values() for c in b.costs)


@dataclass(frozen=True)
class BestOrder:
    order: tuple[str, ...]
    peak_bytes: int
    exact: bool  # True: no execution order has a lower peak; False: found greedily


def best_order(network: Network, dtype: str = "fp32", batch: int = 1,
               state_limit: int = EXACT_STATE_LIMIT, attention_kernel: str = "math") -> BestOrder:
    """An execution order with the lowest activation peak.

    Exact: a memoised search over the sets of executed blocks (the peak from a set onwards depends
    only on the set), minimising the largest step. It gives up past ``state_limit`` sets and falls
    back to a greedy order (run the ready block whose step is smallest, then the one that frees most)."""
    _check_kernel(attention_kernel)
    dag = _Dag(network, dtype_bytes(dtype), batch, attention_kernel)
    memo: dict[frozenset, tuple[int, Optional[str]]] = {}
    everything = frozenset(dag.names)

    def solve(done: frozenset) -> Generator[frozenset, tuple[int, Optional[str]], tuple[int, Optional[str]]]:
        """The best (peak, next block) from ``done`` on; it yields each set it needs solved first."""
        if done == everything:
            return 0, None
        if done in memo:
            return memo[done]
        if len(memo) >= state_limit:
            raise _TooMany
        best: tuple[Optional[int], Optional[str]] = (None, None)
        for name in dag.ready(done):
            here = dag.step(done, name)
            if best[0] is not None and here >= best[0]:
                continue
            rest, _ = yield done | {name}
            cost = max(here, rest)
            if best[0] is None or cost < best[0]:
                best = (cost, name)
        assert best[0] is not None  # a set short of everything has a ready block
        memo[done] = (best[0], best[1])
        return memo[done]

    try:
        peak, _ = _run_nested(solve, frozenset())
        order: list[str] = []
        done: frozenset[str] = frozenset()
        while done != everything:
            name = memo[done][1]
            assert name is not None  # every set short of everything was solved with a next block
            order.append(name)
            done = done | {name}
        return BestOrder(tuple(order), peak, True)
    except _TooMany:
        greedy = _greedy(dag)
        return BestOrder(tuple(greedy), max(dag.trace(greedy)), False)


def _run_nested(solve: Callable[[Any], Generator[Any, Any, Any]], root: Any) -> Any:
    """``solve(root)`` where ``solve`` is written as a recursion that yields each sub-problem and is
    sent its answer: the calls are kept on a list, not on Python's stack, so a network of thousands
    of blocks needs no raised recursion limit."""
    stack, answer = [solve(root)], None
    while stack:
        try:
            sub = stack[-1].send(answer)
        except StopIteration as finished:
            stack.pop()
            answer = finished.value
            continue
        stack.append(solve(sub))
        answer = None
    return answer


class _TooMany(Exception):
    pass


def _greedy(dag: _Dag) -> list[str]:
    done: frozenset[str] = frozenset()
    order: list[str] = []
    while len(order) < len(dag.names):
        name = min(dag.ready(done), key=lambda n: (dag.step(done, n), dag.alive_after(done | {n})))
        order.append(name)
        done = done | {name}
    return order


# --------------------------------------------------------------------------------------------------
# Training

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

    def _sum(self, attr: str) -> int:
        return sum(getattr(b, attr) for b in self.blocks.values())

    weight_bytes = property(lambda self: self._sum("weight_bytes"))
    gradient_bytes = property(lambda self: self._sum("gradient_bytes"))
    optimizer_bytes = property(lambda self: self._sum("optimizer_bytes"))
    saved_bytes = property(lambda self: self._sum("saved_bytes"))
    total_bytes = property(lambda self: self._sum("total_bytes"))


class _SavedWalk(TrainWalk):
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
        if isinstance(node, Attention) and self.attention_kernel == "fused":
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
    _check_batch(batch)
    nbytes = dtype_bytes(dtype)
    if optimizer not in OPTIMIZER_STATES:
        raise ScalelabError(f"unknown optimizer '{optimizer}'{did_you_mean(optimizer, OPTIMIZER_STATES)}; "
                            f"one of {', '.join(OPTIMIZER_STATES)}")
    frozen = frozen_prefix(network, freeze_until)
    check_device(device)
    _check_kernel(attention_kernel)
    rows = {}
    walks = run_network(network, frozen, lambda b, trainable: _SavedWalk(trainable, batch, nbytes, device, attention_kernel))
    for b, walker in walks:
        params = sum(c.params for c in b.costs)
        weights = weight_bytes(dtype) * params
        grads = (4 if dtype == "amp" else nbytes) * params if walker.trainable else 0  # autocast: fp32 gradients
        rows[b.name] = BlockTraining(b.name, walker.trainable, weights, grads, OPTIMIZER_STATES[optimizer] * grads,
                                     walker.bytes)
    return TrainingMemory(dtype, batch, optimizer, freeze_until, rows, attention_kernel if _attends(network) else None)
