from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt, Real, channels_of
from scalelab.blocks.layers import LocalResponseNorm, Node, Shape


class LRNBlock(Block):
    """Defaults are AlexNet's (Krizhevsky et al. 2012, §3.3): n=5, alpha=1e-4, beta=0.75, k=2.
    ``alpha`` is given in torch's (and Caffe's) convention, which divides it by ``size``; the paper's
    formula does not, so its 1e-4 is 5e-4 here."""

    summary = "local response normalisation across channels (AlexNet)"
    takes_defaults = False
    kind: Literal["lrn"] = "lrn"
    size: PositiveInt = 5
    alpha: Real = Field(5e-4, description="multiplied by the mean (not the sum) of squares, as in torch")
    beta: Real = 0.75
    k: Real = 2.0

    def layers(self, inp: Shape) -> Node:
        channels_of(inp, self.kind)
        return LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
