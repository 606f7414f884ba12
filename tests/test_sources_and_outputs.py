"""Source blocks (``param``: a learned tensor or a buffer, no input) and blocks with several outputs
(``split``, ``unbind``: views named ``block.0``, ``block.1``, ... in ``from:``), in every consumer:
each primitive face by face against its torch module, a network of them against the module built
from its spec (shapes of every output, parameters, MACs, inference memory per block, training
memory and compute of a real step), and bad input through the CLI."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from cli_helpers import assert_refused, invoke
from scalelab.analysis import analyze
from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.blocks import layers as L
from scalelab.blocks.layers.plumbing import Param, Split, Unbind
from scalelab.graph import resolve
from scalelab.spec import parse_spec

torch = pytest.importorskip("torch")

# ranks 1 to 3 per sample go through every consumer: (16, 6) and (96,) beside (C, H, W)
NETWORK = """
name: plumbing
input: {channels: 3, resolution: 8}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3}
  - {name: sp, kind: split, dim: 0, sizes: [3, 5]}
  - {name: a, kind: conv, out: 5, kernel: 1, from: sp.0}
  - {name: j, kind: add, from: [a, sp.1]}
  - {name: cols, kind: split, dim: -1, sizes: [2, 6]}
  - {name: wide, kind: conv, out: 5, kernel: 1, from: cols.1}
  - {name: u, kind: unbind, dim: 0}
  - {name: pos, kind: param, shape: [1, 8, 6], batch_axis: 0}
  - {name: s2, kind: add, from: [u.0, u.4, pos]}
  - {name: rows, kind: concat, from: [s2, u.2]}
  - {name: flat, kind: flatten}
  - {name: scale, kind: param, shape: [96], trainable: false}
  - {name: mix, kind: add, from: [flat, scale]}
  - {name: fc, kind: linear, out: 10}
