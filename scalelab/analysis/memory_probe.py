"""What torch really holds: the peak of live activation bytes during an inference pass, and the
memory of one real training step.

CPU (and any device): a ``TorchDispatchMode`` sees every tensor an operator returns during the pass;
each new storage is counted once, from its creation until a weakref finalizer reports it freed.
Parameters and buffers exist before the pass and are never counted; views share their base's
storage and add nothing (a view of a parameter, as a source block's expanded tensor, included). Memory an operator uses internally and frees before returning (im2col
buffers, a decomposed operator's intermediates) is not seen, but for attention: in inference mode
``scaled_dot_product_attention`` reaches the mode as one operator, so the mode runs it as its parts
(and their parts, down to operators with kernels of their own), each counted. Under the math kernel
those are the scaled q and k^T, the scores, the probabilities and the layout copies the batched
products make, as a ``no_grad`` pass allocates them; under a fused kernel its output and log-sum-exp.
Networks without attention are counted as before. The input is created inside the pass, so it is
counted, and held by the caller until the forward returns, as in any ``model(x)`` call.

CUDA: ``torch.cuda.max_memory_allocated`` around the same pass, less what was allocated before it
(the weights); this also sees kernel workspaces and allocator rounding (blocks of 512 bytes).

torch is imported inside the functions: the analysis path never imports this module's torch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a module runs, never by the analysis path
    import torch
    from torch import nn

    from scalelab.build import Net
    from scalelab.graph.network import Network

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _live_bytes_mode(weights: "nn.Module | None" = None) -> Any:  # a TorchDispatchMode subclass, defined once torch is imported
    import torch
    from torch._C import DispatchKey
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    ATTENTION_OPS = {torch.ops.aten.scaled_dot_product_attention.default}

    # the storages of the module's parameters and buffers: a view of one is no new activation
    state = {t.untyped_storage().data_ptr() for t in [*weights.parameters(), *weights.buffers()]} if weights else set()

    class LiveBytes(TorchDispatchMode):
        """Bytes of the storages created while the mode is active and still alive; their peak."""

        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, int] = {}  # id of a live storage -> bytes
            self.live = self.peak = 0
            self.inside_attention = False

        def _decomposed(self, func: Any, args: tuple, kwargs: dict) -> Any:
            """Run a composite operator as its parts, each seen by this mode: in inference mode
            attention reaches the mode as one operator, though the math kernel it runs by allocates
            the scores, the probabilities and the layout copies its matrix products make."""
            if not func.has_kernel_for_dispatch_key(DispatchKey.CompositeImplicitAutograd):
                out = func(*args, **kwargs)  # a primitive operator: counted as any other
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor):
                        self._track(t.untyped_storage())
                return out
            outer, self.inside_attention = self.inside_attention, True
            try:
                with self:  # the parts dispatch to this mode again
                    return func.decompose(*args, **kwargs)
            finally:
                self.inside_attention = outer

        def __torch_dispatch__(self, func: Callable[..., Any], types: object, args: tuple = (),
                               kwargs: dict | None = None) -> Any:
            if self.inside_attention or func in ATTENTION_OPS:
                return self._decomposed(func, args, kwargs or {})
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self._track(t.untyped_storage())
            return out

        def _track(self, storage: torch.UntypedStorage) -> None:
            key = id(storage)  # torch keeps one Python object per live storage
            if key in self.sizes or storage.nbytes() == 0 or storage.data_ptr() in state:
                return
            self.sizes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._free, key)

        def _free(self, key: int) -> None:
            self.live -= self.sizes.pop(key)

    return LiveBytes()


def dispatch_peak(run: Callable[[], object], weights: "nn.Module | None" = None) -> int:
    """Peak bytes of tensors created by ``run()`` and alive at once (its result is dropped at the end),
    views of the parameters and buffers of ``weights`` apart."""
    import torch

    with torch.inference_mode():
        mode = _live_bytes_mode(weights)
        with mode:
            result = run()
            del result
        return mode.peak


def block_peaks(net: Net, input_shape: Sequence[int], batch: int = 1) -> dict[str, int]:
    """Peak live activation bytes while each block of a ``scalelab.build.Net`` runs (fp32, CPU, eval):
    the same dispatch-mode count, its peak taken per block between forward hooks."""
    import torch

    net = net.eval()
    mode = _live_bytes_mode(net)
    peaks: dict[str, int] = {}

    def start(module: nn.Module, args: object) -> None:
        mode.peak = mode.live  # the window's peak starts from what is alive now

    def stop(name: str) -> Callable[[nn.Module, object, object], None]:
        return lambda module, args, output: peaks.__setitem__(name, mode.peak)

    handles = []
    for name, module in zip(net.names, net.blocks):
        handles += [module.register_forward_pre_hook(start), module.register_forward_hook(stop(name))]
    try:
        with torch.inference_mode(), mode:
            net(torch.randn((batch, *input_shape)))
    finally:
        for h in handles:
            h.remove()
    return peaks


def inference_peak(module: nn.Module, input_shape: Sequence[int], batch: int = 1, dtype: str = "fp32",
                   device: str = "cpu") -> int:
    """Peak activation bytes of one eval-mode inference pass of ``module`` on a random input of
    ``(batch, *input_shape)``: counted by the dispatch mode on CPU, by the CUDA allocator on a GPU."""
    import torch

    torch_dtype = getattr(torch, DTYPES[dtype])
    module = module.eval().to(device=device, dtype=torch_dtype)
    shape = (batch, *input_shape)
    if not str(device).startswith("cuda"):
        return dispatch_peak(lambda: module(torch.randn(shape, dtype=torch_dtype, device=device)), module)
    with torch.inference_mode():
        module(torch.randn(shape, dtype=torch_dtype, device=device))  # warm-up: cuDNN picks its algorithms
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        module(torch.randn(shape, dtype=torch_dtype, device=device))
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base


def training_step(network: Network, optimizer: str = "sgd", batch: int = 1, freeze_until: str | None = None,
                  device: str = "cpu") -> dict[str, int]:
    """Bytes torch keeps over one real training step (forward, backward, optimizer step) of the
    network built from ``network`` (see ``module_training_step``), the blocks up to ``freeze_until``
    frozen."""
    import torch

    from scalelab.build import Net  # torch: only when a module is built

    torch.manual_seed(0)
    model = Net(network)
    if freeze_until is not None:
        names = list(network.blocks)
        for name in names[: names.index(freeze_until) + 1]:
            for p in model.block(name).parameters():
                p.requires_grad_(False)
    return module_training_step(model, network.input_shape, optimizer, batch, device)


def module_training_step(model: nn.Module, input_shape: Sequence[int], optimizer: str = "sgd", batch: int = 1,
                         device: str = "cpu") -> dict[str, int]:
    """Bytes torch keeps over one real training step of any ``model`` (a scalelab-built module or
    the original one a spec was imported from) on a random ``(batch, *input_shape)`` input, the
    parameters that do not require grad frozen: parameters, gradients, optimizer state (Adam's
    one-element step counters apart, as ``step_counter_bytes``) and the tensors autograd saves for
    backward (distinct storages, captured with ``saved_tensors_hooks``; parameters and buffers
    excluded)."""
    import torch

    torch.manual_seed(0)
    model = model.train().to(device)
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in state:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = {"sgd": lambda: torch.optim.SGD(trainable, lr=0.1),
           "sgd-momentum": lambda: torch.optim.SGD(trainable, lr=0.1, momentum=0.9),
           "adam": lambda: torch.optim.Adam(trainable)}[optimizer]()
    x = torch.randn(batch, *input_shape, device=device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)  # a tuple in training when auxiliary heads exist
        loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()  # sum saves nothing
    loss.backward()
    opt.step()
    state_tensors = [(k, t) for s in opt.state.values() for k, t in s.items() if torch.is_tensor(t)]
    return {
        "weight_bytes": sum(p.nbytes for p in model.parameters()),
        "gradient_bytes": sum(p.grad.nbytes for p in model.parameters() if p.grad is not None),
        "optimizer_bytes": sum(t.nbytes for k, t in state_tensors if k != "step"),
        "step_counter_bytes": sum(t.nbytes for k, t in state_tensors if k == "step"),
        "saved_bytes": sum(saved.values()),
    }
