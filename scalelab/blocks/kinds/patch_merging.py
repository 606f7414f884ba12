"""Swin's patch merging (Liu et al. 2021) as torchvision's ``PatchMerging`` runs it: a channels-last
(H, W, C) map to (H/2, W/2, 2C) by concatenating each 2x2 neighbourhood (4C, the map first padded to
even sides), a layer norm over the 4C, and a linear 4C -> 2C without bias."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Linear, Node, PatchConcat, Shape, ShapeError, TrailingLayerNorm, fmt_shape, seq


class PatchMergingBlock(Block):
    summary = "Swin patch merging: 2x2 neighbours concatenated (H/2, W/2, 4C), layer norm, linear 4C -> 2C"
    kind: Literal["patch_merging"] = "patch_merging"
    norm_eps: Real = Field(1e-5, gt=0)

    def layers(self, inp: Shape) -> Node:
        if len(inp) != 3:
            raise ShapeError(f"patch_merging needs a channels-last (height, width, channels) map, got {fmt_shape(inp)}")
        c = inp[2]
        return seq(PatchConcat(), TrailingLayerNorm((4 * c,), self.norm_eps), Linear(4 * c, 2 * c, bias=False))