"""


def _network():
    return resolve(parse_spec(NETWORK))


# --------------------------------------------------------------------------------------------------
# The primitives, face by face


@pytest.mark.parametrize("layer", [Param((4, 3)), Param((1, 5, 2), batch_axis=0), Param((7,), trainable=False),
                                   Param(())])
def test_param_faces_agree_with_its_module(layer):
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.memory_probe import dispatch_peak

    batch, out = 3, layer.out_shape(())
    module = layer.torch_module().train()
    like = torch.randn(batch, 2)
    kept = []
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(
            lambda t: kept.append(t) or t, lambda t: t):
        y = module(like)
    assert tuple(y.shape) == (batch, *out)
    assert y.untyped_storage().data_ptr() == module.weight.untyped_storage().data_ptr()  # a view, no copy
    cost = layer.cost((), out)
    assert cost.params == sum(p.numel() for p in module.parameters()) == (L.elements(layer.shape) * layer.trainable)
    assert sum(b.numel() for b in module.buffers()) == L.elements(layer.shape) * (not layer.trainable)
    assert tuple(module.state_dict()["weight"].shape) == layer.shape  # the tensor as the module holds it
    assert counter.get_total_flops() == 2 * batch * cost.macs == 0 and cost.ops == 0
    assert kept == [] and layer.saved((), out, True, False, "cpu") == L.Saved()
    if layer.trainable:
        (y * 2).sum().backward()
        assert torch.equal(module.weight.grad, torch.full(layer.shape, 2.0 * batch))
    module.eval()
    assert dispatch_peak(lambda: module(like), module) == 4 * layer.inner_peak((), out).peak_elems == 0
    assert L.latency_of(layer) == (L.LatencyClass.FREE, None)


SEVERAL = [
    (Split(0, (3, 5)), (8, 4, 4)),
    (Split(-1, (1, 1, 2)), (3, 4)),
    (Split(1, (6,)), (2, 6, 3, 2)),
    (Unbind(0), (3, 5)),
    (Unbind(-2), (2, 4, 3)),
    (Unbind(0), (4,)),
]


@pytest.mark.parametrize("layer, shape", SEVERAL)
def test_split_and_unbind_faces_agree_with_their_modules(layer, shape):
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.memory_probe import dispatch_peak

    batch = 3
    module = layer.torch_module()
    x = torch.randn(batch, *shape, requires_grad=True) * 1  # a non-leaf input, as inside a network
    kept = []
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(
            lambda t: kept.append(t) or t, lambda t: t):
        ys = module(x)
    assert [tuple(y.shape[1:]) for y in ys] == list(layer.pieces(shape))
    assert all(y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for y in ys)  # views
    out = layer.out_shape(shape)
    assert out == shape  # what the outputs view together
    cost = layer.cost(shape, out)
    assert counter.get_total_flops() == 0 == cost.macs == cost.ops == cost.params
    assert kept == [] and layer.saved(shape, out, False, True, "cpu").view
    assert layer.train_macs(shape, out) == L.TrainMacs()
    peak = dispatch_peak(lambda: module(torch.randn(batch, *shape)))
    assert peak == 4 * batch * (L.elements(shape) + layer.inner_peak(shape, out).peak_elems)  # the input only
    assert L.latency_of(layer) == (L.LatencyClass.FREE, None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_split_pieces_are_torch_split_shapes(shape, data):
    """Any rank, any axis (negative too), any sizes adding up to the axis; others are refused."""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    axis = dim % len(shape)
    cuts = sorted(data.draw(st.sets(st.integers(1, shape[axis] - 1), max_size=shape[axis] - 1))) \
        if shape[axis] > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, shape[axis]])]
    layer = Split(dim, tuple(sizes))
    x = torch.zeros(2, *shape)
    assert [tuple(y.shape[1:]) for y in layer.torch_module()(x)] == list(layer.pieces(tuple(shape)))
    with pytest.raises(L.ShapeError, match=f"add up to {shape[axis] + 1}, but dim {dim}"):
        Split(dim, (*sizes, 1)).out_shape(tuple(shape))


def test_an_axis_the_shape_lacks_is_a_shape_error():
    with pytest.raises(L.ShapeError, match="split along dim 3 needs a tensor of at least 4 dimensions per sample, "
                                           "got 2x3"):
        Split(3, (1,)).out_shape((2, 3))
    with pytest.raises(L.ShapeError, match="unbind along dim -3 needs .* at least 3 dimensions"):
        Unbind(-3).pieces((2, 3))


# --------------------------------------------------------------------------------------------------
# A network of them against the module built from its spec


def test_every_output_shape_and_total_agrees_with_the_built_module():
    from scalelab.verify import verify

    analysis, checks = verify(parse_spec(NETWORK))
    by_name = {c.quantity: c for c in checks}
    assert all(c.agrees for c in checks), checks
    # 14 blocks: 11 of one output, sp and cols of 2, u of 5
    assert (by_name["block output shapes"].scalelab, by_name["block output shapes"].reference) == \
        ("14 blocks, 20 outputs", "20 equal")
    network = analysis.network
    assert network.blocks["sp"].outputs == ((3, 8, 8), (5, 8, 8))
    assert network.blocks["cols"].outputs == ((5, 8, 2), (5, 8, 6))
    assert network.blocks["u"].outputs == ((8, 6),) * 5
    assert network.blocks["pos"].out_shape == (8, 6) and network.blocks["pos"].inputs == []
    assert network.blocks["s2"].sources == ["u", "u", "pos"]
    # by hand: stem 3*8*9 + 2*8 (conv, batchnorm); a 3*5 + 2*5; wide 5*5 + 2*5; pos 48; scale a buffer; fc 96*10 + 10
    assert analysis.total.params == 216 + 16 + 15 + 10 + 25 + 10 + 48 + 970 == by_name["parameters"].reference
    assert analysis.total.macs == 216 * 64 + 15 * 64 + 25 * 48 + 960 == by_name["MACs"].reference


def test_a_source_holds_weights_not_activations():
    rows = {r.name: r for r in analyze(parse_spec(NETWORK), batch=2).blocks}
    assert rows["pos"].cost.activations == 0 and rows["pos"].cost.params == 48
    assert rows["scale"].cost.params == 0  # a buffer: no parameter
    memory = inference_memory(_network(), batch=2)
    assert memory.blocks["pos"].weight_bytes == 48 * 4 and memory.blocks["pos"].activation_bytes == 0
    assert memory.blocks["scale"].weight_bytes == 0  # as batchnorm's running statistics: not a parameter


@pytest.mark.parametrize("batch", [1, 3])
def test_inference_memory_equals_what_torch_holds(batch):
    """Per block and at the peak (CPU: no allocator rounding); the split's views keep its input alive."""
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = _network()
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, batch)
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, batch)
    # by hand while u runs: the network input (3x8x8, its caller's) and wide's output (5x8x6), which
    # u's outputs view; j's output, viewed by cols, went once wide (its only reader) ran; pos adds nothing
    assert model.blocks["u"].alive_bytes == model.blocks["pos"].alive_bytes == 4 * batch * (3 * 64 + 5 * 48)


