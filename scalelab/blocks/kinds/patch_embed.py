"""Patch embedding (ViT, Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021; DeiT III, Touvron et
al. 2022): a conv whose kernel and stride are the patch, flattened to (tokens, features); a learned
class token (and DeiT's distillation token) put before the patches, and a learned position
embedding added to every token (ViT, DeiT) or to the patches alone before the tokens are put in
front (DeiT III, timm's ``no_embed_class``)."""

from typing import Annotated, Literal, Self

from pydantic import Field, Strict, model_validator

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
    position_on: Literal["all_tokens", "patches"] = Field(
        "all_tokens", description="the tokens the position embedding is added to: all_tokens, the class and "
                                  "distillation tokens included (ViT, DeiT), or the patches alone, before those "
                                  "tokens are put in front (DeiT III, timm's no_embed_class)")

    @model_validator(mode="after")
    def _position_to_place(self) -> Self:
        if self.position == "none" and self.position_on != "all_tokens":
            raise ValueError(f"position_on: {self.position_on} places a position embedding; position: none has none")
        return self

    def layers(self, inp: Shape) -> Node:
        conv = Conv(channels_of(inp, self.kind), self.out, self.patch, self.patch, bias=True)
        _, h, w = walk(conv, inp).out
        extra = [Param((1, 1, self.out), batch_axis=0) for wanted in (self.class_token, self.distill_token) if wanted]
        learned = self.position == "learned"
        before = learned and self.position_on == "patches"
        tokens = h * w + (0 if before else len(extra))
        position = Residual(Param((1, tokens, self.out), batch_axis=0)) if learned else None
        return seq(
            conv, Reshape((self.out, h * w)), Permute((1, 0)),  # (patches, features)
            position if before else None,
            Parallel((*extra, seq())) if extra else None,  # the tokens, then the patches (torch.cat on dim 1)
            None if before else position,
        )
