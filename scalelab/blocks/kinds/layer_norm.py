from typing import Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, PositiveInt, Real, channels_of
from scalelab.blocks.layers import LayerNorm, Node, Shape, ShapeError, TrailingLayerNorm


class LayerNormBlock(Block):
    """Layer norm over the channels of each position of a feature map (ConvNeXt's LayerNorm2d), or,
    with ``trailing``, torch's LayerNorm over the last ``trailing`` axes of an input of any rank
    (``trailing: 1`` on (tokens, features): a transformer's)."""

    summary = "layer normalisation over the channels of each position (ConvNeXt's LayerNorm2d) or the trailing axes"
    kind: Literal["layer_norm"] = "layer_norm"
    norm_eps: Real = Field(1e-5, gt=0)
    trailing: Optional[PositiveInt] = Field(None, description="normalise over this many trailing axes (torch's "
                                                              "normalized_shape); default: the channels")
    affine: bool = Field(True, description="a learned scale (and shift) per normalised element; with trailing only")
    bias: bool = Field(True, description="the learned shift; with trailing only")

    @model_validator(mode="after")
    def _trailing_options(self) -> Self:
        if self.trailing is None and not (self.affine and self.bias):
            raise ValueError("affine and bias apply to a layer norm over trailing axes: give trailing")
        return self

    def layers(self, inp: Shape) -> Node:
        if self.trailing is None:
            return LayerNorm(channels_of(inp, self.kind), self.norm_eps)
        if self.trailing > len(inp):
            raise ShapeError(f"layer norm over {self.trailing} trailing axes of a rank-{len(inp)} input")
        return TrailingLayerNorm(inp[len(inp) - self.trailing:], self.norm_eps, self.affine, self.bias)
