"""The pooling of a transformer's tokens into one vector for the classifier: the class token (ViT,
DeiT) or the mean of the tokens, with an optional final layer norm."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Node, Reduce, Select, Shape, ShapeError, Slice, TrailingLayerNorm, seq
from scalelab.blocks.transformer_parts import tokens_of


class TokenPoolBlock(Block):
    summary = "tokens to one vector: the class token or the mean of the tokens, with an optional layer norm"
    takes_defaults = False
    kind: Literal["token_pool"] = "token_pool"
    mode: Literal["class", "mean"] = Field("class", description="class: the first token; mean: the tokens' mean")
    skip: int = Field(0, ge=0, description="leading tokens (class, distillation) left out of the mean "
                                           "(timm's num_prefix_tokens)")
    norm: Literal["none", "before", "after"] = Field(
        "none", description="a layer norm of every token before pooling (ViT, DeiT) or of the pooled vector after it")
    norm_eps: Real = Field(1e-6, gt=0)

    def layers(self, inp: Shape) -> Node:
        _, n, dim = tokens_of(inp, self.kind)
        if self.skip and self.mode == "class":
            raise ShapeError("token_pool: skip leaves tokens out of a mean; mode: class takes the first token")
        if self.skip >= n:
            raise ShapeError(f"token_pool: skip {self.skip} leaves none of the {n} tokens")
        pool = (Select(-2, 0) if self.mode == "class"
                else seq(Slice(-2, self.skip) if self.skip else None, Reduce("mean", (-2,))))
        norm = TrailingLayerNorm((dim,), self.norm_eps)
        return seq(norm if self.norm == "before" else None, pool, norm if self.norm == "after" else None)
