"""What every block kind shares: the parameter model, the common field types, and the small
layer builders (conv-norm-activation) that several kinds compose."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Optional, TypedDict, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, WithJsonSchema, field_validator

from scalelab.blocks.layers import (
    ACTIVATIONS,
    FUNCTIONS,
    Activation as ActivationLayer,
    BatchNorm,
    Conv,
    LayerNorm,
    Pool,
    Node,
    Shape,
    ShapeError,
    seq,
    spatial,
    walk,
)
from scalelab.blocks.layers.conv import PaddingMode, WeightStd
from scalelab.limits import MAX_CHANNELS, MAX_NAME_CHARS, MAX_RESOLUTION


def _pair(v: Any) -> Any:
    """Accept 7 or [7, 7] for a kernel, stride, padding or dilation (``true`` is not 1)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    return v


def _activation_alias(v: Any) -> Any:
    return "silu" if v == "swish" else v


def pair_schema(minimum: int, maximum: int = MAX_RESOLUTION) -> WithJsonSchema:
    """The JSON Schema of a value written as 7 or [7, 7] (the exported schema must accept both)."""
    number = {"type": "integer", "exclusiveMinimum": 0} if minimum == 1 else {"type": "integer", "minimum": minimum}
    number["maximum"] = maximum
    pair = {"type": "array", "prefixItems": [number, number], "minItems": 2, "maxItems": 2}
    return WithJsonSchema({"anyOf": [number, pair]})


_FUNCTIONS = tuple(ACTIVATIONS)  # what an ``activation:`` field names; an activation block takes every one
_EVERY_FUNCTION = tuple(FUNCTIONS)

# Field types. Integers are strict (``true``, 2.0 and "2" are refused, not read as numbers) and
# bounded (scalelab.limits). ``scale: width`` marks channel counts that width scaling multiplies.
Channels = Annotated[int, Strict(), Field(gt=0, le=MAX_CHANNELS, json_schema_extra={"scale": "width"})]
PositiveInt = Annotated[int, Strict(), Field(gt=0, le=MAX_CHANNELS)]
Pixels = Annotated[int, Strict(), Field(gt=0, le=MAX_RESOLUTION)]
PadPixels = Annotated[int, Strict(), Field(ge=0, le=MAX_RESOLUTION)]
Pair = Annotated[tuple[Pixels, Pixels], BeforeValidator(_pair), pair_schema(1)]
PadPair = Annotated[tuple[PadPixels, PadPixels], BeforeValidator(_pair), pair_schema(0)]
#: a real number: an int or a float, never a string or a flag ("0.5" and true are refused)
Real = Annotated[float, Strict()]
Probability = Annotated[Real, Field(ge=0, lt=1)]
#: the one rule of block and stage names (README, 'The spec'): reports and tables show them whole,
#: and none reads as a command-line option (``explain -k``)
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
NAME_RULE = (f"a name is 1 to {MAX_NAME_CHARS} characters: letters, digits, '_', '-' and '.', "
             f"and it starts with a letter, digit or '_'")
_NAME_SCHEMA = {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_CHARS}


def _check_name(value: str) -> str:
    if len(value) > MAX_NAME_CHARS or not re.fullmatch(NAME_PATTERN, value):  # fullmatch: no "a\n"
        raise ValueError(NAME_RULE)
    return value


#: a block or stage name, or a name in ``from:``
Name = Annotated[str, AfterValidator(_check_name), WithJsonSchema(_NAME_SCHEMA)]
#: a block's ``from:``: one name or a non-empty list of names
InputNames = Annotated[
    Optional[list[Name]], Field(min_length=1),
    WithJsonSchema({"anyOf": [_NAME_SCHEMA, {"type": "array", "items": _NAME_SCHEMA, "minItems": 1}]}),
]
Norm = Literal["batchnorm", "layernorm", "none"]
if TYPE_CHECKING:  # the literals are built from the activation table at run time: to a type checker, names
    ActivationFunction = str
    AnyActivationFunction = str
    ActivationName = str
else:
    ActivationFunction = Annotated[
        Literal[_FUNCTIONS], BeforeValidator(_activation_alias), WithJsonSchema({"enum": [*_FUNCTIONS, "swish"]}),
    ]
    AnyActivationFunction = Annotated[
        Literal[_EVERY_FUNCTION], BeforeValidator(_activation_alias),
        WithJsonSchema({"enum": [*_EVERY_FUNCTION, "swish"]}),
    ]
    ActivationName = Annotated[
        Literal[(*_FUNCTIONS, "none")], BeforeValidator(_activation_alias),
        WithJsonSchema({"enum": [*_FUNCTIONS, "swish", "none"]}),
    ]


