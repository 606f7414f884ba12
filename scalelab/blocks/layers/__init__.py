"""Layer trees: the primitive layer kinds and the nodes that wire them, each defined once.

A block's ``layers()`` returns a tree of these nodes. Every consumer asks the nodes themselves:
``walk`` derives the output shape and per-layer costs, ``scalelab.build`` the torch modules,
``scalelab.analysis`` the memory, training compute and latency. Nothing here imports torch outside
the torch-module builders. ``base`` describes the faces a layer kind defines and the registry.

Adding a primitive: one module here with a ``@register``-ed ``Primitive`` subclass defining every
face, imported below, plus its tests.

Counting convention (stated in every report):
  * ``macs``: multiply-accumulates of conv, linear and matmul, bias excluded (torchvision ``_ops``,
    fvcore's conv/linear handles, and the papers' "FLOPs").
  * ``ops``: every other arithmetic or copy, by the per-element formula given on each primitive.
"""

from scalelab.blocks.layers.activation import ACTIVATIONS, Activation
from scalelab.blocks.layers.activation import FUNCTIONS, PReLU, arguments as activation_arguments
from scalelab.blocks.layers.attention import Attention
from scalelab.blocks.layers.matmul import Matmul
from scalelab.blocks.layers.norm_axes import GroupNorm, InstanceNorm, RMSNorm, TrailingLayerNorm
from scalelab.blocks.layers.base import (
    DEVICE_KINDS, KERNEL_CLASSES, REGISTRY, InnerPeak, LatencyClass, LayerCost, MissingFace, Primitive, Saved, Shape,
    ShapeError, TrainMacs, UnknownLayer, Walk, check_device, definition, latency_of, elements, fmt_shape, register, spatial,
)
from scalelab.blocks.layers.conv import Conv
from scalelab.blocks.layers.copies import Cat, Contiguous, Pad, Roll, Stack
from scalelab.blocks.layers.dropout import Dropout
from scalelab.blocks.layers.elementwise import Binary, Unary
from scalelab.blocks.layers.linear import Linear
from scalelab.blocks.layers.modern import ChannelLinear, ChannelShuffle, ChannelSlice, LayerNorm, LayerScale, chunks
from scalelab.blocks.layers.norm import BatchNorm, LocalResponseNorm
from scalelab.blocks.layers.opaque import Opaque
from scalelab.blocks.layers.plumbing import Param, Split, Unbind
from scalelab.blocks.layers.pool import AdaptiveAvgPool, Pool
from scalelab.blocks.layers.reduction import Reduce, Softmax
from scalelab.blocks.layers.resample import Interpolate
from scalelab.blocks.layers.reshape import Flatten, ZeroPadShortcut
from scalelab.blocks.layers.views import Expand, Permute, Reshape, Select, Slice
from scalelab.blocks.layers.windows import PatchConcat, WindowAttention
from scalelab.blocks.layers.wiring import Gate, Merge, Node, Parallel, Residual, Sequence, Wiring, peak, seq, walk
from scalelab.blocks.layers.token_scale import TrailingLayerScale
from scalelab.blocks.layers.unpack import Unpack

__all__ = [
    "ACTIVATIONS", "DEVICE_KINDS", "KERNEL_CLASSES", "LatencyClass", "REGISTRY", "check_device", "latency_of", "Activation", "AdaptiveAvgPool", "BatchNorm", "Conv",
    "ChannelLinear", "ChannelShuffle", "ChannelSlice", "LayerNorm", "LayerScale", "chunks",
    "Dropout", "Flatten", "Gate", "InnerPeak", "LayerCost", "Linear", "LocalResponseNorm", "Merge", "MissingFace", "Node",
    "Opaque",
    "Parallel", "Pool", "Primitive", "Residual", "Saved", "Sequence", "Shape", "ShapeError", "TrainMacs", "UnknownLayer",
    "Walk", "Wiring", "ZeroPadShortcut", "definition", "elements", "fmt_shape", "peak", "register", "seq", "spatial", "walk",
]
__all__ += ["Binary", "Cat", "Contiguous", "Expand", "Interpolate", "Pad", "Permute", "Reduce", "Reshape", "Roll",
            "Select", "Slice", "Softmax", "Stack", "Unary"]
__all__ += ["FUNCTIONS", "PReLU", "activation_arguments"]
__all__ += ["Param", "Split", "Unbind"]
__all__ += ["GroupNorm", "InstanceNorm", "RMSNorm", "TrailingLayerNorm"]
__all__ += ["Attention", "Matmul", "TrailingLayerScale", "Unpack"]
__all__ += ["PatchConcat", "WindowAttention"]
