"""Squeeze-excite options shared by every kind that holds one (mbconv, fused_mbconv, bottleneck,
squeeze_excite, and squeeze_excite blocks inside a wrap body).

``se: 0.25`` is a fraction of the block's input channels (EfficientNet's ``input_channels // 4``).
The long form says what the width is relative to and how it is rounded:
``se: {ratio: 0.25, of: expanded, divisor: 8, activation: relu, gate: hardsigmoid}`` is MobileNetV3's
``_make_divisible(expanded // 4, 8)`` with a ReLU and a hard-sigmoid gate."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Self, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from scalelab.blocks.base import ActivationFunction, PositiveInt, Real
from scalelab.blocks.layers import Activation, AdaptiveAvgPool, Conv, Gate, seq

SEGate = Literal["sigmoid", "hardsigmoid"]


def make_divisible(value: float, divisor: int) -> int:
    """torchvision's ``_make_divisible``: the nearest multiple of ``divisor`` (halves up), at least
    ``divisor``, and one more divisor when rounding lost more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SEOptions(BaseModel):
    """The long form of a block's squeeze-excite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: Optional[Real] = Field(default=None, gt=0, le=1, description="squeeze width as a fraction of `of`")
    channels: Optional[PositiveInt] = Field(default=None, description="absolute squeeze width, instead of ratio (width scaling keeps it)")
    of: Literal["input", "expanded"] = Field(
        default="input", description="ratio of the block's input channels, or of the channels the SE gates")
    divisor: PositiveInt = Field(default=1, description="round the width as torchvision's _make_divisible")
    activation: Optional[ActivationFunction] = Field(default=None, description="reduce activation; default: the host's")
    gate: Optional[SEGate] = Field(default=None, description="default: the host's (sigmoid)")

    @model_validator(mode="after")
    def _one_width(self) -> Self:
        if (self.ratio is None) == (self.channels is None):
            raise ValueError("give the squeeze width as ratio or as channels (one of them)")
        return self

    def width(self, input_channels: int, expanded_channels: int) -> int:
        """The squeeze width: floor(ratio x base) (EfficientNet's ``//``, MobileNetV3's
        ``expanded // 4``), then rounded to the divisor."""
        if self.channels is not None:
            return self.channels
        base = input_channels if self.of == "input" else expanded_channels
        # the tolerance keeps 0.3 x 10 (= 3.0000000000000004) and 0.29 x 100 (28.999999999999996) exact
        squeeze = int(base * self.ratio + 1e-9)  # type: ignore[operator]  # _one_width: no channels, a ratio
        if self.divisor > 1:
            return make_divisible(squeeze, self.divisor)
        if squeeze < 1:
            return 1
        return squeeze


#: how a block kind declares its squeeze-excite: 0 (none), a fraction of its input channels, or
#: the long form
SE = Annotated[
    Union[Annotated[Real, Field(ge=0, le=1), Tag("fraction")], Annotated[SEOptions, Tag("options")]],
    Discriminator(lambda v: "options" if isinstance(v, (dict, SEOptions)) else "fraction"),
    Field(description="squeeze-excite: 0 = none, a fraction of the block's input channels, or "
                      "{ratio|channels, of, divisor, activation, gate}"),
]


def squeeze_excite(channels: int, squeeze: int, activation: str, gate: str) -> Gate:
    """Squeeze-and-excitation (Hu et al. 2018): global pool, 1x1 conv down to ``squeeze``,
    activation, 1x1 conv back up, gate, then scale the input channel-wise."""
    return Gate(seq(
        AdaptiveAvgPool((1, 1)),
        Conv(channels, squeeze, (1, 1), bias=True),
        Activation(activation),
        Conv(squeeze, channels, (1, 1), bias=True),
        Activation(gate),
    ))


def se_layers(se: "float | SEOptions", input_channels: int, expanded_channels: int,
              activation: str, gate: str) -> Optional[Gate]:
    """The squeeze-excite of a block that gates ``expanded_channels``, or None; ``activation`` and
    ``gate`` are the host's defaults, which the long form may override."""
    if not isinstance(se, SEOptions):
        if not se:
            return None
        se = SEOptions(ratio=se)
    squeeze = se.width(input_channels, expanded_channels)
    return squeeze_excite(expanded_channels, squeeze, se.activation or activation, se.gate or gate)