@pytest.mark.parametrize("freeze_until", [None, "j", "pos"])
def test_training_memory_equals_a_real_step(freeze_until):
    from scalelab.analysis.memory_probe import training_step

    network = _network()
    model = training_memory(network, batch=4, optimizer="adam", freeze_until=freeze_until)
    real = training_step(network, "adam", batch=4, freeze_until=freeze_until)
    assert model.weight_bytes == real["weight_bytes"]
    assert model.gradient_bytes == real["gradient_bytes"]
    assert model.optimizer_bytes == real["optimizer_bytes"]
    assert model.saved_bytes == real["saved_bytes"]


@pytest.mark.parametrize("freeze_until", [None, "pos"])
def test_training_compute_equals_flop_counter(freeze_until):
    from test_train_compute import counted

    from scalelab.analysis.train_compute import training_compute
    from scalelab.analysis.train_walk import frozen_prefix

    network = _network()
    result = training_compute(network, batch=2, frozen=frozen_prefix(network, freeze_until))
    assert sum(counted(network, 2, freeze_until).values()) == 2 * result.total_macs()


def test_latency_gives_sources_and_views_no_kernel():
    from scalelab.analysis.latency import predict_latency

    prediction = predict_latency(_network(), "t4", batch=8)
    for name in ("sp", "cols", "u", "pos", "scale"):
        assert prediction.blocks[name].kernels == 0 and prediction.blocks[name].ms == 0.0


def test_the_report_names_every_output():
    from scalelab.report import build_report
    from scalelab.report.units import human_shape

    rows = {r.name: r for r in build_report(analyze(parse_spec(NETWORK))).rows}
    assert human_shape(rows["sp"].out_shape) == "3x8x8, 5x8x8"
    assert human_shape(rows["u"].out_shape) == "8x6*5"
    assert human_shape(rows["pos"].out_shape) == "8x6"


def test_json_and_csv_give_every_output(tmp_path):
    import csv
    import io
    import json

    spec = tmp_path / "plumbing.yaml"
    spec.write_text(NETWORK)
    rows = {r["name"]: r for r in json.loads(invoke("analyze", spec, "--format", "json").stdout)["rows"]}
    assert rows["sp"]["out_shape"] == [[3, 8, 8], [5, 8, 8]] and rows["u"]["out_shape"] == [[8, 6]] * 5
    assert rows["pos"]["out_shape"] == [8, 6] and rows["pos"]["activation_elements"] == 0
    table = {r["name"]: r for r in csv.DictReader(io.StringIO(invoke("analyze", spec, "--format", "csv").stdout))}
    assert table["sp"]["out_shape"] == "3x8x8, 5x8x8" and table["u"]["out_shape"] == "8x6*5"


# --------------------------------------------------------------------------------------------------
# Bad input: one located message, exit 2

HEAD = ("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
        "  - {name: stem, kind: conv, out: 8, kernel: 3}\n"
        "  - {name: sp, kind: split, dim: 0, sizes: [3, 5]}\n")


