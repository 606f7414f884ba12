"""Memory: inference peaks of hand-made graphs (worked out by hand below), best orders, and
training memory against what torch holds after a real backward and optimizer step."""

import sys

import pytest

from scalelab.analysis.memory import best_order, inference_memory, training_memory
from scalelab.analysis.memory_probe import training_step
from scalelab.build import build_module
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

# 1x1 convs without norm or activation: output = out channels x 4 x 4, params = in*out + out (bias).
CONV = "kind: conv, kernel: 1, norm: none, activation: none"


def net(blocks: str, channels: int = 1):
    return resolve(parse_spec(f"name: t\ninput: {{channels: {channels}, resolution: 4}}\nblocks:\n{blocks}"))


CHAIN = net(f"""
  - {{name: a, {CONV}, out: 2}}
  - {{name: b, {CONV}, out: 4}}
  - {{name: c, {CONV}, out: 1}}
""")

# In every hand count below the network input stays alive for the whole pass (its caller holds it),
# and a block's output is freed after its last consumer has run.


def test_chain_peak():
    # elements: input 16, a 32, b 64, c 16. Steps: a 16+32=48; b 16+a32+b64=112 (a freed after);
    # c 16+b64+c16=96.
    m = inference_memory(CHAIN)
    assert (m.peak_bytes, m.peak_block) == (112 * 4, "b")
    assert [m.blocks[n].alive_bytes for n in "abc"] == [48 * 4, 112 * 4, 96 * 4]
    assert [m.blocks[n].inner_peak_bytes for n in "abc"] == [32 * 4, 64 * 4, 16 * 4]  # a lone conv: its output
    # params a 1*2+2=4, b 2*4+4=12, c 4*1+1=5 -> 21
    assert m.weight_bytes == 21 * 4
    assert m.total_bytes == 21 * 4 + 112 * 4
    half = inference_memory(CHAIN, dtype="fp16", batch=3)
    assert (half.peak_bytes, half.weight_bytes) == (112 * 2 * 3, 21 * 2)
    assert half.blocks["b"].activation_bytes == 64 * 2 * 3


