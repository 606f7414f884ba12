"""Wiring a spec into a graph: sequential defaults, from:, merges, stages, training-only heads."""

import pytest

from scalelab import ScalelabError, build_module, parse_spec
from scalelab.graph import resolve

HEAD = "name: t\ninput: {channels: 3, resolution: 16}\ndefaults: {norm: none, activation: relu}\nblocks:\n"


def net(blocks: str):
    return resolve(parse_spec(HEAD + blocks, "t.yaml"))


def test_stage_unrolls_with_stride_on_first_repeat_only():
    n = net("  - {stage: s, repeat: 3, stride: 2, block: {kind: conv, out: 4}}\n")
    assert list(n.blocks) == ["s.0", "s.1", "s.2"]
    assert [b.block.stride for b in n.blocks.values()] == [(2, 2), (1, 1), (1, 1)]
    assert n.blocks["s.2"].out_shape == (4, 8, 8)


def test_from_builds_a_dag_and_merges_join_it():
    n = net(
        "  - {name: a, kind: conv, out: 4}\n"
        "  - {name: b, kind: conv, out: 4, kernel: 1, from: input}\n"
        "  - {name: sum, kind: add, from: [a, b]}\n"
        "  - {name: cat, kind: concat, from: [sum, a, input]}\n"
    )
    assert set(n.graph.predecessors("sum")) == {"a", "b"}
    assert n.blocks["cat"].out_shape == (11, 16, 16)
    assert n.output == "cat"


def test_training_only_blocks_are_side_branches():
    n = net(
        "  - {name: a, kind: conv, out: 4}\n"
        "  - {name: aux, kind: linear, out: 2, training_only: true}\n"
        "  - {name: b, kind: conv, out: 4}\n"
    )
    assert n.blocks["aux"].inputs == ["a"] and n.blocks["b"].inputs == ["a"] and n.output == "b"
    module = build_module(n).eval()
    import torch

    assert tuple(module(torch.zeros(1, 3, 16, 16)).shape) == (1, 4, 16, 16)
    module.train()
    main, aux = module(torch.zeros(2, 3, 16, 16))
    assert tuple(aux.shape) == (2, 2)


@pytest.mark.parametrize(
    "blocks,message",
    [
        ("  - {name: a, kind: conv, out: 4, from: b}\n  - {name: b, kind: conv, out: 4, from: a}\n",
         r"t.yaml:5:5: blocks\[0\]: from: makes a cycle: a -> b -> a"),
        ("  - {name: a, kind: conv, out: 4, from: inptu}\n", "unknown block or stage 'inptu' .did you mean 'input'"),
        ("  - {name: a, kind: conv, out: 4}\n  - {name: a, kind: conv, out: 4}\n", "block name 'a' is used twice"),
        ("  - {name: s, kind: add}\n", "joins two or more inputs"),
        ("  - {name: a, kind: conv, out: 4}\n  - {name: p, kind: conv, out: 4, from: [a, input]}\n", "takes one input, got 2"),
        ("  - {name: a, kind: conv, out: 4, stride: 2}\n  - {name: s, kind: add, from: [a, input]}\n",
         r"t.yaml:6:5: blocks\[1\]: block 's' \(add\) cannot take input 4x8x8 and 3x16x16: cannot add"),
    ],
)
def test_wiring_errors_name_the_place(blocks, message):
    with pytest.raises(ScalelabError, match=message):
        net(blocks)