def _refused(tmp_path, text, *fragments):
    spec = tmp_path / "t.yaml"
    spec.write_text(text)
    result = invoke("analyze", spec)
    assert_refused(result, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("tail, fragments", [
    ("  - {name: c, kind: conv, out: 4, from: sp.7}\n",
     ["t.yaml:6:", "blocks[2].from: block 'c' takes output 7 of 'sp', which has 2 outputs (sp.0 to sp.1)"]),
    ("  - {name: u, kind: unbind, dim: 1, from: stem}\n  - {name: c, kind: flatten, from: u.8}\n",
     ["t.yaml:7:", "takes output 8 of 'u', which has 8 outputs (u.0 to u.7)"]),
    ("  - {name: c, kind: conv, out: 4, from: sp}\n",
     ["t.yaml:6:", "block 'c' takes input from 'sp', a 'split' block with several outputs; name one of them with "
                   "from: sp.0, sp.1, ..."]),
    ("  - {name: c, kind: conv, out: 4}\n",
     ["t.yaml:6:", "blocks[2]: block 'c' would take the output of the previous block, 'sp', a 'split' block"]),
    ("  - {name: c, kind: conv, out: 4, from: stem.0}\n",
     ["unknown block or stage 'stem.0' ('stem' has one output: name it 'stem')"]),
    ("  - {name: sp.1, kind: conv, out: 4, from: stem}\n",
     ["t.yaml:6:", "block name 'sp.1' also names output 1 of the 'split' block 'sp' at blocks[1]"]),
    ("  - {name: p, kind: param, shape: [4], from: stem}\n",
     ["t.yaml:6:", "blocks[2].from: a 'param' block takes no input (it is a source"]),
    ("  - {name: p, kind: param, shape: [4, 2], batch_axis: 1}\n",
     ["blocks[2]", "batch_axis 1 must name an axis of size 1 in shape [4, 2]"]),
    ("  - {stage: s, repeat: 2, block: {kind: unbind, dim: 0}}\n",
     ["blocks[2].block.kind: a stage repeats its block", "a 'unbind' block gives several outputs"]),
    ("  - {name: c, kind: conv, out: 4, from: sp.0}\n  - {name: d, kind: split, dim: 0, sizes: [4]}\n",
     ["t.yaml:7:", "the network ends on block 'd', a 'split' block with several outputs"]),
    ("  - {name: d, kind: split, dim: 3, sizes: [4], from: sp.1}\n",
     ["block 'd' (split) cannot take input 5x8x8: split along dim 3 needs a tensor of at least 4 dimensions"]),
    ("  - {name: d, kind: split, dim: 1, sizes: [4, 5], from: sp.1}\n",
     ["split sizes [4, 5] add up to 9, but dim 1 of 5x8x8 has 8"]),
])
def test_bad_wiring_is_one_located_message(tmp_path, tail, fragments):
    _refused(tmp_path, HEAD + tail, *fragments)


@pytest.mark.parametrize("inner, rule", [
    ("{kind: param, shape: [4]}", "'param' takes no input: put it before the host"),
    ("{kind: split, dim: 0, sizes: [4]}", "'split' gives several outputs: put it after the host"),
])
def test_a_source_or_a_split_inside_a_block_is_refused(tmp_path, inner, rule):
    text = ("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
            f"  - {{name: w, kind: wrap, body: [{{kind: conv, out: 4}}, {inner}]}}\n")
    _refused(tmp_path, text, "t.yaml:4:", "blocks[0].body[1].kind: a body block takes the previous one's output", rule)


def test_an_exact_block_name_wins_over_an_output_name():
    """``x.1`` names the block of that name when no several-output block ``x`` exists."""
    network = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
                                 "  - {name: x.1, kind: conv, out: 4}\n"
                                 "  - {name: y, kind: conv, out: 2, from: x.1}\n"))
    assert network.blocks["y"].sources == ["x.1"] and network.blocks["y"].in_shape == (4, 8, 8)


