"""What the token kinds share (ViT, Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021): the token
shape, the head count, multi-head self-attention and the MLP as layer trees, and the norm, layer
scale, stochastic depth and residual around each half of an encoder block.

Token tensors are (tokens, features) per sample; leading axes before them (a hybrid's patches) are
kept and attended over separately. Self-attention is laid out as timm's ``Attention`` runs it: one
fused qkv projection, reshaped to (tokens, 3, heads, head_dim), permuted to (3, heads, tokens,
head_dim) and unbound into q, k, v; scaled dot-product attention (the math kernel); the heads moved
back beside each other (a copy, as ``reshape`` of the transposed output makes one); the projection.
torchvision's ``nn.MultiheadAttention`` computes the same products with the same weights, but cuts
q, k and v otherwise (``qkv: packed_copy``): its packed in-projection (``F._in_projection_packed``)
unflattens the projection to (tokens, 3, features), moves the 3 first (unsqueeze, transpose and
squeeze around the batch, views) and copies it whole with ``.contiguous()``, 3 x tokens x features
elements, before the heads are split off each piece.
"""

from __future__ import annotations

from typing import Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import ActivationName, Block, PositiveInt, Probability, Real, act_layer
from scalelab.blocks.layers import (
    Attention, Contiguous, Dropout, Linear, Node, Permute, Reshape, Residual, Shape, ShapeError,
    TrailingLayerNorm, TrailingLayerScale, Unbind, Unpack, fmt_shape, seq,
)


def tokens_of(inp: Shape, kind: str) -> tuple[Shape, int, int]:
    """(leading axes, tokens, features) of a token input; a ShapeError naming ``kind`` otherwise."""
    if len(inp) < 2:
        raise ShapeError(f"'{kind}' needs tokens (tokens, features), got {fmt_shape(inp) or 'a scalar'}")
    return inp[:-2], inp[-2], inp[-1]


class TokenHalf(Block):
    """The norm, layer scale, stochastic depth and residual around a transformer's half."""

    takes_defaults = False  # a transformer's GELU and eps are its own, never a CNN spec's defaults
    norm_position: Literal["pre", "post"] = Field(
        "pre", description="layer norm before the branch (pre-norm: ViT, DeiT) or after the residual add (post-norm)")
    norm_eps: Real = Field(1e-6, gt=0, description="the layer norms' epsilon")
    layer_scale: Optional[Real] = Field(None, gt=0, description="initial value of a learned per-feature scale of "
                                                                "the branch (CaiT, DeiT III); none: no scale")
    drop_path: Probability = Field(0.0, description="stochastic depth rate of the branch (training only)")

    def half(self, body: Node, dim: int, residual: bool = True) -> Node:
        norm = TrailingLayerNorm((dim,), self.norm_eps)
        pre = norm if self.norm_position == "pre" else None
        branch = seq(pre, body, TrailingLayerScale(dim, self.layer_scale) if self.layer_scale is not None else None,
                     Dropout(self.drop_path, stochastic_depth=True) if self.drop_path else None)
        post = norm if self.norm_position == "post" else None
        if not residual:
            return seq(branch, post)
        return Residual(branch, None, post)


class AttentionFields(Block):
    head_dim: PositiveInt = Field(64, description="features per head; heads = features / head_dim")
    heads: Optional[PositiveInt] = Field(None, description="number of heads, instead of head_dim")
    qkv_bias: bool = Field(True, description="bias of the fused q, k, v projection")
    qkv: Literal["views", "packed_copy"] = Field(
        "views", description="how q, k and v are cut from the fused projection: views (timm's Attention) or one copy "
                             "of the whole projection first (nn.MultiheadAttention's packed in-projection)")

    @model_validator(mode="after")
    def _one_head_size(self) -> Self:
        if self.heads is not None and "head_dim" in self.model_fields_set:
            raise ValueError("give the heads as head_dim (features per head) or as heads (a count), not both")
        return self

    def heads_of(self, dim: int) -> tuple[int, int]:
        """(heads, head_dim) for ``dim`` features; a ShapeError naming both when they do not divide."""
        if self.heads is not None:
            if dim % self.heads:
                raise ShapeError(f"'{self.kind}': {dim} features do not split into heads: {self.heads}")
            return self.heads, dim // self.heads
        if dim % self.head_dim:
            raise ShapeError(f"'{self.kind}': {dim} features are not a whole number of heads of "
                             f"head_dim: {self.head_dim}")
        return dim // self.head_dim, self.head_dim

    def attention(self, inp: Shape) -> Node:
        lead, n, dim = tokens_of(inp, self.kind)
        heads, head_dim = self.heads_of(dim)
        k = len(lead)
        if self.qkv == "packed_copy" and lead:
            raise ShapeError(f"'{self.kind}': qkv: packed_copy takes (tokens, features) without leading axes, as "
                             f"nn.MultiheadAttention does, got {fmt_shape(inp)}")
        cut = self._packed(n, dim, heads, head_dim) if self.qkv == "packed_copy" else (
            Reshape((*lead, n, 3, heads, head_dim)),
            Permute((k + 1, *range(k), k + 2, k, k + 3)),  # (3, *lead, heads, tokens, head_dim)
        )
        copy = Contiguous() if heads > 1 and n > 1 else None  # heads of one: the transpose is contiguous already
        return seq(
            Linear(dim, 3 * dim, self.qkv_bias), *cut,
            Unpack(Unbind(0), Attention()),
            Permute((*range(k), k + 1, k, k + 2)),  # (*lead, tokens, heads, head_dim)
            copy, Reshape((*lead, n, dim)),
            Linear(dim, dim),
        )

    @staticmethod
    def _packed(n: int, dim: int, heads: int, head_dim: int) -> tuple[Optional[Node], ...]:
        """nn.MultiheadAttention's cut of q, k and v, to (3, heads, tokens, head_dim): its views per
        sample (an unsqueeze and a squeeze of a unit axis where torch has the batch), the copy of the
        whole projection (none for one token, which is contiguous already), then the heads split off,
        here before the unbind rather than on each piece after it (views either way)."""
        return (Reshape((n, 3, dim)), Reshape((1, n, 3, dim)), Permute((2, 1, 0, 3)), Reshape((3, n, dim)),
                Contiguous() if n > 1 else None, Reshape((3, n, heads, head_dim)), Permute((0, 2, 1, 3)))


class MlpFields(Block):
    mlp_ratio: Real = Field(4.0, gt=0, description="hidden width = int(features * mlp_ratio)")
    mlp_hidden: Optional[PositiveInt] = Field(None, description="hidden width in features, instead of mlp_ratio",
                                              json_schema_extra={"scale": "width"})  # width scaling multiplies it
    activation: ActivationName = Field("gelu", description="activation between the two linear layers")

    @model_validator(mode="after")
    def _one_hidden(self) -> Self:
        if self.mlp_hidden is not None and "mlp_ratio" in self.model_fields_set:
            raise ValueError("give the MLP's hidden width as mlp_ratio or as mlp_hidden, not both")
        return self

    def mlp(self, inp: Shape) -> Node:
        _, _, dim = tokens_of(inp, self.kind)
        hidden = self.mlp_hidden if self.mlp_hidden is not None else int(dim * self.mlp_ratio)
        return seq(Linear(dim, hidden), act_layer(self.activation), Linear(hidden, dim))
