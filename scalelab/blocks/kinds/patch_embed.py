"""Patch embedding (ViT, Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021): a conv whose kernel
and stride are the patch, flattened to (tokens, features); a learned class token (and DeiT's
distillation token) put before the patches, and a learned position embedding added to every token."""

from typing import Annotated, Literal

from pydantic import Field, Strict

from scalelab.blocks.base import Block, Pair, channels_of
from scalelab.blocks.layers import Conv, Node, Param, Parallel, Permute, Reshape, Residual, Shape, seq, walk
from scalelab.limits import MAX_CHANNELS

#: the embedding width: width scaling keeps it a whole number of heads (its "embed" hint)
Embed = Annotated[int, Strict(), Field(gt=0, le=MAX_CHANNELS, json_schema_extra={"scale": "embed"})]


class PatchEmbedBlock(Block):
    summary = ("strided conv patch embedding flattened to tokens, with class / distillation tokens and a learned "
               "position embedding")
    takes_defaults = False
    kind: Literal["patch_embed"] = "patch_embed"
    out: Embed = Field(description="embedding width: features per token")
    patch: Pair = Field((16, 16), description="patch size: the conv's kernel and stride")
    class_token: bool = Field(True, description="a learned class token before the patch tokens")
    distill_token: bool = Field(False, description="a learned distillation token after the class token (DeiT)")
    position: Literal["learned", "none"] = Field("learned", description="a learned position embedding added to "
                                                                        "every token, or none")

    def layers(self, inp: Shape) -> Node:
        conv = Conv(channels_of(inp, self.kind), self.out, self.patch, self.patch, bias=True)
        _, h, w = walk(conv, inp).out
        extra = [Param((1, 1, self.out), batch_axis=0) for wanted in (self.class_token, self.distill_token) if wanted]
        tokens = h * w + len(extra)
        return seq(
            conv, Reshape((self.out, h * w)), Permute((1, 0)),  # (patches, features)
            Parallel((*extra, seq())) if extra else None,  # the tokens, then the patches (torch.cat on dim 1)
            Residual(Param((1, tokens, self.out), batch_axis=0)) if self.position == "learned" else None,
        )
