"""The Swin Transformer block (Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows") on a channels-last (H, W, C) map, as torchvision's ``SwinTransformerBlock``
runs it: x + drop_path(window attention(norm(x))), then x + drop_path(mlp(norm(x))).

The attention pads the map to whole windows, rolls it by -shift (shifted windows), partitions it
into windows, projects qkv, attends within each window with the relative position bias (and the
mask of the shifted windows), projects, and undoes the partition, the roll and the padding.

Shifts alternate in a stage: with ``shift: alternate`` (the default) repeat r of a stage shifts by
0 when r is even and by window // 2 when r is odd, as torchvision builds each stage; depth scaling
multiplies the repeats and the alternation carries on (an odd count ends with an unshifted block).
As in torchvision, an axis whose padded size is no larger than the window is not shifted.

``form: timm`` states timm's ``SwinTransformerBlock`` instead: it rolls the map before padding it
and crops before rolling back, keeps the mask of the shifted windows as a buffer built once, cuts
and joins the windows through one more view each, and runs the MLP branch on the flattened tokens.
On an axis no longer than the window timm shrinks the window to the map's side and does not shift
there; a window that this makes oblong (a map one window high but wider, or smaller than the window
and not square) is refused, the window attention being square."""

from typing import Literal, Optional, Self, Union

from pydantic import Field, NonNegativeInt, model_validator

from scalelab.blocks.base import ActivationName, Block, PositiveInt, Probability, Real, act_layer
from scalelab.blocks.layers import (
    Contiguous, Dropout, Linear, Node, Pad, Permute, Reshape, Residual, Roll, Shape, ShapeError, Slice,
    TrailingLayerNorm, WindowAttention, fmt_shape, seq,
)


