"""The tensor-operation block kinds in specs: over a spread of parameters and ranks each built block
matches its analysis (as tests/test_block_kinds.py checks every kind); a spec chaining them is
analysed, built, and run against plain torch code doing the same, with its inference and training
memory equal to what torch holds; and every mistake is refused through the CLI with its place."""

from __future__ import annotations

import pytest
from cli_helpers import assert_refused, invoke
from hypothesis import HealthCheck, given, settings
from tensor_strategies import STRATEGIES
from test_block_kinds import _check

from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.analysis.memory_probe import block_peaks, training_step
from scalelab.graph import resolve
from scalelab.spec import parse_spec


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(kind, count_params, flop_counter_macs):
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[kind])
    def run(example):
        kind, params, shape = example
        _check(kind, params, shape, count_params, flop_counter_macs)

    run()


# A token pipeline and back to a map, each step a tensor kind (a conv at each end to train)
SPEC = """
name: tensor_ops
input: {channels: 3, resolution: 8}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, norm: none, activation: none}
  - {name: tokens, kind: reshape, shape: [8, 64]}
  - {name: t, kind: permute, dims: [1, 0]}
  - {name: scores, kind: softmax, dim: -1}
  - {name: centre, kind: reduce, op: mean, dims: [-1], keepdim: true, from: t}
  - {name: diff, kind: binary, op: sub, alpha: 2, from: [t, centre]}
  - {name: gated, kind: binary, op: mul, from: [diff, scores]}
  - {name: half, kind: unary, op: mul, scalar: 0.5}
  - {name: dense, kind: contiguous}
  - {name: heads, kind: reshape, shape: [64, 2, 4]}
  - {name: by_head, kind: permute, dims: [1, 0, 2]}
  - {name: h0, kind: select, dim: 0, index: 0}
  - {name: h1, kind: select, dim: 0, index: -1, from: by_head}
  - {name: both, kind: cat, dim: -1, from: [h0, h1]}
  - {name: pair, kind: stack, dim: 0, from: [h0, h1]}
  - {name: peak, kind: reduce, op: amax, dims: [0]}
  - {name: joined, kind: cat, dim: 1, from: [both, peak]}
  - {name: norms, kind: reduce, op: norm, dims: [0], keepdim: true}
  - {name: normed, kind: binary, op: div, from: [joined, norms]}
  - {name: chan, kind: permute, dims: [1, 0]}
  - {name: dense2, kind: contiguous}
  - {name: map, kind: reshape, shape: [12, 8, 8]}
  - {name: shifted, kind: roll, shifts: [1, -1], dims: [1, 2]}
  - {name: padded, kind: pad, pad: [1, 1, 2, 0], mode: reflect}
  - {name: crop, kind: slice, dim: 1, start: 1, stop: -1}
  - {name: crop2, kind: slice, dim: -1, start: 1, stop: 9, step: 1}
  - {name: up, kind: interpolate, scale_factor: 2, mode: bilinear}
  - {name: bounded, kind: unary, op: clamp, min: -1, max: 1}
  - {name: head, kind: conv, out: 4, kernel: 1, norm: none, activation: none}
  - {name: pooled, kind: reduce, op: mean, dims: [1, 2]}
  - {name: wide, kind: expand, shape: [2, 4]}
  - {name: spread, kind: reduce, op: var, dims: [0]}
"""


def plain(net, x):
    """The same network written as plain torch code, on the built network's two convolutions."""
    import torch
    import torch.nn.functional as F

    t = net.block("stem")(x).reshape(-1, 8, 64).permute(0, 2, 1)
    scores = torch.softmax(t, -1)
    diff = torch.sub(t, t.mean(-1, keepdim=True), alpha=2)
    heads = ((diff * scores) * 0.5).contiguous().reshape(-1, 64, 2, 4).permute(0, 2, 1, 3)
    h0, h1 = heads[:, 0], heads[:, -1]
    joined = torch.cat([torch.cat([h0, h1], -1), torch.stack([h0, h1], 1).amax(1)], 2)
    normed = joined / torch.linalg.vector_norm(joined, 2, 1, keepdim=True)
    m = normed.permute(0, 2, 1).contiguous().reshape(-1, 12, 8, 8)
    m = F.pad(torch.roll(m, (1, -1), (2, 3)), [1, 1, 2, 0], mode="reflect")[:, :, 1:-1, 1:9]
    m = F.interpolate(m, scale_factor=2, mode="bilinear").clamp(-1, 1)
    pooled = net.block("head")(m).mean((2, 3))
    return pooled.expand(2, -1, -1).permute(1, 0, 2).var(1)


