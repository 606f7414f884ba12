"""Memory of a network: weight bytes, the inference peak over an execution order, and training memory.

The figures live in modules of one responsibility each, data flowing one way; this module is their
one public entry point:

* ``memory_units``: bytes per activation and weight by dtype, optimizer state, the attention kernels
  (and the blocks torch runs by the math kernel though a fused one is asked for);
* ``memory_inference``: weights and the activation peak of an eval pass over an execution order,
  each block's inner peak from ``block_memory``;
* ``memory_order``: the execution order with the lowest inference peak;
* ``memory_training``: weights, gradients, optimizer state and the activations saved for backward.

Every figure is measured against torch (``memory_probe``; ``benchmarks/memory.md``).
"""

from __future__ import annotations

from scalelab.analysis.memory_inference import BlockMemory, InferenceMemory, inference_memory
from scalelab.analysis.memory_order import EXACT_STATE_LIMIT, BestOrder, best_order
from scalelab.analysis.memory_training import BlockTraining, TrainingMemory, training_memory
from scalelab.analysis.memory_units import (
    ATTENTION_KERNELS, DTYPE_BYTES, INFERENCE_KERNELS, OPTIMIZER_STATES, WEIGHT_BYTES, dtype_bytes, fallback_note,
    math_fallback, weight_bytes,
)

__all__ = [
    "ATTENTION_KERNELS", "DTYPE_BYTES", "EXACT_STATE_LIMIT", "INFERENCE_KERNELS", "OPTIMIZER_STATES", "WEIGHT_BYTES",
    "BestOrder", "BlockMemory", "BlockTraining", "InferenceMemory", "TrainingMemory",
    "best_order", "dtype_bytes", "fallback_note", "inference_memory", "math_fallback", "training_memory", "weight_bytes",
]
