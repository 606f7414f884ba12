"""Activation functions: the one list of their names, parameters, op counts, saved tensors and torch
modules; the elementwise ``Activation`` and PReLU, whose slopes are learned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, NamedTuple, Optional, Union, cast

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, check_device, elements, fmt_shape,
    fresh_output, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: a parameter's value: a real number, or a word (GELU's ``approximate``)
Value = Union[float, str]
#: a parameter the function needs and has no default for (nn.Threshold's ``threshold`` and ``value``)
REQUIRED = None


class Function(NamedTuple):
    ops: int  # per output element, from the defining formula
    saves: str  # "in", "out" or "": which of input and output torch's derivative formula keeps
    torch_name: str  # the torch.nn class
    params: Mapping[str, Optional[Value]] = {}  # the torch.nn class's keyword arguments and their defaults
    extra: int = 0  # further tensors it keeps for backward, elements per input element
    temp: int = 0  # further tensors alive in eval (inference mode) beside its output, elements per input element


# Saved tensors follow torch's derivatives.yaml for the non-inplace modules scalelab.build makes,
# measured in tests/test_compute_ops.py; op counts are the formulas in the comments.
ACTIVATIONS: dict[str, Function] = {
    "relu": Function(1, "out", "ReLU"),  # max(x, 0)
    "relu6": Function(2, "in", "ReLU6"),  # min(max(x, 0), 6): hardtanh's backward takes the input
    "sigmoid": Function(4, "out", "Sigmoid"),  # 1 / (1 + exp(-x)): negate, exp, add, divide
    "tanh": Function(5, "out", "Tanh"),  # (exp(2x) - 1) / (exp(2x) + 1)
    "silu": Function(5, "in", "SiLU"),  # x * sigmoid(x), a.k.a. swish
    "hardsigmoid": Function(4, "in", "Hardsigmoid"),  # relu6(x + 3) / 6
    "hardswish": Function(5, "in", "Hardswish"),  # x * hardsigmoid(x)
    # x * (1 + erf(x / sqrt(2))) / 2: divide, erf, add, multiply, halve (approximate="tanh": GELU_TANH_OPS)
    "gelu": Function(5, "in", "GELU", {"approximate": "none"}),
    "leaky_relu": Function(2, "in", "LeakyReLU", {"negative_slope": 0.01}),  # compare, scale
    "elu": Function(4, "in", "ELU", {"alpha": 1.0}),  # x > 0 ? x : alpha * (exp(x) - 1)
    "celu": Function(5, "in", "CELU", {"alpha": 1.0}),  # elu of x / alpha, times alpha
    "selu": Function(5, "in", "SELU"),  # scale * elu(x, alpha) with fixed constants
    "hardtanh": Function(2, "in", "Hardtanh", {"min_val": -1.0, "max_val": 1.0}),  # clamp
    "softplus": Function(6, "in", "Softplus", {"beta": 1.0, "threshold": 20.0}),  # log(1 + exp(beta x)) / beta, linear past threshold
    "mish": Function(9, "in", "Mish"),  # x * tanh(softplus(x)): exp, add, log, tanh (5), multiply
    "softsign": Function(3, "in", "Softsign", extra=1, temp=1),  # x / (1 + |x|): abs, add, divide (keeps 1 + |x|)
    "logsigmoid": Function(4, "in", "LogSigmoid", extra=1),  # -log(1 + exp(-x)); see Activation.saved
    "tanhshrink": Function(6, "", "Tanhshrink", extra=1, temp=1),  # x - tanh(x): keeps tanh's output
    "hardshrink": Function(2, "in", "Hardshrink", {"lambd": 0.5}),  # |x| > lambd ? x : 0
    "softshrink": Function(3, "in", "Softshrink", {"lambd": 0.5}),  # x - lambd, x + lambd or 0
    # random slopes in [lower, upper] in training (kept for backward), their mean in eval
    "rrelu": Function(2, "in", "RReLU", {"lower": 1 / 8, "upper": 1 / 3}, extra=1),
}

#: every activation function: those above, which a block's ``activation:`` field names, and those
#: only an activation block states (a required parameter, a changed shape, learned slopes)
FUNCTIONS: dict[str, Function] = {
    **ACTIVATIONS,
    "threshold": Function(2, "in", "Threshold", {"threshold": REQUIRED, "value": REQUIRED}),  # x > t ? x : value
    "glu": Function(5, "in", "GLU", {"dim": -1}),  # a * sigmoid(b) of the two halves along dim
    # max(0, x) + weight * min(0, x), weight learned: one slope or one per channel (the PReLU layer)
    "prelu": Function(2, "in", "PReLU", {"num_parameters": 1, "init": 0.25}),
}


#: x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) / 2: cube (2), scale, add, scale, tanh (5), add,
#: multiply, halve
GELU_TANH_OPS = 13


def arguments(fn: str, given: Mapping[str, Value]) -> tuple[tuple[str, Value], ...]:
    """``given`` checked against what ``fn`` takes, with its defaults filled in, in the table's order."""
    if fn not in FUNCTIONS:
        raise ValueError(f"unknown activation '{fn}'; one of {', '.join(FUNCTIONS)}")
    params = FUNCTIONS[fn].params
    stray = [k for k in given if k not in params]
    if stray:
        takes = f"takes {', '.join(params)}" if params else "takes no parameters"
        raise ValueError(f"activation '{fn}' {takes}, not {', '.join(stray)}")
    missing = [k for k, v in params.items() if v is REQUIRED and k not in given]
    if missing:
        raise ValueError(f"activation '{fn}' needs {' and '.join(missing)}")
    if given.get("approximate", "none") not in ("none", "tanh"):
        raise ValueError(f"gelu's approximate is none or tanh, not {given['approximate']!r}")
    return tuple((k, given[k] if k in given else cast(Value, v)) for k, v in params.items())  # REQUIRED: given


