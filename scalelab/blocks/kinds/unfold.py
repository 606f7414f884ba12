"""MobileViT's unfold - transformer - fold (Mehta & Rastegari 2022, "MobileViT: Light-weight,
General-purpose, and Mobile-friendly Vision Transformer"), as timm's ``MobileVitBlock`` lays it out:
a (C, H, W) map cut into patches of ph x pw pixels becomes P = ph pw sequences (one per position in a
patch) of N = (H / ph)(W / pw) tokens of C features, a body of token blocks (transformer blocks, a
layer norm) runs on the (P, N, C) sequences, and the result is folded back to (C, H, W).

The unfold and the fold are reshapes, permutes and the two layout copies each that torch's
``reshape`` makes, so the block is stated by the existing view and copy layers; it is a kind of its
own because their sizes follow the map, so that one spec holds at every resolution that divides
into whole patches."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Pair
from scalelab.blocks.layers import Contiguous, Node, Permute, Reshape, Shape, ShapeError, fmt_shape, seq, walk
from scalelab.blocks.registry import BodyBlock


class UnfoldBlock(Block):
    summary = ("a map unfolded into one token sequence per patch position (MobileViT), a body of token "
               "blocks run on them, folded back")
    takes_defaults = False
    kind: Literal["unfold"] = "unfold"
    patch: Pair = Field((2, 2), description="patch height and width in pixels; the map must divide into whole patches")
    body: list[BodyBlock] = Field(min_length=1, description="the blocks run on the (patch area, patches, channels) "
                                  "sequences, in order; they must keep that shape")

    def layers(self, inp: Shape) -> Node:
        if len(inp) != 3:
            raise ShapeError(f"unfold needs a (channels, height, width) map, got {fmt_shape(inp)}")
        c, h, w = inp
        ph, pw = self.patch
        if h % ph or w % pw:
            raise ShapeError(f"unfold: a {h}x{w} map does not divide into whole {ph}x{pw} patches")
        nh, nw = h // ph, w // pw
        tokens: Shape = (ph * pw, nh * nw, c)
        body, shape = [], tokens
        for block in self.body:
            node = block.layers(shape)
            shape = walk(node, shape).out
            body.append(node)
        if shape != tokens:
            raise ShapeError(f"unfold: the body turns the {fmt_shape(tokens)} sequences into {fmt_shape(shape)}; "
                             f"folding back needs the same shape")
        return seq(
            Reshape((c * nh, ph, nw, pw)), Permute((0, 2, 1, 3)), Contiguous(),  # patches of each channel row
            Reshape((c, nh * nw, ph * pw)), Permute((2, 1, 0)), Contiguous(),  # (P, N, C)
            *body,
            Permute((2, 1, 0)), Contiguous(), Reshape((c * nh, nw, ph, pw)),  # back to patches of each row
            Permute((0, 2, 1, 3)), Contiguous(), Reshape((c, h, w)),
        )
