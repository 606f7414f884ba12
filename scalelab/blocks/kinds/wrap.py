"""A body of ordinary blocks with a shortcut around it: the residual pattern of MobileNetV3,
RegNetY, EfficientNetV2 and ConvNeXt stages written once, so that a stage can repeat it, and the
dense pattern of DenseNet (the body's output concatenated to its input, Huang et al. 2017)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Norm, PositiveInt, Probability, Real, act_layer, channels_of, conv_norm_act,
)
from scalelab.blocks.layers import Dropout, Node, Parallel, Residual, Shape, ShapeError, seq, walk
from scalelab.blocks.registry import BodyBlock
from scalelab.blocks.kinds.squeeze_excite import SqueezeExciteBlock

SHORTCUT_HELP = (
    "identity: an identity shortcut where the body keeps the shape, none where it changes it "
    "(MobileNet, EfficientNet); projection: a 1x1 conv and norm where the shape changes (ResNet "
    "option B, RegNet); none: no shortcut"
)


class WrapBlock(Block):
    summary = "a body of blocks with a shortcut around it (identity or projection add, or dense concat)"
    kind: Literal["wrap"] = "wrap"
    body: list[BodyBlock] = Field(min_length=1, description="the blocks of the residual branch, in order "
                                  "(no merge kinds; no from, training_only or name)")
    shortcut: Literal["identity", "projection", "none"] = Field("identity", description=SHORTCUT_HELP)
    join: Literal["add", "concat"] = Field("add", description="add the shortcut, or concatenate the input (dense)")
    stride: PositiveInt = Field(1, description="when set (a stage sets it), the stride of body[stride_at]")
    stride_at: int = Field(0, ge=0, description="index of the body block that takes the stride")
    post: ActivationName = Field("none", description="activation after the join (ResNet, RegNet: relu)")
    drop_path: Probability = Field(0.0, description="stochastic depth rate of the body where a shortcut is added (training only)")
    norm: Norm = Field("batchnorm", description="norm of a projection shortcut")
    norm_eps: Real = Field(1e-5, gt=0)

    def _body_blocks(self) -> list:
        takes = self.stride_at < len(self.body) and "stride" in type(self.body[self.stride_at]).model_fields
        if "stride" not in self.model_fields_set or (self.stride == 1 and not takes):
            return list(self.body)
        if not takes:
            raise ShapeError(f"stride {self.stride} needs body[{self.stride_at}] to be a block with a stride "
                             f"(set stride_at)")
        blocks = list(self.body)
        target = blocks[self.stride_at]
        data = target.model_dump(by_alias=True, exclude_unset=True)
        blocks[self.stride_at] = type(target).model_validate({**data, "stride": self.stride})
        return blocks

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        stride: "int | tuple[int, int]"  # a block's stride field: one number or a pair
        shape, nodes, stride = inp, [], (1, 1)
        for i, block in enumerate(self._body_blocks()):
            # a squeeze-excite with `of: input` takes its width from the wrap's input channels
            node = block.layers(shape, block_input=in_ch) if isinstance(block, SqueezeExciteBlock) else block.layers(shape)
            shape = walk(node, shape).out
            nodes.append(node)
            if i == self.stride_at:
                stride = getattr(block, "stride", 1)
        body, post = seq(*nodes), act_layer(self.post)
        if self.join == "concat":
            return seq(Parallel((seq(), body)), post)
        if self.shortcut == "none" or (shape != inp and self.shortcut == "identity"):
            return seq(body, post)  # no add: nothing for stochastic depth to drop
        dropped = seq(*nodes, Dropout(self.drop_path, stochastic_depth=True)) if self.drop_path else body
        if shape == inp:
            return Residual(dropped, None, post)
        stride = stride if isinstance(stride, tuple) else (stride, stride)
        projection = conv_norm_act(in_ch, shape[0], (1, 1), stride, norm=self.norm, norm_eps=self.norm_eps,
                                   activation="none", bias=False)
        return Residual(dropped, projection, post)


__all__ = ["WrapBlock"]
