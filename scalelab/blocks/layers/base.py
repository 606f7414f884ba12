"""What every layer kind shares: shapes, the records each face returns, the face contract, and the
registry that maps a layer node to its definition.

A *primitive* layer kind (conv, batchnorm, relu, ...) is one class that answers every question a
consumer asks about it, its *faces*:

================  ================================================================  ===================
face              answer                                                            consumer
================  ================================================================  ===================
``out_shape``     output shape for an input shape (raises ShapeError)              walk, every other
``cost``          params, MACs, other ops, in/out elements per sample (LayerCost)  costs, latency, fit
``train_macs``    forward, input-gradient and weight-gradient MACs per sample      training compute
``saved``         what autograd keeps for backward, per device kind (Saved)        training memory
``inner_peak``    elements it allocates and holds at once in eval (InnerPeak)      inference memory
``latency``       its latency class and the width thin kernels depend on           latency, fit
``torch_module``  the ``nn.Module`` that runs it (torch imported inside only)      scalelab.build
================  ================================================================  ===================

A face a kind does not define raises ``MissingFace`` naming the kind and the face: no consumer ever
falls back to a default. Where a face is one of the behaviours many kinds share, a kind states it in
one word by naming that behaviour (``train_macs = no_macs``, ``inner_peak = fresh_output``); it still
states every face. Wiring nodes (``wiring.py``) define the same protocol recursively.

Four names, four concepts: a *block kind* is what a spec writes (``kind: maxpool``, scalelab.blocks);
a *layer kind* is a primitive or wiring node here (``Pool.kind == "pool"``); a *cost label* names a
cost record in reports (``LayerCost.label``, such as ``"maxpool"``); a *latency class*
(``LatencyClass``) picks a device profile's efficiency and per-layer overhead.

Shapes are per sample: ``(channels, height, width)`` for feature maps, ``(features,)`` for vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, NoReturn, Optional, TypeVar, cast

from scalelab.errors import ScalelabError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk
    from scalelab.blocks.layers.wiring import Node

Shape = tuple[int, ...]
#: device kinds whose torch kernels the ``saved`` face distinguishes (DeviceProfile.kind)
DEVICE_KINDS = ("cpu", "gpu")


class LatencyClass(str, Enum):
    """What a layer's kernel is to a device: picks a profile's compute efficiency and per-layer
    overhead (scalelab.analysis.latency). ``FREE`` layers launch no kernel (views, eval identities)."""

    DENSE_CONV = "dense_conv"
    POINTWISE_CONV = "pointwise_conv"
    GROUPED_CONV = "grouped_conv"
    DEPTHWISE_CONV = "depthwise_conv"
    STRIDED_DEPTHWISE_CONV = "strided_depthwise_conv"
    LINEAR = "linear"
    POOL = "pool"
    NORM = "norm"
    ELEMENTWISE = "elementwise"
    FREE = "free"

    def __str__(self) -> str:
        return self.value


#: the classes a device profile can give figures for: every class that launches a kernel
KERNEL_CLASSES = tuple(c for c in LatencyClass if c is not LatencyClass.FREE)


class ShapeError(ValueError):
    """A layer cannot accept the shape it is given."""


class MissingFace(NotImplementedError):
    """A consumer asked a layer kind for a face the kind does not define."""


class UnknownLayer(TypeError):
    """A layer tree holds an object that is no registered layer kind."""


def elements(shape: Shape) -> int:
    return math.prod(shape)


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def spatial(shape: Shape, what: str) -> tuple[int, int, int]:
    """``shape`` as (channels, height, width); a ShapeError naming ``what`` for any other rank."""
    if len(shape) != 3:
        raise ShapeError(f"{what} needs a (channels, height, width) feature map, got {fmt_shape(shape)}")
    c, h, w = shape
    return c, h, w


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window, exactly as torch computes it (incl. ceil_mode's edge rule)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1  # torch drops a last window that would start entirely in the right padding
    return out


# --------------------------------------------------------------------------------------------------
# What the faces return


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer at one input shape, per sample; ``node`` is the layer it belongs to (for a
    residual's add, a concatenation or a gate's multiply: that wiring node)."""

    label: str  # the cost label reports show (conv, maxpool, relu, add, ...)
    params: int = 0
    macs: int = 0
    ops: int = 0
    in_elems: int = 0
    out_elems: int = 0
    weight_ops: int = 0  # ops on the weights alone (weight standardisation, a gathered bias): once per pass, whatever the batch
    weight_macs: int = 0  # MACs on the weights alone (Swin V2's position-bias MLP): once per pass, whatever the batch
    node: "Node | None" = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(frozen=True)
class TrainMacs:
    """Multiply-accumulates of one training step, per sample, bias excluded (the MACs convention):
    the forward pass, the gradient of the input and the gradient of the weights."""

    forward: int = 0
    grad_input: int = 0
    grad_weight: int = 0


@dataclass(frozen=True)
class Saved:
    """What autograd keeps for a layer's backward, when anything on its path needs a gradient."""

    input: bool = False  # its input tensor
    output: bool = False  # its output tensor
    per_sample_elements: int = 0  # further tensors in the activation dtype, elements per sample
    per_sample_bytes: int = 0  # further tensors of a fixed width (int64 indices, bool masks), bytes per sample
    fixed_bytes: int = 0  # tensors whose size does not depend on the batch (batchnorm's fp32 statistics)
    fixed_elements: int = 0  # such tensors in the activation dtype (a standardised weight)
    view: bool = False  # the output is a view of the input: same storage, saved once
    inputs: tuple[bool, ...] = ()  # a layer of several inputs (matmul, attention): which of them it keeps