def test_the_readme_example_gives_the_shapes_and_parameters_it_states():
    """README, 'The spec', 'Sources and several outputs': each comment's last shape is the block's
    Output as the report writes it; the param's parameters are as stated."""
    import re
    from pathlib import Path

    from scalelab.report import build_report
    from scalelab.report.units import human_shape

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Sources and several outputs.**"):]
    snippet = section[section.index("```yaml\n") + 8: section.index("```\n", section.index("```yaml\n") + 8)]
    spec = "name: readme\ninput: {channels: 192, resolution: 14}\nblocks:\n" + snippet
    rows = {r.name: r for r in build_report(analyze(parse_spec(spec))).rows}
    lines = [line for line in snippet.splitlines() if "#" in line]
    assert len(lines) == 6
    for line in lines:
        name = re.search(r"name: (\w+)", line)[1]
        shown = re.findall(r"\d+(?:x\d+)+(?:\*\d+)?", line.split("#")[1])[-1]
        assert human_shape(rows[name].out_shape) == shown, line
    assert f"{rows['pos'].values['params']:,} parameters" in snippet


def test_explain_writes_out_sources_and_outputs(tmp_path):
    spec = tmp_path / "plumbing.yaml"
    spec.write_text(NETWORK)
    result = invoke("explain", spec)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = lines.index("block pos (param), no input -> 8x6")
    assert lines[at + 1:at + 4] == ["  param 1x8x6 (a learned tensor)", "    params  1 × 8 × 6 = 48",
                                    "  block total: MACs 0; params 48; other ops 0"]
    assert "  param 96 (a buffer: no parameters)" in lines
    assert "block u (unbind), 5x8x6 -> 8x6*5" in lines and "block sp (split), 8x8x8 -> 3x8x8, 5x8x8" in lines


@pytest.mark.parametrize("freeze_until, cached", [("u", ("u",)), ("pos", ("u", "pos"))])
def test_cached_features_are_the_outputs_read_and_no_weight(freeze_until, cached):
    """Frozen through u, the trained blocks read u.0, u.4 and u.2 (8x6 each): three of its five
    outputs are cached; a frozen param is a weight, the same for every image, and adds nothing."""
    from scalelab.analysis.transfer import transfer_costs

    t = transfer_costs(_network(), freeze_until)
    assert t.cached_blocks == cached
    assert t.cached_feature_bytes_per_image == 4 * 3 * 8 * 6


def test_scalars_per_sample_are_refused_where_they_cannot_join(tmp_path):
    """unbind of a vector gives one value per sample: add takes them, concat has no axis to join."""
    text = ("name: t\ninput: {channels: 3, resolution: 4}\nblocks:\n  - {name: g, kind: global_avgpool}\n"
            "  - {name: f, kind: flatten}\n  - {name: u, kind: unbind, dim: 0}\n")
    network = resolve(parse_spec(text + "  - {name: s, kind: add, from: [u.0, u.2]}\n"))
    assert network.blocks["u"].outputs == ((), (), ()) and network.blocks["s"].out_shape == ()
    _refused(tmp_path, text + "  - {name: c, kind: concat, from: [u.0, u.1]}\n",
             "t.yaml:7:5: blocks[3]: block 'c' (concat) cannot take input a scalar and a scalar: cannot concatenate "
             "a scalar per sample")