def test_residual_keeps_its_input_alive():
    # a 64, b 128, c 64. The add block writes one new 64-element sum. Steps: a 16+64=80;
    # b 16+a64+b128=208; c 16+a64+b128+c64=272 (b freed after); sum 16+a64+c64+sum64=208.
    m = inference_memory(net(f"""
  - {{name: a, {CONV}, out: 4}}
  - {{name: b, {CONV}, out: 8}}
  - {{name: c, {CONV}, out: 4}}
  - {{name: sum, kind: add, from: [a, c]}}
"""))
    assert [m.blocks[n].alive_bytes // 4 for n in ("a", "b", "c", "sum")] == [80, 208, 272, 208]
    assert (m.peak_bytes, m.peak_block) == (272 * 4, "c")
    assert m.blocks["sum"].inner_peak_bytes == 64 * 4


def test_inception_style_fork():
    # stem 32; branches 16, 32, 48; concat 96. Steps: stem 16+32=48; b1 16+32+16=64;
    # b2 16+32+16+32=96; b3 16+32+16+32+48=144 (stem freed after); cat 16+16+32+48+96=208.
    m = inference_memory(net(f"""
  - {{name: stem, {CONV}, out: 2}}
  - {{name: b1, {CONV}, out: 1, from: stem}}
  - {{name: b2, {CONV}, out: 2, from: stem}}
  - {{name: b3, {CONV}, out: 3, from: stem}}
  - {{name: cat, kind: concat, from: [b1, b2, b3]}}
"""))
    assert [m.blocks[n].alive_bytes // 4 for n in ("stem", "b1", "b2", "b3", "cat")] == [48, 64, 96, 144, 208]
    assert (m.peak_bytes, m.peak_block) == (208 * 4, "cat")


TWO_ORDERS = net(f"""
  - {{name: s, {CONV}, out: 4}}
  - {{name: p, {CONV}, out: 8}}
  - {{name: p2, {CONV}, out: 4}}
  - {{name: q, {CONV}, out: 1, from: s}}
  - {{name: cat, kind: concat, from: [p2, q]}}
""")


def test_two_orders_differ():
    # input 16 (always alive), s 64, p 128, p2 64, q 16, cat 80.
    # Spec order s,p,p2,q,cat: s 16+64=80, p 16+64+128=208, p2 16+s64+p128+p2 64=272 (s still waits
    #   for q), q 16+s64+p2 64+q16=160, cat 16+64+16+80=176 -> 272 at p2.
    # Order s,q,p,p2,cat: s 80, q 16+64+16=96, p 16+64+16+128=224 (s freed after), p2 16+16+128+64=224,
    #   cat 176 -> 224, first reached at p. The third order s,p,q,p2,cat also peaks at 224 (at q).
    spec_order = inference_memory(TWO_ORDERS)
    assert (spec_order.peak_bytes, spec_order.peak_block) == (272 * 4, "p2")
    other = inference_memory(TWO_ORDERS, order=["s", "q", "p", "p2", "cat"])
    assert (other.peak_bytes, other.peak_block) == (224 * 4, "p")
    best = best_order(TWO_ORDERS)
    assert best.exact and best.peak_bytes == 224 * 4
    assert inference_memory(TWO_ORDERS, order=best.order).peak_bytes == 224 * 4
    greedy = best_order(TWO_ORDERS, state_limit=0)
    assert not greedy.exact and greedy.peak_bytes == 224 * 4


def test_the_exact_order_search_of_a_deep_chain_leaves_the_recursion_limit_alone():
    # 3,000 ReLUs in a row, three times Python's default recursion limit: one order, whose peak is the
    # network's input (alive throughout, as in TWO_ORDERS), a block's input and its output: 3 x 3x8x8 x 4 bytes
    blocks = "\n".join(f"  - {{name: b{i}, kind: activation, function: relu}}" for i in range(3000))
    network = resolve(parse_spec(f"name: deep\ninput: {{channels: 3, resolution: 8}}\nblocks:\n{blocks}\n"))
    limit = sys.getrecursionlimit()
    best = best_order(network)
    assert best.exact and len(best.order) == 3000 and best.peak_bytes == 3 * 192 * 4
    assert sys.getrecursionlimit() == limit


# --------------------------------------------------------------------------------------------------
# Inside a block (layer granularity)


def test_inside_an_inverted_residual():
    # MBConv, 4 -> 4 channels on 4x4 (16 pixels), expansion 6 -> 24 channels, squeeze-excite to
    # max(1, int(4 * 0.25)) = 1 channel, ReLU6; identity skip. Per sample, x = 64, expanded = 384.
    # Layers: body = [expand (conv, bn, relu6), depthwise (conv, bn, relu6), SE gate, project (conv,
    # bn)], each [...] a nested sequence whose input the body keeps until it returns. Counted on top
    # of x (held by the caller); no layer works in place:
    #   expand: conv 384; bn 384 + 384 = 768; relu6 384 + 384 = 768                      -> 384 kept
    #   depthwise, over the kept 384: conv 384 + 384 = 768; bn 384 + 384 + 384 = 1152;
    #     relu6 384 (kept) + 384 (bn) + 384 = 1152                                        -> 384 kept
    #   SE gate x * body(x): body pool 24, conv 24 + 1, act 1 + 1, conv 1 + 24, sigmoid 24 + 24;
    #     then the product: 384 (gate input) + 24 (gate) + 384 (product) = 792            -> 384 kept
    #   project: 384 + conv 64 = 448; bn 384 + 64 + 64 = 512                              -> 64 kept
    #   residual add (identity shortcut): body 64 + sum 64 = 128.
    # Inner peak 1152 (the depthwise batchnorm and ReLU6); alive 64 + 1152 = 1216 per sample.
    # Block granularity (inputs and output only) would say 64 + 64.
    m = inference_memory(resolve(parse_spec("""
name: t
input: {channels: 4, resolution: 4}
blocks:
  - {name: mb, kind: mbconv, out: 4, expand: 6, se: 0.25}
""")), batch=2)
    assert m.blocks["mb"].inner_peak_bytes == 2 * 4 * 1152
    assert (m.peak_bytes, m.peak_block) == (2 * 4 * 1216, "mb")
    assert m.blocks["mb"].activation_bytes == 2 * 4 * 64


def test_inside_an_inception_block():
    # 4 channels on 4x4 (x = 64 per sample); every conv block is [conv, batchnorm, ReLU], a nested
    # sequence whose input its branch keeps until it returns.
    #   branch 1: 1x1 conv to 2 (32): conv 32, bn 32 + 32, relu 32 + 32          -> peak 64, out 32
    #   branch 2: 1x1 to 1 (16): peak 32, out 16; then 3x3 to 3 (48) over the kept 16:
    #             conv 16 + 48 = 64, bn 16 + 48 + 48 = 112, relu 112             -> peak 112, out 48
    #   branch 3: 1x1 to 8 (128): conv 128, bn 256, relu 256, out 128; then 1x1 to 1 (16) over the
    #             kept 128: conv 144, bn 160, relu 160                           -> peak 256, out 16
    # Finished branch outputs wait for the concat: branch 1 64; branch 2 32 + 112 = 144;
    # branch 3 32 + 48 + 256 = 336; concat 96 + 96 = 192. Inner peak 336; alive 64 + 336 = 400.
    m = inference_memory(resolve(parse_spec("""
name: t
input: {channels: 4, resolution: 4}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - name: inc
    kind: inception
    branches:
      - [{kind: conv, out: 2, kernel: 1}]
      - [{kind: conv, out: 1, kernel: 1}, {kind: conv, out: 3, kernel: 3}]
      - [{kind: conv, out: 8, kernel: 1}, {kind: conv, out: 1, kernel: 1}]
""")))
    assert m.blocks["inc"].inner_peak_bytes == 336 * 4
    assert (m.peak_bytes, m.peak_block) == (400 * 4, "inc")
    assert m.blocks["inc"].activation_bytes == 96 * 4


def test_views_share_their_input_storage():
    # input 16; conv 32. flatten and eval dropout are views of the conv output: they allocate nothing
    # and keep its 32 elements alive until the linear layer has run. Steps: conv 16+32=48;
    # flat 16+32+0=48; drop 16+32+0=48; fc 16+32+3=51.
    m = inference_memory(net(f"""
  - {{name: conv, {CONV}, out: 2}}
  - {{name: flat, kind: flatten}}
  - {{name: drop, kind: dropout, p: 0.5}}
  - {{name: fc, kind: linear, out: 3}}
"""))
    assert [m.blocks[n].alive_bytes // 4 for n in ("conv", "flat", "drop", "fc")] == [48, 48, 48, 51]
    assert m.blocks["flat"].inner_peak_bytes == 0 and m.blocks["flat"].activation_bytes == 32 * 4


def test_padding_copies_and_local_response_norm():
    # input 2 channels on 4x4 (32). A 3x3 reflect-padded conv first writes the padded input,
    # 2 x 6 x 6 = 72, alive with its 32-element output: 72 + 32 = 104; alive 32 + 104 = 136.
    # LRN of size 5 (torch's F.local_response_norm) on the conv output, n = 32: x*x (32), a copy padded
    # by 2 channels each side ((2 + 4) x 16 = 96) while x*x is alive: 32 + 96 = 128, then the average
    # pool (96 + 32 = 128), then .mul.add.pow (3 x 32 = 96) and x / div (64): inner peak 128;
    # alive 32 + 32 + 128 = 192.
    m = inference_memory(net("""
  - {name: conv, kind: conv, out: 2, kernel: 3, padding_mode: reflect, norm: none, activation: none}
  - {name: lrn, kind: lrn, size: 5}
""", channels=2))
    assert (m.blocks["conv"].alive_bytes, m.blocks["conv"].inner_peak_bytes) == (136 * 4, 104 * 4)
    assert (m.blocks["lrn"].alive_bytes, m.blocks["lrn"].inner_peak_bytes) == (192 * 4, 128 * 4)


# Every kind of node the layer model distinguishes: nested sequences (conv blocks), a bottleneck
# with a projection shortcut and post-activation, an MBConv with squeeze-excite and SiLU, an inception
# block, add and concat blocks over a fork, a reflect-padded conv, LRN, flatten, dropout and linear.
EVERY_NODE = """
name: every_node
input: {channels: 3, resolution: 12}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, stride: 2}
  - {name: pool, kind: maxpool, kernel: 3, stride: 1, padding: 1}
  - {name: res, kind: bottleneck, out: 16, mid: 4}
  - {name: mb, kind: mbconv, out: 16, expand: 4, se: 0.25, activation: silu}
  - name: inc
    kind: inception
    branches:
      - [{kind: conv, out: 4, kernel: 1}]
      - [{kind: conv, out: 8, kernel: 1}, {kind: conv, out: 6, kernel: 3}]
      - [{kind: maxpool, kernel: 3, stride: 1, padding: 1}, {kind: conv, out: 2, kernel: 1}]
  - {name: left, kind: conv, out: 12, kernel: 1, from: inc}
  - {name: right, kind: conv, out: 12, kernel: 3, from: inc}
  - {name: sum, kind: add, from: [left, right, inc]}
  - {name: cat, kind: concat, from: [sum, left]}
  - {name: pad, kind: conv, out: 8, kernel: 3, padding_mode: reflect}
  - {name: lrn, kind: lrn, size: 5}
  - {name: gap, kind: global_avgpool}
  - {name: flat, kind: flatten}
  - {name: drop, kind: dropout, p: 0.2}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_model_equals_what_torch_holds(batch):
    """The built eval module, counted by a dispatch mode (every storage an operator returns, alive
    until its weakref finalizer runs; weights excluded), holds exactly what the model says: per block
    and at the peak. Tolerance: none (the module runs on CPU, where the count has no allocator
    rounding or kernel workspaces)."""
    pytest.importorskip("torch")
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(EVERY_NODE))
    model = inference_memory(network, batch=batch)
    torch_blocks = block_peaks(build_module(network), network.input_shape, batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == torch_blocks
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, batch)


def test_inference_forward_frees_outputs_and_keeps_results():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = resolve(parse_spec(EVERY_NODE))
    module = build_module(network).eval()
    x = torch.randn(2, *network.input_shape)
    with torch.inference_mode():
        assert torch.equal(module(x), module.forward_all(x)["fc"])


def test_analyze_with_a_device_shows_the_layer_peak_without_torch(cli_fresh):
    import json

    out, heavy = cli_fresh(["analyze", "mobilenet_v2", "--device", "t4", "--batch", "8", "-f", "json"])
    assert heavy == []
    memory = json.loads(out)["memory"]
    # mobilenet_v2 at 224, batch 8, fp32. Peak in stage2.0 (16 -> 24 channels, expansion 6, stride 2),
    # at its expand batchnorm: the network input 3x224x224 (150,528), the block input 16x112x112
    # (200,704), the expand conv's output and the batchnorm's, 96x112x112 each (2 x 1,204,224):
    # 8 x 4 x 2,759,680 = 88,309,760. (The depthwise step after it holds 200,704 + 1,204,224 +
    # 2 x 96x56x56 = 1,806,336 besides the input: less.) Block granularity said 150,528 + 200,704 + 24x56x56.
    assert (memory["peak_block"], memory["peak_activation_bytes"]) == ("stage2.0", 88_309_760)


def test_bad_orders_and_options():
    with pytest.raises(ScalelabError, match="before its input 's'"):
        inference_memory(TWO_ORDERS, order=["q", "s", "p", "p2", "cat"])
    with pytest.raises(ScalelabError, match="leaves out"):
        inference_memory(TWO_ORDERS, order=["s"])
    with pytest.raises(ScalelabError, match="unknown dtype 'fp64'"):
        inference_memory(TWO_ORDERS, dtype="fp64")
    with pytest.raises(ScalelabError, match="did you mean 'adam'"):
        training_memory(TWO_ORDERS, optimizer="adm")
    with pytest.raises(ScalelabError, match="no block or stage named 'p3'"):
        training_memory(TWO_ORDERS, freeze_until="p3")


def test_resnet50_weights_and_output():
    m = inference_memory(resolve(parse_spec(open("specs/resnet50.yaml").read()), 64))
    assert m.weight_bytes == 25_557_032 * 4  # torchvision's parameter count, fp32
    assert m.blocks["fc"].activation_bytes == 1000 * 4


# --------------------------------------------------------------------------------------------------
# Training memory against torch

TINY = """
name: tiny
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, stride: 2}
  - {name: pool, kind: maxpool, kernel: 3, stride: 2, padding: 1}
  - {name: res, kind: bottleneck, out: 16, mid: 4}
  - {name: mb, kind: mbconv, out: 16, expand: 4, se: 0.25, activation: silu}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam"])
def test_training_memory_matches_torch(optimizer):
    network = resolve(parse_spec(TINY))
    model = training_memory(network, batch=4, optimizer=optimizer)
    real = training_step(network, optimizer, batch=4)
    assert model.weight_bytes == real["weight_bytes"]
    assert model.gradient_bytes == real["gradient_bytes"]
    # Adam also keeps a one-element step counter per parameter tensor, which the model leaves out.
    assert model.optimizer_bytes == real["optimizer_bytes"]
    assert real["step_counter_bytes"] == (4 * len(list(build_module(network).parameters())) if optimizer == "adam" else 0)
    # Stated tolerance for saved activations: 0.5% (torch 2.14 matches exactly; the margin is for
    # small bookkeeping tensors another torch version may add).
    assert model.saved_bytes == pytest.approx(real["saved_bytes"], rel=0.005)


def test_frozen_prefix_matches_torch():
    network = resolve(parse_spec(TINY))
    model = training_memory(network, batch=2, optimizer="sgd-momentum", freeze_until="res")
    real = training_step(network, "sgd-momentum", batch=2, freeze_until="res")
    assert not model.blocks["res"].trainable and model.blocks["mb"].trainable
    assert model.blocks["stem"].gradient_bytes == 0 and model.blocks["stem"].saved_bytes == 0
    assert model.gradient_bytes == real["gradient_bytes"]
    assert model.optimizer_bytes == real["optimizer_bytes"]
    assert model.saved_bytes == pytest.approx(real["saved_bytes"], rel=0.005)
    assert model.saved_bytes < training_memory(network, batch=2).saved_bytes


def test_analyze_training_memory_through_the_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from scalelab.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["analyze", "resnet18", "-r", "32", "--mode", "train", "--optimizer", "adam",
                                 "--freeze-until", "layer1.1", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["training_memory"]
    # resnet18: 11,689,512 parameters (torchvision); frozen: stem conv 64*3*7*7 + bn 128, layer1 = two
    # basic blocks of two 3x3 64->64 convs + bn: 2 * 2 * (36,864 + 128) = 147,968 -> 157,504 frozen.
    assert data["weight_bytes"] == 11_689_512 * 4
    assert data["gradient_bytes"] == (11_689_512 - 157_504) * 4
    assert data["optimizer_bytes"] == 2 * data["gradient_bytes"] and data["optimizer"] == "adam"
    bad = runner.invoke(app, ["analyze", "resnet18", "--mode", "train", "--freeze-until", "layer9"])
    assert bad.exit_code == 2 and "no block or stage named 'layer9'" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["analyze", "resnet18", "--mode", "fly"])
    assert bad.exit_code == 2 and "'fly' is not one of 'infer', 'train'" in bad.output


# SqueezeNet's tail: a dropout before the classifier conv (torchvision's squeezenet1_1 classifier).
SQUEEZE = """
name: squeeze_like
input: {channels: 3, resolution: 32}
defaults: {norm: none, activation: relu}
blocks:
  - {name: conv1, kind: conv, out: 16, kernel: 3, stride: 2}
  - {name: pool1, kind: maxpool, kernel: 3, stride: 2}
  - {name: squeeze, kind: conv, out: 8, kernel: 1}
  - name: fire
    kind: inception
    branches:
      - [{kind: conv, out: 16, kernel: 1}]
      - [{kind: conv, out: 16, kernel: 3}]
  - {name: drop, kind: dropout, p: 0.5}
  - {name: classifier, kind: conv, out: 10, kernel: 1}
  - {name: gap, kind: global_avgpool}
  - {name: flat, kind: flatten}
"""


def test_dropout_saved_bytes_match_torch_on_cpu():
    """CPU torch keeps dropout's noise as a float tensor (the input's dtype), not a byte mask: the
    model equals the probe exactly, and the GPU kind (a one-byte mask) reads 3 bytes per element less."""
    network = resolve(parse_spec(SQUEEZE))
    model = training_memory(network, batch=2, optimizer="adam", device="cpu")
    real = training_step(network, "adam", batch=2)
    assert model.saved_bytes == real["saved_bytes"]
    dropped = 2 * 32 * 7 * 7  # batch 2 x the 32x7x7 fire output (32 -> 15 -> 7 -> 7)
    assert network.blocks["fire"].out_shape == (32, 7, 7)
    assert model.blocks["drop"].saved_bytes == 4 * dropped
    gpu = training_memory(network, batch=2, optimizer="adam", device="gpu")
    assert model.saved_bytes - gpu.saved_bytes == 3 * dropped
    with pytest.raises(ScalelabError, match="unknown device kind 'tpu'"):
        training_memory(network, device="tpu")


@pytest.mark.parametrize("freeze_until", [None, "res", "inc", "pad"])
def test_every_node_kind_trains_as_torch_saves(freeze_until):
    """Every node kind (a reflect-padded conv keeps its padded copy and the pad its input; LRN's
    composite steps keep the input, the padded squares and two intermediates; a gate each factor whose
    partner needs a gradient), trained whole and with frozen prefixes: exact on CPU."""
    network = resolve(parse_spec(EVERY_NODE))
    model = training_memory(network, batch=2, optimizer="sgd", freeze_until=freeze_until)
    real = training_step(network, "sgd", batch=2, freeze_until=freeze_until)
    assert (model.saved_bytes, model.gradient_bytes) == (real["saved_bytes"], real["gradient_bytes"])


def test_training_memory_follows_the_profiles_device_kind():
    """vgg16's two dropouts over 4,096 features: CPU torch saves a float noise tensor (4 bytes an
    element), CUDA a one-byte mask, so a GPU profile saves 2 x 4,096 x 3 bytes fewer."""
    import json

    from cli_helpers import invoke

    def saved(*args):
        result = invoke("analyze", "vgg16", "-r", "64", "--mode", "train", "-f", "json", *args)
        return json.loads(result.stdout)["training_memory"]["saved_activation_bytes"]

    assert saved() - saved("--device", "t4") == 2 * 4096 * (4 - 1)
