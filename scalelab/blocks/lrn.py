from typing import Literal

from scalelab.blocks.base import Block, PositiveInt, channels_of
from scalelab.blocks.layers import LocalResponseNorm, Node, Shape


class LRNBlock(Block):
    """Defaults are AlexNet's (Krizhevsky et al. 2012, §3.3): n=5, alpha=1e-4, beta=0.75, k=2."""

    summary = "local response normalisation across channels (AlexNet)"
    takes_defaults = False
    kind: Literal["lrn"] = "lrn"
    size: PositiveInt = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def layers(self, inp: Shape) -> Node:
        channels_of(inp, self.kind)
        return LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
