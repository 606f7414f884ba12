"""Block kinds, one module each, and the registry that maps a spec's ``kind`` to its model.

Adding a kind: write its module (a ``Block`` subclass with a ``kind`` literal and ``layers()``) and
list the class here.
"""

from typing import Annotated, Union

from pydantic import Field

from scalelab.blocks.activation import ActivationBlock
from scalelab.blocks.adaptive_avgpool import AdaptiveAvgPoolBlock
from scalelab.blocks.add import AddBlock
from scalelab.blocks.aux_classifier import AuxClassifierBlock
from scalelab.blocks.avgpool import AvgPoolBlock
from scalelab.blocks.base import Block
from scalelab.blocks.batchnorm import BatchNormBlock
from scalelab.blocks.bottleneck import BottleneckBlock
from scalelab.blocks.channel_linear import ChannelLinearBlock
from scalelab.blocks.channel_shuffle import ChannelShuffleBlock, ChannelSplitBlock
from scalelab.blocks.concat import ConcatBlock
from scalelab.blocks.conv import ConvBlock
from scalelab.blocks.dropout import DropoutBlock
from scalelab.blocks.flatten import FlattenBlock
from scalelab.blocks.fused_mbconv import FusedMBConvBlock
from scalelab.blocks.global_avgpool import GlobalAvgPoolBlock
from scalelab.blocks.inception import InceptionBlock
from scalelab.blocks.layer_norm import LayerNormBlock
from scalelab.blocks.layer_scale import LayerScaleBlock
from scalelab.blocks.linear import LinearBlock
from scalelab.blocks.lrn import LRNBlock
from scalelab.blocks.maxpool import MaxPoolBlock
from scalelab.blocks.mbconv import MBConvBlock
from scalelab.blocks.opaque import OpaqueBlock, OpaqueMergeBlock
from scalelab.blocks.residual import ResidualBlock
from scalelab.blocks.separable import SeparableBlock
from scalelab.blocks.shuffle_unit import ShuffleUnitBlock
from scalelab.blocks.squeeze_excite import SqueezeExciteBlock
from scalelab.blocks.wrap import WrapBlock

_CLASSES: tuple[type[Block], ...] = (
    ConvBlock, LinearBlock, MaxPoolBlock, AvgPoolBlock, GlobalAvgPoolBlock, AdaptiveAvgPoolBlock,
    BatchNormBlock, LRNBlock, ActivationBlock, DropoutBlock, FlattenBlock, AddBlock, ConcatBlock,
    SqueezeExciteBlock, ResidualBlock, BottleneckBlock, SeparableBlock, MBConvBlock, InceptionBlock,
    AuxClassifierBlock, FusedMBConvBlock, WrapBlock, LayerNormBlock, LayerScaleBlock, ChannelLinearBlock,
    ChannelShuffleBlock, ChannelSplitBlock, ShuffleUnitBlock, OpaqueBlock, OpaqueMergeBlock,
)

#: kind name -> block model
KINDS: dict[str, type[Block]] = {cls.model_fields["kind"].default: cls for cls in _CLASSES}

#: any block, told apart by its ``kind``
AnyBlock = Annotated[Union[_CLASSES], Field(discriminator="kind")]  # type: ignore[valid-type]

for _nested in (InceptionBlock, WrapBlock):  # kinds whose fields hold blocks
    _nested.model_rebuild(_types_namespace={"AnyBlock": AnyBlock})

__all__ = ["AnyBlock", "Block", "KINDS"]
