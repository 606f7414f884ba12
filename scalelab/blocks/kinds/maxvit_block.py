"""The MaxViT block (Tu et al. 2022, "MaxViT: Multi-Axis Vision Transformer") on a (C, H, W) map, as
torchvision's ``MaxVitLayer`` runs it: an MBConv, then block attention within P x P windows, then grid
attention over a G x G grid spread across the whole map, each attention followed by an MLP.

The MBConv is torchvision's: a batchnorm first, a 1x1 expansion to ``expand`` x out channels, a
depthwise 3x3 carrying the stride, squeeze-excite to ``se`` x out channels (SiLU), and a 1x1
projection with bias and no norm; its shortcut is the identity, or where the stride or the channels
change an average pool (3x3, padding 1, at a stride) and a 1x1 conv with bias. Each attention
partitions the map into groups of tokens (channels last, a copy), then x + attention(norm(x)) and x
+ MLP(norm(x)) on every group, and departitions it (a copy). The attention is window attention with
a relative position bias; its scores are scaled by C^-1/2, as torchvision scales them."""

from typing import Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import (
    ActivationName, Block, Channels, NormActArgs, PositiveInt, Probability, Real, act_layer, channels_of, conv_norm_act,
)
from scalelab.blocks.layers import (
    BatchNorm, Contiguous, Conv, Dropout, Linear, Node, Permute, Pool, Reshape, Residual, Shape, ShapeError,
    TrailingLayerNorm, WindowAttention, seq, walk,
)
from scalelab.blocks.se_options import squeeze_excite


class MaxVitBlock(Block):
    summary = "MaxViT block: MBConv with squeeze-excite, block attention in P x P windows, grid attention on a G x G grid"
    takes_defaults = False  # its GELU and epsilons are its own, as a transformer's
    kind: Literal["maxvit_block"] = "maxvit_block"
    out: Channels = Field(description="output channels")
    stride: PositiveInt = Field(1, description="stride of the MBConv's depthwise conv (a stage's first repeat)")
    expand: Real = Field(4.0, ge=1, description="MBConv expanded width = int(out * expand)")
    se: Real = Field(0.25, ge=0, le=1, description="squeeze-excite width = int(out * se), of the output channels; 0: none")
    window: PositiveInt = Field(7, description="block attention: windows of window x window tokens")
    grid: PositiveInt = Field(7, description="grid attention: a grid x grid grid of tokens, spread across the map")
    head_dim: PositiveInt = Field(32, json_schema_extra={"divides": ["out"]},
                                  description="width of a head (heads = out / head_dim)")
    heads: Optional[PositiveInt] = Field(None, json_schema_extra={"divides": ["out"]},
                                         description="number of heads; instead of head_dim")
    mlp_ratio: Real = Field(4.0, gt=0, description="MLP hidden width = int(out * mlp_ratio)")
    activation: ActivationName = Field("gelu", description="the MBConv's and the MLPs' activation")
    norm_eps: Real = Field(1e-3, gt=0, description="the MBConv's batchnorm epsilon")
    layer_norm_eps: Real = Field(1e-5, gt=0, description="the attentions' and MLPs' layer norm epsilon")
    drop_path: Probability = Field(0.0, description="stochastic depth rate of every residual branch (training only)")

    @model_validator(mode="after")
    def _one_head_count(self) -> Self:
        if self.heads is not None and "head_dim" in self.model_fields_set:
            raise ValueError("give the heads as heads (a count) or as head_dim (a width), not both")
        return self

    def heads_of(self, channels: int) -> int:
        if self.heads is not None:
            if channels % self.heads:
                raise ShapeError(f"maxvit_block: {channels} channels do not split into {self.heads} heads")
            return self.heads
        if channels % self.head_dim:
            raise ShapeError(f"maxvit_block: {channels} channels are no whole number of heads of head_dim {self.head_dim}")
        return channels // self.head_dim

    def layers(self, inp: Shape) -> Node:
        mbconv = self._mbconv(channels_of(inp, self.kind))
        c, h, w = walk(mbconv, inp).out
        for what, side in (("window", self.window), ("grid", self.grid)):
            if h % side or w % side:
                raise ShapeError(f"maxvit_block: a {h}x{w} map (after the MBConv) does not divide into a {what} "
                                 f"of {side}x{side}")
        window = self._attention((c, h, w), (self.window, self.window), False)
        grid = self._attention((c, h, w), (h // self.grid, w // self.grid), True)
        return seq(mbconv, *window, *grid)

    def _drop(self) -> Optional[Dropout]:
        return Dropout(self.drop_path, stochastic_depth=True) if self.drop_path else None

    def _mbconv(self, in_ch: int) -> Node:
        mid, s = int(self.out * self.expand), self.stride
        act = NormActArgs(norm="batchnorm", norm_eps=self.norm_eps, activation=self.activation)
        squeeze = int(self.out * self.se)
        body = seq(BatchNorm(in_ch, self.norm_eps), conv_norm_act(in_ch, mid, **act),
                   conv_norm_act(mid, mid, (3, 3), (s, s), groups=mid, **act),
                   squeeze_excite(mid, squeeze, "silu", "sigmoid") if squeeze else None,
                   conv_norm_act(mid, self.out, norm="none", activation="none"), self._drop())
        if s == 1 and in_ch == self.out:
            return Residual(body)
        pool = Pool("avg", (3, 3), (s, s), (1, 1)) if s > 1 else None
        return Residual(body, seq(pool, Conv(in_ch, self.out, (1, 1), bias=True)))

    def _attention(self, shape: Shape, cell: tuple[int, int], swap: bool) -> list[Optional[Node]]:
        """Partition (C, H, W) into cells of cell[0] x cell[1] pixels, channels last: (cells, pixels
        of a cell, C). Block attention attends within a cell (cells of P x P); grid attention across
        the cells (cells of H/G x W/G, swapped so that the G x G tokens at one offset are a group)."""
        c, h, w = shape
        a, b = cell
        rows, cols = h // a, w // b
        side = self.grid if swap else self.window
        groups = (a, b) if swap else (rows, cols)  # the attention's groups, row-major
        hidden = int(c * self.mlp_ratio)
        swapped = Permute((1, 0, 2)) if swap else None
        attention = seq(TrailingLayerNorm((c,), self.layer_norm_eps), Linear(c, 3 * c),
                        WindowAttention(self.heads_of(c), side, (0, 0), groups, c ** -0.5), Linear(c, c), self._drop())
        mlp = seq(TrailingLayerNorm((c,), self.layer_norm_eps), Linear(c, hidden), act_layer(self.activation),
                  Linear(hidden, c), self._drop())
        # torch's reshape copies only where the permuted axes cannot merge (a view in MaxViT-T's last
        # stage, one window and cells of one pixel); the grid's departition reads the map in the
        # order its residual adds leave it, the swapped one (on a square map the same rule)
        merges = (rows == 1 or cols == 1 or a == 1) and (a == 1 or b == 1 or cols == 1)
        back = (rows == 1 or a == 1) and (cols == 1 or b == 1) if swap else merges
        return [Reshape((c, rows, a, cols, b)), Permute((1, 3, 2, 4, 0)), None if merges else Contiguous(),
                Reshape((rows * cols, a * b, c)), swapped, Residual(attention), Residual(mlp), swapped,
                Reshape((rows, cols, a, b, c)), Permute((4, 0, 2, 1, 3)), None if back else Contiguous(),
                Reshape((c, h, w))]
