"""The units and choices the memory figures are stated in: bytes per activation and per weight by
dtype, optimizer state per weight, the attention kernels (and the blocks torch runs by the math
kernel though a fused one is asked for), and the checks of each."""

from __future__ import annotations

from scalelab.analysis.block_memory import fused_refusals
from scalelab.blocks.layers import Attention, WindowAttention
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph.network import Network

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
                     "fused": "a fused kernel (flash attention, as on CPU), which writes only its output and log-sum-exp "
                              "(window attention: beside its additive mask)"}


def dtype_bytes(dtype: str) -> int:
    if dtype not in DTYPE_BYTES:
        raise ScalelabError(f"unknown dtype '{dtype}'{did_you_mean(dtype, DTYPE_BYTES)}; one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def weight_bytes(dtype: str) -> int:
    """Bytes per weight held: the dtype's, or under autocast the fp32 weight and its fp16 copy."""
    return WEIGHT_BYTES.get(dtype, dtype_bytes(dtype))


def check_batch(batch: int) -> None:
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")


def check_kernel(attention_kernel: str) -> None:
    if attention_kernel not in ATTENTION_KERNELS:
        raise ScalelabError(f"unknown attention kernel '{attention_kernel}'{did_you_mean(attention_kernel, ATTENTION_KERNELS)}; "
                            f"one of {', '.join(ATTENTION_KERNELS)}")


def attends(network: Network, windows: bool = False) -> bool:
    """Whether any layer of ``network`` is attention (the figures then state their kernel); with
    ``windows``, Swin's window attention too (its inference figure follows the kernel; its training
    figure is torchvision's explicit products, whatever the kernel)."""
    kinds = (Attention, WindowAttention) if windows else (Attention,)
    return any(isinstance(c.node, kinds) for b in network.blocks.values() for c in b.costs)


def math_fallback(network: Network, attention_kernel: str, training: bool = False) -> dict[str, str]:
    """The blocks whose attention torch runs by the math kernel though ``attention_kernel`` asks for
    a fused one (``Attention.fused_refusal``: torch cannot), with why; their figures are the math
    kernel's. The blocks an inference pass runs, or with ``training`` every block."""
    if attention_kernel != "fused":
        return {}
    blocks = [b for b in network.blocks.values() if training or not b.training_only]
    refused = {b.name: "; ".join(fused_refusals(b.layers, b.in_shape)) for b in blocks}
    return {name: why for name, why in refused.items() if why}


def fallback_note(math_blocks: dict[str, str]) -> str:
    """What a fused figure says of ``math_fallback``'s blocks, appended to the kernel it states:
    empty when there are none, else the blocks that run the math kernel, grouped by why."""
    grouped: dict[str, list[str]] = {}
    for name, why in math_blocks.items():
        grouped.setdefault(why, []).append(name)
    return "".join(f"; fused requested, the math kernel for block{'s' * (len(names) > 1)} {', '.join(names)}: {why}"
                   for why, names in grouped.items())