@dataclass(frozen=True)
class InnerPeak:
    """Elements per sample a node allocates in eval mode: its output (0 when the output is a view or
    the input itself) and the most alive at once while it runs (the output included)."""

    out: Shape
    out_elems: int
    peak_elems: int


@dataclass
class Walk:
    out: Shape
    costs: list[LayerCost] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Behaviours many kinds share: a kind states such a face in one word (``train_macs = no_macs``)


def no_macs(self: object, s: Shape, out: Shape) -> TrainMacs:
    """``train_macs`` of a layer with no matrix product: its arithmetic is all other ops."""
    return TrainMacs()


def fresh_output(self: object, s: Shape, out: Shape) -> InnerPeak:
    """``inner_peak`` of a layer that writes a new output and holds nothing else while it runs."""
    n = elements(out)
    return InnerPeak(out, n, n)


def allocates_nothing(self: object, s: Shape, out: Shape) -> InnerPeak:
    """``inner_peak`` of a view or an eval-mode identity: its output is (a view of) its input."""
    return InnerPeak(out, 0, 0)


def view_of_input(self: object, s: Shape, out: Shape, weights_trained: bool, input_grad: bool,
                  device: str) -> Saved:
    """``saved`` of a view: it shares its input's storage, and its backward needs only sizes."""
    return Saved(view=True)


# --------------------------------------------------------------------------------------------------
# The face contract and the registry

#: layer kind name -> its class; every node of a layer tree must be an instance of one of them
REGISTRY: dict[str, type] = {}
_CLASSES: set[type] = set()
_Kind = TypeVar("_Kind", bound=type)


def register(cls: _Kind) -> _Kind:
    """Class decorator: make a layer kind known to every consumer under ``cls.kind``."""
    kind = cls.__dict__.get("kind")
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"layer kind {cls.__name__} must declare its kind name")
    if kind in REGISTRY and REGISTRY[kind] is not cls:
        raise TypeError(f"layer kind '{kind}' is defined twice ({REGISTRY[kind].__name__}, {cls.__name__})")
    REGISTRY[kind] = cls
    _CLASSES.add(cls)
    return cls


def definition(node: object) -> Node:
    """The registered definition of a layer node (the node itself); an error for anything else."""
    if type(node) not in _CLASSES:
        raise UnknownLayer(f"{type(node).__name__} is not a registered layer kind "
                           f"(known: {', '.join(sorted(REGISTRY))})")
    return cast("Node", node)  # every registered class is one of Node's


def latency_of(node: object) -> tuple[LatencyClass, Optional[int]]:
    """A layer's ``latency`` face, checked: a class that is no ``LatencyClass`` (a bare or misspelled
    string) is an error, never a silent default efficiency."""
    latency_class, width = definition(node).latency()
    if not isinstance(latency_class, LatencyClass):
        raise TypeError(f"layer kind '{getattr(node, 'kind', type(node).__name__)}' gives the latency class "
                        f"{latency_class!r}; its latency face must return a LatencyClass "
                        f"({', '.join(LatencyClass)})")
    return latency_class, width


def missing_face(node: object, face: str) -> NoReturn:
    raise MissingFace(f"layer kind '{getattr(node, 'kind', type(node).__name__)}' defines no '{face}' face")


def check_device(device: str) -> str:
    """``device`` when it is a device kind the ``saved`` face knows; an error naming the choices else."""
    if device not in DEVICE_KINDS:
        raise ScalelabError(f"unknown device kind '{device}'{did_you_mean(device, DEVICE_KINDS)}; "
                            f"one of {', '.join(DEVICE_KINDS)}")
    return device


class Primitive:
    """Base of every primitive layer kind: the faces (each raises ``MissingFace`` unless the kind
    defines it), and the node protocol the consumers call, derived from the faces."""

    kind: ClassVar[str]
    has_weights: ClassVar[bool] = False  # trainable parameters: the output needs a gradient when they train

    # ---- faces ----------------------------------------------------------------------------------
    def out_shape(self, s: Shape) -> Shape:
        missing_face(self, "out_shape")

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        missing_face(self, "cost")

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        missing_face(self, "train_macs")

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """Asked only when autograd records the layer: its weights train or its input needs a gradient."""
        missing_face(self, "saved")

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        missing_face(self, "inner_peak")

    def latency(self) -> tuple[LatencyClass, Optional[int]]:
        """(latency class, output channels or features for the thin-kernel rule, or None)."""
        missing_face(self, "latency")

    def torch_module(self) -> nn.Module:
        missing_face(self, "torch_module")

    # ---- node protocol --------------------------------------------------------------------------
    def walk(self, shape: Shape) -> Walk:
        out = self.out_shape(shape)
        return Walk(out, [self.cost(shape, out)])

    def peak(self, shape: Shape) -> InnerPeak:
        return self.inner_peak(shape, self.out_shape(shape))

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.primitive(self, x)

    def module(self) -> nn.Module:
        return self.torch_module()
