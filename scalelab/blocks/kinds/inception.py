"""The Inception module (Szegedy et al. 2015): parallel branches on one input, concatenated.
Each branch is a list of ordinary blocks (usually 1x1 reductions before 3x3 and 5x5 convs)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Parallel, Shape, seq, walk
from scalelab.blocks.registry import BranchBlock


class InceptionBlock(Block):
    summary = "inception module: parallel branches of blocks, concatenated along channels"
    kind: Literal["inception"] = "inception"
    branches: list[list[BranchBlock]] = Field(
        min_length=1, description="each branch: a list of blocks, each taking the previous one's output "
                                  "(no merge kinds; no from, training_only or name)")

    def layers(self, inp: Shape) -> Node:
        branches = []
        for branch in self.branches:
            shape, nodes = inp, []
            for block in branch:
                node = block.layers(shape)
                shape = walk(node, shape).out
                nodes.append(node)
            branches.append(seq(*nodes))
        return Parallel(tuple(branches))