def test_a_spec_of_tensor_kinds_runs_as_plain_torch_code():
    import torch

    from scalelab.build import build_module

    network = resolve(parse_spec(SPEC))
    assert network.blocks["spread"].out_shape == (4,)
    assert network.blocks["padded"].out_shape == (12, 10, 10)
    assert network.blocks["up"].out_shape == (12, 16, 16)
    net = build_module(network).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net(x), plain(net, x), atol=1e-5)
        outputs = net.forward_all(x)
    for name, b in network.blocks.items():
        assert tuple(outputs[name].shape) == (2, *b.out_shape), name


@pytest.mark.parametrize("batch", [1, 3])
def test_the_spec_holds_in_inference_what_torch_holds(batch):
    from scalelab.build import build_module

    network = resolve(parse_spec(SPEC))
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network),
                                                                                network.input_shape, batch)


@pytest.mark.parametrize("freeze_until", [None, "scores"])
def test_the_spec_keeps_for_training_what_torch_keeps(freeze_until):
    network = resolve(parse_spec(SPEC))
    model = training_memory(network, batch=2, optimizer="adam", freeze_until=freeze_until)
    real = training_step(network, "adam", batch=2, freeze_until=freeze_until)
    assert (model.weight_bytes, model.gradient_bytes) == (real["weight_bytes"], real["gradient_bytes"])
    assert model.saved_bytes == real["saved_bytes"]


def test_tensor_kinds_count_by_hand():
    # 8x64 tokens: softmax 5 ops each; mean 512 adds + 64 divides; sub with alpha 2 ops each;
    # cat copies 64x8; reflect pad writes 12x10x10; bilinear 7 ops per 12x16x16 output
    costs = {n: sum(c.ops for c in b.costs) for n, b in resolve(parse_spec(SPEC)).blocks.items()}
    assert costs["scores"] == 5 * 512 and costs["centre"] == 512 + 64 and costs["diff"] == 2 * 512
    assert costs["both"] == 512 and costs["padded"] == 1200 and costs["up"] == 7 * 12 * 16 * 16
    assert costs["tokens"] == costs["t"] == costs["h0"] == costs["crop"] == costs["wide"] == 0