def ops_per_element(fn: str, args: tuple[tuple[str, Value], ...] = ()) -> int:
    """Ops per output element of activation ``fn`` with parameters ``args``."""
    if fn == "gelu" and dict(args).get("approximate") == "tanh":
        return GELU_TANH_OPS
    return FUNCTIONS[fn].ops


@register
@dataclass(frozen=True)
class Activation(Primitive):
    """An elementwise activation; ``args`` are its parameters as torch names them, every one given
    (``Activation.of`` fills in the defaults). GLU halves its ``dim`` axis (per-sample axes)."""

    kind = "activation"

    fn: str
    args: tuple[tuple[str, Value], ...] = ()

    def __post_init__(self) -> None:
        if self.fn == "prelu":
            raise ValueError("prelu learns its slopes: it is the PReLU layer")
        full = arguments(self.fn, dict(self.args))
        object.__setattr__(self, "args", full)

    @classmethod
    def of(cls, fn: str, **given: Value) -> "Activation | PReLU":
        """The layer of activation ``fn`` with parameters ``given`` (PReLU for ``prelu``)."""
        if fn == "prelu":
            return PReLU(**{k: v for k, v in arguments(fn, given)})  # type: ignore[arg-type]
        return cls(fn, tuple(given.items()))

    def _glu_axis(self, s: Shape) -> int:
        dim = int(dict(self.args)["dim"])
        if not -len(s) <= dim < len(s):
            raise ShapeError(f"glu over axis {dim} of a {fmt_shape(s)} input")
        return dim % len(s)

    def out_shape(self, s: Shape) -> Shape:
        if self.fn != "glu":
            return s
        axis = self._glu_axis(s)
        if s[axis] % 2:
            raise ShapeError(f"glu halves axis {axis} of {fmt_shape(s)}: its size must be even")
        return (*s[:axis], s[axis] // 2, *s[axis + 1:])

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(self.fn, ops=ops_per_element(self.fn, self.args) * elements(out), in_elems=elements(s),
                         out_elems=elements(out), node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """logsigmoid's forward keeps a buffer beside its input on the CPU only (empty on a GPU)."""
        f = FUNCTIONS[self.fn]
        extra = 0 if self.fn == "logsigmoid" and check_device(device) == "gpu" else f.extra
        return Saved(input=f.saves == "in", output=f.saves == "out", per_sample_elements=extra * elements(s))

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        n = elements(out)
        return InnerPeak(out, n, n + FUNCTIONS[self.fn].temp * elements(s))

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        args = dict(self.args)
        if self.fn == "glu":
            dim = int(args["dim"])
            args["dim"] = dim + 1 if dim >= 0 else dim  # per-sample axes: the batch axis comes first
        return getattr(nn, FUNCTIONS[self.fn].torch_name)(**args)


@register
@dataclass(frozen=True)
class PReLU(Primitive):
    """max(0, x) + a * min(0, x) with learned slopes ``a``: one, or one per channel (the first
    per-sample axis, torch's dim 1). 2 ops per element, as leaky_relu."""

    kind = "prelu"
    has_weights = True

    num_parameters: int = 1
    init: float = 0.25

    def out_shape(self, s: Shape) -> Shape:
        if self.num_parameters != 1 and (not s or s[0] != self.num_parameters):
            raise ShapeError(f"prelu with {self.num_parameters} slopes needs {self.num_parameters} channels, "
                             f"got {fmt_shape(s)}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("prelu", params=self.num_parameters, ops=2 * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(input=True)  # _prelu_kernel_backward takes the input (and the slopes) whenever recorded

    inner_peak = fresh_output  # the slopes are reshaped as a view

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.PReLU(self.num_parameters, self.init)
