"""The basic residual block of He et al. 2016 (two 3x3 convs), post- or pre-activation."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, PositiveInt, act_layer, channels_of, conv_norm_act, norm_layer,
)
from scalelab.blocks.layers import Node, Residual, Shape, ZeroPadShortcut, seq

Shortcut = Literal["A", "B", "C", "none"]
SHORTCUT_HELP = (
    "He et al. 2016 §3.3: A zero-pads channels when the shape changes, B projects (1x1 conv) only "
    "then, C always projects; none makes a plain network"
)


def shortcut_layers(option: str, in_ch: int, out_ch: int, stride: int, norm: str, eps: float, preact: bool):
    """The shortcut branch, or None for the identity."""
    changes = stride != 1 or in_ch != out_ch
    if option == "A" and changes:
        return ZeroPadShortcut(stride, out_ch)
    if option == "C" or (option == "B" and changes):
        # a pre-activation projection sees the raw input and adds no norm (He et al. 2016b)
        return conv_norm_act(in_ch, out_ch, (1, 1), (stride, stride), norm="none" if preact else norm,
                             activation="none", norm_eps=eps, bias=False)
    return None


def assemble(body: Node, shortcut: Node | None, option: str, preact: bool, activation: str) -> Node:
    """Join body and shortcut; post-activation applies the activation after the add."""
    post = None if preact else act_layer(activation)
    if option == "none":
        return seq(body, post)
    return Residual(body, shortcut, post)


class ResidualBlock(Block):
    summary = "basic residual block: two 3x3 convs and a shortcut (ResNet-18/34, CIFAR ResNets)"
    kind: Literal["residual"] = "residual"
    out: Channels = Field(description="output channels")
    stride: PositiveInt = 1
    shortcut: Shortcut = Field("B", description=SHORTCUT_HELP)
    preact: bool = Field(False, description="pre-activation ordering: norm, activation, conv")
    norm: Norm = "batchnorm"
    norm_eps: float = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        k3, s = (3, 3), (self.stride, self.stride)
        if self.preact:
            body = seq(
                norm_layer(self.norm, in_ch, self.norm_eps), act_layer(self.activation),
                conv_norm_act(in_ch, self.out, k3, s, norm=self.norm, activation=self.activation,
                              norm_eps=self.norm_eps, bias=False),
                conv_norm_act(self.out, self.out, k3, norm="none", activation="none", bias=False),
            )
        else:
            body = seq(
                conv_norm_act(in_ch, self.out, k3, s, norm=self.norm, activation=self.activation,
                              norm_eps=self.norm_eps),
                conv_norm_act(self.out, self.out, k3, norm=self.norm, activation="none", norm_eps=self.norm_eps),
            )
        shortcut = shortcut_layers(self.shortcut, in_ch, self.out, self.stride, self.norm, self.norm_eps, self.preact)
        return assemble(body, shortcut, self.shortcut, self.preact, self.activation)