# A ViT-like front with the tensor operations: a class token joined to the patch tokens, a position
# embedding added, a layer scale multiplied (a product keeps both factors: the scale is a weight), a
# bias expanded over the tokens, a split of the features, an unbind of the tokens
TOKENS = """
name: tokens
input: {channels: 3, resolution: 8}
blocks:
  - {name: patch, kind: conv, out: 16, kernel: 4, stride: 4, padding: valid, norm: none, activation: none, bias: true}
  - {name: flat, kind: reshape, shape: [16, -1]}
  - {name: t, kind: permute, dims: [1, 0]}
  - {name: cls, kind: param, shape: [1, 1, 16], batch_axis: 0}
  - {name: x, kind: cat, dim: 0, from: [cls, t]}
  - {name: pos, kind: param, shape: [1, 5, 16], batch_axis: 0}
  - {name: xp, kind: binary, op: add, from: [x, pos]}
  - {name: gamma, kind: param, shape: [16]}
  - {name: scaled, kind: binary, op: mul, from: [xp, gamma]}
  - {name: bias, kind: param, shape: [1, 16]}
  - {name: wide, kind: expand, shape: [5, 16]}
  - {name: shifted, kind: binary, op: add, from: [scaled, wide]}
  - {name: qkv, kind: split, dim: -1, sizes: [4, 4, 8]}
  - {name: m, kind: binary, op: mul, from: [qkv.0, qkv.1]}
  - {name: mc, kind: cat, dim: -1, from: [m, qkv.2]}
  - {name: u, kind: unbind, dim: 0}
  - {name: s, kind: binary, op: add, from: [u.0, u.4]}
  - {name: fc, kind: linear, out: 10}
"""


def test_tokens_agree_with_the_built_module():
    from scalelab.verify import verify

    analysis, checks = verify(parse_spec(TOKENS))
    assert all(c.agrees for c in checks), checks
    blocks = analysis.network.blocks
    assert blocks["x"].out_shape == (5, 16) and blocks["qkv"].outputs == ((5, 4), (5, 4), (5, 8))
    assert blocks["u"].outputs == ((12,),) * 5 and blocks["fc"].out_shape == (10,)
    # by hand: patch 3*16*16 + 16; cls 16, pos 80, gamma 16, bias 16; fc 12*10 + 10
    assert analysis.total.params == 784 + 16 + 80 + 16 + 16 + 130


@pytest.mark.parametrize("batch", [1, 3])
def test_tokens_inference_memory_equals_what_torch_holds(batch):
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(TOKENS))
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, batch)
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, batch)


@pytest.mark.parametrize("freeze_until", [None, "x", "gamma"])
def test_tokens_training_memory_and_compute_equal_a_real_step(freeze_until):
    from test_train_compute import counted

    from scalelab.analysis.memory_probe import training_step
    from scalelab.analysis.train_compute import training_compute
    from scalelab.analysis.train_walk import frozen_prefix

    network = resolve(parse_spec(TOKENS))
    model = training_memory(network, batch=4, optimizer="sgd-momentum", freeze_until=freeze_until)
    real = training_step(network, "sgd-momentum", batch=4, freeze_until=freeze_until)
    assert (model.weight_bytes, model.gradient_bytes, model.optimizer_bytes, model.saved_bytes) == \
        (real["weight_bytes"], real["gradient_bytes"], real["optimizer_bytes"], real["saved_bytes"])
    result = training_compute(network, batch=2, frozen=frozen_prefix(network, freeze_until))
    assert sum(counted(network, 2, freeze_until).values()) == 2 * result.total_macs()


@pytest.mark.parametrize("kind", ["param", "split", "unbind"])
def test_each_kind_counts_and_shapes_as_its_built_module(kind):
    """tests/test_block_kinds.py's check for these kinds: parameters, MACs (none) and every output
    shape of the module built from the block's layers, over hypothesis' examples."""
    from plumbing_strategies import STRATEGIES
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.blocks import KINDS
    from scalelab.build import to_torch

    @settings(max_examples=40, deadline=None)
    @given(STRATEGIES[kind])
    def check(example):
        _, params, shape = example
        block = KINDS[kind].model_validate(params)
        tree = block.layers(shape)
        walked = L.walk(tree, shape)
        module = to_torch(tree).eval()
        with FlopCounterMode(display=False) as counter:
            out = module(torch.randn(2, *(shape or (3,))))  # a source reads only the batch size
        outs = list(out) if block.several_outputs else [out]
        expected = list(tree.pieces(shape)) if block.several_outputs else [walked.out]
        assert [tuple(o.shape) for o in outs] == [(2, *s) for s in expected]
        assert sum(c.params for c in walked.costs) == sum(p.numel() for p in module.parameters())
        assert counter.get_total_flops() == 0 == sum(c.macs for c in walked.costs)

    check()
