"""Memory and training compute of the modern primitives and block kinds against torch: the inference
peak per block (dispatch-mode count of the built module), the tensors one real training step saves
for backward (as tests/test_memory.py checks the others), and the multiply-adds of forward and
backward (FlopCounterMode, as tests/test_train_compute.py checks the others)."""

import pytest

from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.analysis.memory_probe import block_peaks, inference_peak, training_step
from scalelab.graph import resolve
from scalelab.spec import parse_spec

# Every modern primitive: layer norm (standalone and as a conv's norm), the channels-last linear,
# GELU, layer scale (a ConvNeXt block in a wrap), channel slices and shuffles (both shuffle units,
# a graph-level split), a dense concat, a projection wrap with SE of its input, fused-MBConv.
MODERN = """
name: modern
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 2, stride: 2, padding: valid, bias: true, norm: layernorm, activation: none}
  - name: cn
    kind: wrap
    body: [{kind: conv, depthwise: true, kernel: 7, bias: true, norm: layernorm, activation: none},
           {kind: channel_linear, expand: 4, activation: gelu}, {kind: channel_linear, expand: 0.25}, {kind: layer_scale}]
  - {name: ln, kind: layer_norm}
  - {name: down, kind: shuffle_unit, out: 24, stride: 2}
  - {name: unit, kind: shuffle_unit, out: 24}
  - {name: left, kind: channel_split, take: 0}
  - {name: right, kind: channel_split, take: 1, from: unit}
  - {name: right_conv, kind: conv, out: 12, kernel: 3}
  - {name: join, kind: concat, from: [left, right_conv]}
  - {name: shuffle, kind: channel_shuffle, groups: 3}
  - {name: dense, kind: wrap, join: concat, body: [{kind: batchnorm}, {kind: activation, function: relu}, {kind: conv, out: 8, kernel: 3}]}
  - name: regnet
    kind: wrap
    stride: 2
    stride_at: 1
    shortcut: projection
    post: relu
    body: [{kind: conv, out: 32, kernel: 1}, {kind: conv, out: 32, kernel: 3, group_width: 8},
           {kind: squeeze_excite, ratio: 0.25, of: input}, {kind: conv, out: 32, kernel: 1, activation: none}]
  - {name: fused, kind: fused_mbconv, out: 32, expand: 2, activation: silu}
  - {name: gap, kind: global_avgpool}
  - {name: head_norm, kind: layer_norm}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_inference_model_equals_what_torch_holds(batch):
    """Per block and at the peak, exactly (CPU: no allocator rounding, no workspaces)."""
    from scalelab.build import build_module

    network = resolve(parse_spec(MODERN))
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, batch)
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, batch)


@pytest.mark.parametrize("freeze_until", [None, "unit"])
def test_training_memory_matches_torch(freeze_until):
    """Weights, gradients, optimizer state and the tensors saved for backward of one real step."""
    network = resolve(parse_spec(MODERN))
    model = training_memory(network, batch=4, optimizer="adam", freeze_until=freeze_until)
    real = training_step(network, "adam", batch=4, freeze_until=freeze_until)
    assert model.weight_bytes == real["weight_bytes"]
    assert model.gradient_bytes == real["gradient_bytes"]
    assert model.optimizer_bytes == real["optimizer_bytes"]
    assert model.saved_bytes == real["saved_bytes"]  # exact with torch 2.14; each layer norm keeps only 0.5%


@pytest.mark.parametrize("freeze_until", [None, "unit"])
def test_training_compute_equals_flop_counter(freeze_until):
    """The channels-last linear runs as a 1x1 conv: its forward is aten.convolution and its gradients
    convolution_backward; torch counts a grouped conv's weight gradient ``groups`` times over."""
    from test_train_compute import counted

    from scalelab.analysis.train_compute import training_compute
    from scalelab.analysis.train_walk import frozen_prefix
    from scalelab.blocks.layers import ChannelLinear, Conv, Linear

    network = resolve(parse_spec(MODERN))
    result = training_compute(network, batch=2, frozen=frozen_prefix(network, freeze_until))
    convs = [r for r in result.layers if isinstance(r.node, (Conv, ChannelLinear))]
    linears = [r for r in result.layers if isinstance(r.node, Linear)]
    assert any(isinstance(r.node, ChannelLinear) for r in convs)
    expected = {
        "aten.convolution": 2 * sum(r.forward_macs for r in convs),
        "aten.convolution_backward": 2 * sum(r.grad_input_macs + getattr(r.node, "groups", 1) * r.grad_weight_macs
                                             for r in convs),
        "aten.addmm": 2 * sum(r.forward_macs for r in linears),
        "aten.mm": 2 * sum(r.grad_input_macs + r.grad_weight_macs for r in linears),
    }
    assert counted(network, 2, freeze_until) == expected


@pytest.mark.parametrize("name", ["convnext_tiny", "shufflenet_v2_x1_0", "densenet121"])
def test_zoo_memory_equals_what_torch_holds(name):
    """At 32x32, batch 2: every block's inference peak exactly; the saved tensors of a training step
    exactly but for what the model leaves out, the one fp32 random factor per sample that each active
    stochastic-depth layer keeps (ConvNeXt: 17 of its 18 blocks; the first has rate 0)."""
    from scalelab.blocks.layers.torch_modules import StochasticDepth
    from scalelab.build import build_module
    from scalelab.spec import load_spec

    network = resolve(load_spec(name), 32)
    model = inference_memory(network, batch=2)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, 2)
    real = training_step(network, "sgd", batch=2)
    drop_paths = sum(1 for m in build_module(network).modules() if isinstance(m, StochasticDepth) and m.p > 0)
    assert drop_paths == (17 if name == "convnext_tiny" else 0)
    assert real["saved_bytes"] - training_memory(network, batch=2).saved_bytes == 4 * 2 * drop_paths
