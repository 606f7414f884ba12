"""The basic residual block of He et al. 2016 (two 3x3 convs), post- or pre-activation."""

from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, PositiveInt, Real, act_layer, channels_of, conv_norm_act,
    norm_layer,
)
from scalelab.blocks.layers import Node, Residual, Shape, ZeroPadShortcut, seq

Shortcut = Literal["A", "B", "C", "none"]
#: one conv of a residual body: (in, out, kernel, stride, groups)
ConvPiece = tuple[int, int, tuple[int, int], tuple[int, int], int]
SHORTCUT_HELP = (
    "He et al. 2016 §3.3: A zero-pads channels when the shape changes, B projects (1x1 conv) only "
    "then, C always projects; none makes a plain network"
)


def shortcut_layers(option: str, in_ch: int, out_ch: int, stride: int, norm: str, eps: float,
                    preact: bool) -> Optional[Node]:
    """The shortcut branch, or None for the identity."""
    changes = stride != 1 or in_ch != out_ch
    if option == "A" and changes:
        return ZeroPadShortcut(stride, out_ch)
    if option == "C" or (option == "B" and changes):
        # a pre-activation projection sees the raw input and adds no norm (He et al. 2016b)
        return conv_norm_act(in_ch, out_ch, (1, 1), (stride, stride), norm="none" if preact else norm,
                             activation="none", norm_eps=eps, bias=False)
    return None


class ResidualKind(Block):
    """Parameters and assembly shared by the basic and bottleneck residual blocks."""

    out: Channels = Field(description="output channels")
    stride: PositiveInt = 1
    shortcut: Shortcut = Field("B", description=SHORTCUT_HELP)
    preact: bool = Field(False, description="pre-activation ordering: norm, activation, conv (He et al. 2016b)")
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def convs(self, pieces: list[ConvPiece], after: "dict[int, Node | None] | None" = None) -> Node:
        """The body: (in, out, kernel, stride, groups) per conv. Post-activation: conv, norm,
        activation (none after the last, it follows the add). Pre-activation: norm, activation, conv.
        ``after`` puts a node after the conv of that index (a squeeze-excite)."""
        layers = []
        for i, (cin, cout, kernel, stride, groups) in enumerate(pieces):
            if i and (extra := (after or {}).get(i - 1)) is not None:
                layers.append(extra)
            if self.preact:
                layers.append(seq(norm_layer(self.norm, cin, self.norm_eps), act_layer(self.activation)))
                layers.append(conv_norm_act(cin, cout, kernel, stride, groups=groups, norm="none",
                                            activation="none", bias=False))
            else:
                last = i == len(pieces) - 1
                layers.append(conv_norm_act(cin, cout, kernel, stride, groups=groups, norm=self.norm,
                                            norm_eps=self.norm_eps, activation="none" if last else self.activation))
        return seq(*layers)

    def join(self, body: Node, in_ch: int) -> Node:
        """Body plus shortcut; post-activation applies the activation after the add."""
        post = None if self.preact else act_layer(self.activation)
        if self.shortcut == "none":
            return seq(body, post)
        shortcut = shortcut_layers(self.shortcut, in_ch, self.out, self.stride, self.norm, self.norm_eps, self.preact)
        return Residual(body, shortcut, post)


class ResidualBlock(ResidualKind):
    summary = "basic residual block: two 3x3 convs and a shortcut (ResNet-18/34, CIFAR ResNets)"
    kind: Literal["residual"] = "residual"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        s = (self.stride, self.stride)
        return self.join(self.convs([(in_ch, self.out, (3, 3), s, 1), (self.out, self.out, (3, 3), (1, 1), 1)]), in_ch)