class Block(BaseModel):
    """A block kind: its parameters (validated), and ``layers()``, the single place that derives
    every inner dimension. Shape, cost and the torch module all follow from ``layers()``."""

    # every float is finite (norm_eps: .inf and NaN are refused); a kind's validator is built when a
    # spec first uses the kind, never for the abstract bases (Block, WindowPool, ...)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False,
                              defer_build=True)

    kind: str
    name: Optional[Name] = Field(None, description="Block name; defaults to the kind and a number.")
    inputs: InputNames = Field(None, alias="from", description="Names of the blocks feeding this one; default: the previous block.")
    training_only: bool = Field(False, description="Exclude from inference cost (e.g. auxiliary classifiers).")
    scale_width: bool = Field(True, description="Whether width scaling multiplies this block's channels.")

    #: how many inputs the block takes: 1, 0 for a source (a learned tensor), or None for any number of
    #: at least two (merges)
    arity: ClassVar[Optional[int]] = 1
    #: whether the block gives several outputs (views), named ``<block>.0``, ``<block>.1``, ... in ``from:``
    several_outputs: ClassVar[bool] = False
    #: whether the spec's ``defaults`` (norm, activation, norm_eps) fill this kind's parameters
    takes_defaults: ClassVar[bool] = True
    #: one line for ``scalelab kinds``
    summary: ClassVar[str] = ""

    @field_validator("inputs", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def repeated(self, index: int) -> "Block":
        """This block as repeat ``index`` (from 0) of a stage: itself, unless the kind's repeats differ
        (Swin's windows, shifted on every other repeat)."""
        return self

    def layers(self, inp: Shape) -> Node:  # pragma: no cover - every kind overrides
        raise NotImplementedError

    def out_shape(self, inp: Shape) -> Shape:
        return walk(self.layers(inp), inp).out


def channels_of(inp: Shape, kind: str) -> int:
    """The channels of a (channels, height, width) input; a ShapeError naming ``kind`` for any other."""
    return spatial(inp, kind)[0]


def norm_layer(norm: str, channels: int, eps: float) -> "BatchNorm | LayerNorm | None":
    if norm == "layernorm":
        return LayerNorm(channels, eps)
    return BatchNorm(channels, eps) if norm == "batchnorm" else None


def act_layer(fn: str) -> ActivationLayer | None:
    return None if fn == "none" else ActivationLayer(fn)


class NormArgs(TypedDict):
    """The norm arguments of ``conv_norm_act`` a block passes to each of its convs (``**common``)."""

    norm: str
    norm_eps: float


class NormActArgs(NormArgs):
    """``NormArgs`` and the activation, for a block whose convs all take its activation."""

    activation: str


def same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Symmetric 'same' padding: keeps the size at stride 1, ceil(size / stride) otherwise."""
    return (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)


def conv_norm_act(
    in_ch: int,
    out_ch: int,
    kernel: tuple[int, int] = (1, 1),
    stride: tuple[int, int] = (1, 1),
    *,
    groups: int = 1,
    norm: str = "batchnorm",
    activation: str = "relu",
    norm_eps: float = 1e-5,
    padding: tuple[int, int] | None = None,
    dilation: tuple[int, int] = (1, 1),
    bias: bool | None = None,
    padding_mode: PaddingMode = "zeros",
    standardize: "WeightStd | None" = None,
) -> Node:
    """Conv, then optional batchnorm, then optional activation. The conv has a bias only when no
    norm follows (a bias before batchnorm is cancelled by its mean), unless ``bias`` says otherwise;
    ``standardize``: the conv's weight is standardised before each pass."""
    if groups < 1 or in_ch % groups or out_ch % groups:
        raise ShapeError(f"groups={groups} must divide both {in_ch} input and {out_ch} output channels")
    conv = Conv(
        in_ch,
        out_ch,
        kernel,
        stride,
        same_padding(kernel, dilation) if padding is None else padding,
        dilation,
        groups,
        bias=(norm == "none") if bias is None else bias,
        padding_mode=padding_mode,
        standardize=standardize,
    )
    return seq(conv, norm_layer(norm, out_ch, norm_eps), act_layer(activation))


Padding = Annotated[
    Union[Literal["same", "valid"], PadPair],
    Field(description="'same' (half the kernel each side), 'valid' (none), or pixels per side."),
]


def resolve_padding(padding: "Literal['same', 'valid'] | tuple[int, int]", kernel: tuple[int, int],
                    dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    if padding == "same":
        return same_padding(kernel, dilation)
    if padding == "valid":
        return (0, 0)
    return padding


class WindowPool(Block):
    """Parameters shared by the max and average pooling kinds."""

    takes_defaults = False
    kernel: Pair = Field(description="window size")
    stride: Optional[Pair] = Field(None, description="default: the kernel size")
    padding: PadPair = (0, 0)
    ceil_mode: bool = False

    def _pool(self, op: str, **extra: bool) -> Pool:
        return Pool(op, self.kernel, self.stride or self.kernel, self.padding, self.ceil_mode, **extra)