class SwinBlock(Block):
    summary = "Swin Transformer block: shifted-window attention with relative position bias, then an MLP"
    kind: Literal["swin_block"] = "swin_block"
    window: PositiveInt = Field(7, description="window side in tokens (window x window tokens attend together)")
    shift: Union[Literal["alternate"], NonNegativeInt] = Field(
        "alternate", description="cyclic shift in tokens; alternate: 0 on a stage's even repeats, window // 2 on "
                                 "its odd ones (torchvision's stages)")
    head_dim: PositiveInt = Field(32, description="width of a head (heads = channels / head_dim)")
    heads: Optional[PositiveInt] = Field(None, description="number of heads; instead of head_dim")
    mlp_ratio: Real = Field(4.0, gt=0, description="MLP hidden width = int(channels * mlp_ratio)")
    qkv_bias: bool = True
    activation: ActivationName = "gelu"
    norm_eps: Real = Field(1e-5, gt=0)
    drop_path: Probability = Field(0.0, description="stochastic depth rate of both residual branches (training only)")
    form: Literal["torchvision", "timm"] = Field(
        "torchvision", description="torchvision: pad, then roll, the mask built every pass; timm: roll, then pad, "
                                   "the window shrunk to a shorter side, the mask a buffer built once")

    @model_validator(mode="after")
    def _one_head_count(self) -> Self:
        if self.heads is not None and "head_dim" in self.model_fields_set:
            raise ValueError("give the heads as heads (a count) or as head_dim (a width), not both")
        if self.shift != "alternate" and self.shift >= self.window:
            raise ValueError(f"shift {self.shift} must be smaller than the window ({self.window})")
        return self

    def repeated(self, index: int) -> "SwinBlock":
        if self.shift != "alternate":
            return self
        data = self.model_dump(by_alias=True, exclude_unset=True)
        return type(self).model_validate({**data, "shift": self.window // 2 if index % 2 else 0})

    def heads_of(self, channels: int) -> int:
        if self.heads is not None:
            if channels % self.heads:
                raise ShapeError(f"swin_block: {channels} channels do not split into {self.heads} heads")
            return self.heads
        if channels % self.head_dim:
            raise ShapeError(f"swin_block: {channels} channels are no whole number of heads of head_dim {self.head_dim}")
        return channels // self.head_dim

    def layers(self, inp: Shape) -> Node:
        if len(inp) != 3:
            raise ShapeError(f"swin_block needs a channels-last (height, width, channels) map, got {fmt_shape(inp)}")
        c = inp[2]
        drop = Dropout(self.drop_path, stochastic_depth=True) if self.drop_path else None
        hidden = int(c * self.mlp_ratio)
        mlp = seq(TrailingLayerNorm((c,), self.norm_eps), Linear(c, hidden), act_layer(self.activation),
                  Linear(hidden, c), drop)
        if self.form == "timm":  # the MLP branch on (h w, c) tokens: views of the map
            attention = Residual(seq(TrailingLayerNorm((c,), self.norm_eps), *self._timm_attention(inp), drop))
            return seq(attention, Reshape((inp[0] * inp[1], c)), Residual(mlp), Reshape(inp))
        return seq(Residual(seq(TrailingLayerNorm((c,), self.norm_eps), *self._attention(inp), drop)), Residual(mlp))

    def _shift(self) -> int:
        return 0 if self.shift == "alternate" else self.shift

    def _timm_attention(self, inp: Shape) -> list[Node]:
        """timm's ``_attn``: roll, pad, partition by views, attention, join, crop, roll back."""
        h, w, c = inp
        wins = (min(h, self.window), min(w, self.window))  # timm: no window longer than the map
        if wins[0] != wins[1]:
            raise ShapeError(f"swin_block (form timm): a {h}x{w} map shrinks the window of {self.window} to "
                             f"{wins[0]}x{wins[1]}, and the window attention takes square windows only")
        win = wins[0]
        ph, pw = -h % win, -w % win
        hp, wp = h + ph, w + pw
        grid = (hp // win, wp // win)
        shifts = (self._shift() if h > win else 0, self._shift() if w > win else 0)
        rolled = sum(shifts) > 0
        layers: list[Node] = [Roll((-shifts[0], -shifts[1]), (0, 1))] if rolled else []
        copy = [Contiguous()] if grid[1] > 1 and win > 1 else []  # .contiguous() after the permute: a copy unless a view
        n, windows = win * win, grid[0] * grid[1]
        layers += [Pad((0, 0, 0, pw, 0, ph)), Reshape((grid[0], win, grid[1], win, c)), Permute((0, 2, 1, 3, 4)), *copy,
                   Reshape((windows, win, win, c)), Reshape((windows, n, c)),
                   Linear(c, 3 * c, self.qkv_bias), WindowAttention(self.heads_of(c), win, shifts, grid, form="timm"),
                   Linear(c, c), Reshape((windows, win, win, c)), Reshape((grid[0], grid[1], win, win, c)),
                   Permute((0, 2, 1, 3, 4)), *copy, Reshape((hp, wp, c))]
        if ph or pw:  # the crop back to (h, w), copied by timm's .contiguous()
            layers += [Slice(0, None, h), Slice(1, None, w), Contiguous()]
        return layers + ([Roll(shifts, (0, 1))] if rolled else [])

    def _attention(self, inp: Shape) -> list[Node]:
        h, w, c = inp
        win = self.window
        ph, pw = -h % win, -w % win
        hp, wp = h + ph, w + pw
        grid = (hp // win, wp // win)
        shift = self._shift()
        shifts = (shift if win < hp else 0, shift if win < wp else 0)  # torchvision: no shift across one window
        rolled = sum(shifts) > 0
        layers: list[Node] = [Pad((0, 0, 0, pw, 0, ph))]  # torch's pad copies even when it adds nothing
        layers += [Roll((-shifts[0], -shifts[1]), (0, 1))] if rolled else []
        # the partition's reshape after its permute copies unless the axes it swaps keep the layout
        # (one window across, or windows of one token): then torch's reshape is a view
        copy = [Contiguous()] if grid[1] > 1 and win > 1 else []
        layers += [Reshape((grid[0], win, grid[1], win, c)), Permute((0, 2, 1, 3, 4)), *copy,
                   Reshape((grid[0] * grid[1], win * win, c)),
                   Linear(c, 3 * c, self.qkv_bias), WindowAttention(self.heads_of(c), win, shifts, grid), Linear(c, c),
                   Reshape((grid[0], grid[1], win, win, c)), Permute((0, 2, 1, 3, 4)), *copy,
                   Reshape((hp, wp, c))]
        layers += [Roll(shifts, (0, 1))] if rolled else []
        if ph or pw:  # the crop back to (h, w): a copy to contiguous memory, as torchvision's .contiguous()
            layers += [Slice(0, None, h), Slice(1, None, w), Contiguous()]
        return layers