@pytest.mark.parametrize("block, fragments", [
    ("{name: p, kind: permute, dims: [0, 0, 1]}", ["blocks[0].dims", "dims [0, 0, 1] name an axis twice"]),
    ("{name: p, kind: permute, dims: [1, 0]}",
     ["block 'p' (permute) cannot take input 3x4x4", "permute dims [1, 0] must name each of the 3 axes of 3x4x4"]),
    ("{name: r, kind: reshape, shape: [5, -1]}",
     ["block 'r' (reshape) cannot take input 3x4x4", "cannot reshape 3x4x4 (48 elements) to 5x-1"]),
    ("{name: r, kind: reshape, shape: [-1, -1]}", ["blocks[0].shape", "more than one -1"]),
    ("{name: r, kind: reshape, shape: [0, 48]}", ["blocks[0].shape", "empty axis"]),
    ("{name: u, kind: unary, op: mul}", ["blocks[0]", "unary 'mul' needs scalar"]),
    ("{name: u, kind: unary, op: exp, scalar: 2}", ["blocks[0]", "unary 'exp' takes no scalar"]),
    ("{name: u, kind: unary, op: clamp, min: 2, max: 1}", ["blocks[0]", "clamp's min 2.0 is above its max 1.0"]),
    ("{name: u, kind: unary, op: expp}", ["blocks[0].op", "'exp'"]),
    ("{name: s, kind: reduce, op: mean, dims: [], keepdim: true}", ["blocks[0].dims", "at least 1"]),
    ("{name: s, kind: reduce, op: sum, dims: [3]}", ["block 's' (reduce) cannot take input",
                                                     "reduce sum: dim 3 is out of range for 3x4x4 (valid: -3..2)"]),
    ("{name: s, kind: reduce, op: mean, dims: [0], p: 1}", ["blocks[0]", "p is norm's order"]),
    ("{name: s, kind: select, dim: 1, index: 4}", ["select: index 4 is out of range for axis 1 of 3x4x4 (size 4)"]),
    ("{name: s, kind: roll, shifts: [1, 2], dims: [0]}", ["blocks[0]", "roll takes one shift per axis"]),
    ("{name: s, kind: pad, pad: [1, 1, 1]}", ["blocks[0]", "no whole pair"]),
    ("{name: s, kind: pad, pad: [4, 4, 0, 0], mode: reflect}", ["reflect padding 4 is too large for an axis of 4"]),
    ("{name: s, kind: pad, pad: [1, 1], mode: reflect}", ["reflect padding pads the last 1 to 3 axes"]),
    ("{name: s, kind: interpolate, size: 8, scale_factor: 2}", ["blocks[0]", "size or scale_factor, one of the two"]),
    ("{name: s, kind: interpolate, size: 8, mode: linear}", ["linear interpolation takes (channels, *spatial) with 1"]),
    ("{name: s, kind: interpolate, size: 8, align_corners: true}", ["align_corners applies to linear"]),
    ("{name: s, kind: binary, op: mul, alpha: 2, from: [input, input]}", ["blocks[0]", "alpha scales b in add and sub"]),
    ("{name: s, kind: binary, op: mul, from: [input, input, input]}", ["binary mul takes two inputs (a mul b), got 3"]),
    ("{name: s, kind: cat, dim: 3, from: [input, input]}", ["cat: dim 3 is out of range for 3x4x4 (valid: -3..2)"]),
    ("{name: s, kind: slice, dim: 0, step: 0}", ["blocks[0].step", "greater than 0"]),
])
def test_mistakes_are_refused_through_the_cli(tmp_path, block, fragments):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\ninput: {{channels: 3, resolution: 4}}\nblocks:\n  - {block}\n")
    assert_refused(invoke("analyze", spec), "bad.yaml:4", *fragments)


def test_a_broadcast_that_cannot_be_is_refused_with_both_shapes(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {channels: 3, resolution: 4}\nblocks:\n"
                    "  - {name: v, kind: reduce, op: mean, dims: [0]}\n"
                    "  - {name: s, kind: binary, op: add, from: [input, v]}\n"
                    "  - {name: w, kind: reshape, shape: [2, 8], from: v}\n"
                    "  - {name: z, kind: binary, op: add, from: [input, w]}\n")
    assert_refused(invoke("analyze", spec), "bad.yaml:7", "block 'z' (binary) cannot take input 3x4x4 and 2x8",
                   "cannot broadcast 3x4x4 and 2x8 (sizes 2 and 4 meet at axis 1 of the result)")


def test_the_readme_example_has_the_shapes_it_states():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = re.search(r"\*\*Tensor operations\*\*.*?```yaml\n(.*?)```", readme, re.S)[1]
    network = resolve(parse_spec(f"name: readme\ninput: {{channels: 64, resolution: 7}}\nblocks:\n{example}"))
    shapes = {n: b.out_shape for n, b in network.blocks.items()}
    assert shapes == {"tokens": (64, 49), "t": (49, 64), "centre": (49, 1), "diff": (49, 64), "attn": (49, 64)}
    for line in example.splitlines():  # a comment states the block's output: its first shape after any ->
        name, comment = re.search(r"name: (\w+)", line)[1], line.partition("#")[2].rpartition("->")[2]
        stated = re.findall(r"\d+(?:x\d+)+", comment)
        assert not stated or stated[0] == "x".join(map(str, shapes[name])), line
    assert sum(c.ops for c in network.blocks["attn"].costs) == 5 * 49 * 64


def test_analysing_tensor_kinds_imports_no_torch(cli_fresh, tmp_path):
    spec = tmp_path / "tensor_ops.yaml"
    spec.write_text(SPEC)
    out, heavy = cli_fresh(["analyze", str(spec), "--mode", "train", "--format", "json"])
    assert '"name": "spread"' in out and heavy == []
