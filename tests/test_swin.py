"""Swin (Liu et al. 2021): the windowed primitives face by face against their torch modules, the
swin_block and patch_merging kinds against torchvision's own modules (their state dicts loaded), the
rule by which a stage's repeats alternate their shift, training and inference memory against the
torch probe, and specs/swin_t.yaml against torchvision's swin_t. Expected figures come from torch and
torchvision, computed here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import assert_refused, invoke
from hypothesis import HealthCheck, given, settings
from swin_strategies import STRATEGIES
from test_block_kinds import _check

from scalelab import analyze
from scalelab.blocks import KINDS
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import parse_spec

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

#: heads, window, shift, grid: unshifted, shifted on both axes, on one axis only (a map one window
#: high); one head (torch folds q, k, v and the output by views) and one token per window (q and the
#: output by views)
WINDOWED = [(2, 3, (0, 0), (2, 3)), (2, 3, (1, 1), (2, 3)), (3, 2, (0, 1), (1, 2)), (1, 2, (1, 1), (2, 2)),
            (2, 1, (0, 0), (2, 2))]


def in_run_order(keys: list[str]) -> list[str]:
    """torchvision's state-dict keys in the order the built spec registers its tensors: the window
    attention's table and index after its qkv projection (torchvision registers them on the
    attention module, before its linear children), patch merging's reduction after its norm."""
    out, held = [], []
    for i, key in enumerate(keys):
        if key.endswith(("relative_position_bias_table", "relative_position_index", "reduction.weight")):
            held.append(key)
            continue
        out.append(key)
        later = keys[i + 1] if i + 1 < len(keys) else ""
        if (".qkv." in key and ".qkv." not in later) or key.endswith("norm.bias"):  # qkv's last tensor; merging's norm
            out, held = out + held, []
    return out


def load_into(ours, theirs) -> None:
    state, our_state = theirs.state_dict(), ours.state_dict()
    keys = in_run_order(list(state))
    assert [tuple(state[k].shape) for k in keys] == [tuple(t.shape) for t in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, (state[k] for k in keys))), strict=True)


# --------------------------------------------------------------------------------------------------
# The primitives, face by face


def _training_pass(layer, shape, trained, input_grad, batch=3):
    """(forward FLOPs, backward FLOPs, bytes saved for backward) of one pass of the layer's module."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = layer.torch_module().train()
    for p in module.parameters():
        p.requires_grad_(trained)
    x = torch.randn(batch, *shape, requires_grad=input_grad) * 1  # a non-leaf input, as inside a network
    params = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    forward, backward = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with forward, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    assert tuple(y.shape[1:]) == layer.out_shape(shape)
    with backward:
        y.sum().backward()
    return forward.get_total_flops(), backward.get_total_flops(), sum(saved.values())


@pytest.mark.parametrize("heads, window, shift, grid", WINDOWED)
@pytest.mark.parametrize("trained, input_grad", [(True, True), (True, False), (False, True)])
def test_window_attention_faces_agree_with_its_module(heads, window, shift, grid, trained, input_grad):
    layer, batch = L.WindowAttention(heads, window, shift, grid), 3
    n, windows, c = window * window, grid[0] * grid[1], 8 * heads
    shape = (windows, n, 3 * c)
    out = layer.out_shape(shape)
    cost, macs = layer.cost(shape, out), layer.train_macs(shape, out)
    forward, backward, saved = _training_pass(layer, shape, trained, input_grad, batch)
    product = windows * n * n * c  # one of the four batched products, per sample
    assert cost.params == (2 * window - 1) ** 2 * heads == sum(p.numel() for p in layer.torch_module().parameters())
    assert forward == 2 * batch * cost.macs == 2 * batch * macs.forward == 2 * batch * 2 * product
    # backward: dprobs for the table, dv, dq and dk for the input; torch runs all four for the input
    # alone (the documented case the split cannot state: grad_input + grad_weight)
    assert backward == 2 * batch * product * (4 if input_grad else 1)
    assert backward == 2 * batch * (macs.grad_input * input_grad + macs.grad_weight * (trained or input_grad))
    face = layer.saved(shape, out, trained, input_grad, "cpu")
    assert saved == 4 * batch * (face.per_sample_elements + face.input * L.elements(shape))


@pytest.mark.parametrize("heads, window, shift, grid", WINDOWED)
def test_window_attention_inner_peak_per_sample(heads, window, shift, grid):
    """The eval peak grows by the per-sample figure with each sample; what stays is the gathered bias
    (heads x N^2) and, when shifted, the mask (windows x N^2): the same for every sample. (At a batch
    of one, the mask's construction, a few temporaries of windows x N^2, can be the peak instead.)"""
    import torch

    from scalelab.analysis.memory_probe import dispatch_peak

    layer = L.WindowAttention(heads, window, shift, grid)
    n, windows = window * window, grid[0] * grid[1]
    shape = (windows, n, 3 * 8 * heads)
    module = layer.torch_module().eval()
    per_sample = L.elements(shape) + layer.inner_peak(shape, layer.out_shape(shape)).peak_elems
    fixed = heads * n * n + (windows * n * n if sum(shift) else 0)
    for batch in (2, 3):
        assert dispatch_peak(lambda: module(torch.randn(batch, *shape))) == 4 * (batch * per_sample + fixed)


@pytest.mark.parametrize("shape", [(4, 6, 3), (5, 7, 2), (1, 1, 4)])
def test_patch_concat_faces_agree_with_its_module(shape):
    from faces import check_faces

    check_faces(L.PatchConcat(), shape, False, True)
    assert L.PatchConcat().out_shape(shape) == (-(-shape[0] // 2), -(-shape[1] // 2), 4 * shape[2])


def test_window_attention_counts_by_hand():
    """3x3 windows on a 6x9 map (2 x 3 windows), 2 heads of 4: C = 8, N = 9."""
    layer = L.WindowAttention(2, 3, (1, 1), (2, 3))
    cost = layer.cost((6, 9, 24), (6, 9, 8))
    assert cost.macs == 2 * 6 * 9 * 9 * 8  # q k^T and probs v: windows x N x N x C each
    # q's scaling and the heads' copy back beside each other; the bias add, the mask add, the softmax
    # (the copies torch.matmul makes inside itself of q, k^T and v are no ops, as for matmul)
    assert cost.ops == 2 * 6 * 9 * 8 + 6 * 2 * 81 * (1 + 1 + 5)
    one_head = L.WindowAttention(1, 3, (0, 0), (2, 3)).cost((6, 9, 24), (6, 9, 8))
    assert one_head.ops == 6 * 9 * 8 + 6 * 81 * (1 + 5)  # one head: the heads' reshape is a view; no mask
    assert cost.weight_ops == 2 * 2 * 81 + 5 * 6 * 81 + 3 * 6 * 9
    assert L.latency_of(layer) == (L.LatencyClass.LINEAR, None)
    with pytest.raises(L.ShapeError, match=r"expects \(windows, tokens, 3 x channels\) = \(6, 9"):
        layer.out_shape((6, 8, 24))


# --------------------------------------------------------------------------------------------------
# The kinds against torchvision's modules


@pytest.mark.parametrize("label", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(label, count_params, flop_counter_macs):
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[label])
    def run(example):
        params, shape = example
        _check(label, params, shape, count_params, flop_counter_macs)

    run()


@pytest.mark.parametrize("shape, window, shift", [
    ((6, 6, 8), 3, 0), ((6, 6, 8), 3, 1), ((5, 7, 8), 3, 1), ((2, 2, 8), 3, 1), ((4, 9, 8), 3, 2), ((7, 7, 8), 7, 3),
])
def test_swin_block_computes_as_torchvision(shape, window, shift, reference_macs, count_params):
    """Padding to whole windows, a shift on both axes, on one (a map one window high) or on none (a
    map within one window), each as torchvision's SwinTransformerBlock (2 heads of 4)."""
    import torch
    from torchvision.models.swin_transformer import SwinTransformerBlock

    from scalelab.build import to_torch

    torch.manual_seed(0)
    theirs = SwinTransformerBlock(8, 2, [window, window], [shift, shift]).eval()
    block = KINDS["swin_block"].model_validate({"kind": "swin_block", "window": window, "shift": shift, "head_dim": 4})
    tree = block.layers(shape)
    ours = to_torch(tree).eval()
    load_into(ours, theirs)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)
    costs = L.walk(tree, shape).costs
    assert sum(c.params for c in costs) == count_params(theirs)
    assert 2 * sum(c.macs for c in costs) == reference_macs(theirs, x)


@pytest.mark.parametrize("shape", [(6, 6, 4), (5, 7, 3), (1, 3, 2)])
def test_patch_merging_computes_as_torchvision(shape, reference_macs):
    import torch
    from torchvision.models.swin_transformer import PatchMerging

    from scalelab.build import to_torch

    torch.manual_seed(0)
    theirs = PatchMerging(shape[2]).eval()
    tree = KINDS["patch_merging"].model_validate({"kind": "patch_merging"}).layers(shape)
    ours = to_torch(tree).eval()
    load_into(ours, theirs)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)
    walked = L.walk(tree, shape)
    assert walked.out == (-(-shape[0] // 2), -(-shape[1] // 2), 2 * shape[2])
    assert 2 * sum(c.macs for c in walked.costs) == reference_macs(theirs, x)


# --------------------------------------------------------------------------------------------------
# Stages: the shift alternates by repeat, and keeps alternating when depth scaling multiplies them

STAGE = """
name: s
input: {channels: 3, resolution: 32}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 2, stride: 2, padding: valid, bias: true, norm: none, activation: none}
  - {name: last, kind: permute, dims: [1, 2, 0]}
  - {stage: swin, repeat: 3, block: {kind: swin_block, window: 4, head_dim: 8}}
  - {name: merge, kind: patch_merging}
  - {stage: fixed, repeat: 2, block: {kind: swin_block, window: 4, head_dim: 8, shift: 1}}
"""


def _shifts(network) -> dict[str, int]:
    return {name: b.block.shift for name, b in network.blocks.items() if b.block.kind == "swin_block"}


def test_a_stage_alternates_the_shift_and_depth_scaling_continues_it():
    from scalelab.scaling.compound import scale_spec

    spec = parse_spec(STAGE)
    assert _shifts(resolve(spec)) == {"swin.0": 0, "swin.1": 2, "swin.2": 0, "fixed.0": 1, "fixed.1": 1}
    deeper = resolve(scale_spec(spec, depth=2.0))
    assert [deeper.blocks[f"swin.{r}"].block.shift for r in range(6)] == [0, 2, 0, 2, 0, 2]
    # the rolled map: a shifted block rolls by -2 on both axes, an unshifted one not at all
    rolls = [n for n in L.walk(deeper.blocks["swin.1"].layers, (16, 16, 16)).costs if n.label == "roll"]
    assert [c.node.shifts for c in rolls] == [(-2, -2), (2, 2)]
    assert not [c for c in L.walk(deeper.blocks["swin.0"].layers, (16, 16, 16)).costs if c.label == "roll"]


@pytest.mark.parametrize("block, message", [
    ("{kind: swin_block, window: 4, head_dim: 5}", "16 channels are no whole number of heads of head_dim 5"),
    ("{kind: swin_block, window: 4, heads: 3}", "16 channels do not split into 3 heads"),
    ("{kind: swin_block, window: 4, heads: 2, head_dim: 8}", "not both"),
    ("{kind: swin_block, window: 4, shift: 4}", "shift 4 must be smaller than the window (4)"),
])
def test_bad_swin_blocks_are_refused_by_name(tmp_path, block, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {channels: 3, resolution: 16}\nblocks:\n"
                    "  - {name: stem, kind: conv, out: 16, kernel: 2, stride: 2, norm: none, activation: none}\n"
                    f"  - {{name: last, kind: permute, dims: [1, 2, 0]}}\n  - {{name: b, {block[1:]}\n")
    assert_refused(invoke("analyze", str(spec)), message)


@pytest.mark.parametrize("kind", ["swin_block", "patch_merging"])
def test_a_map_of_another_rank_is_refused(tmp_path, kind):
    flat = tmp_path / "flat.yaml"
    flat.write_text(f"name: bad\ninput: {{channels: 3, resolution: 8}}\nblocks:\n  - {{name: f, kind: flatten}}\n"
                    f"  - {{name: b, kind: {kind}}}\n")
    assert_refused(invoke("analyze", str(flat)), f"{kind} needs a channels-last (height, width, channels) map, got 192")


# --------------------------------------------------------------------------------------------------
# Memory and training compute of a small Swin against a real step

SMALL = """
name: small_swin
input: {channels: 3, resolution: 40}
stochastic_depth: {rate: 0.1, end: last}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 4, stride: 4, padding: valid, bias: true, norm: none, activation: none}
  - {name: last, kind: permute, dims: [1, 2, 0]}
  - {name: stem_norm, kind: layer_norm, trailing: 1}
  - {stage: s1, repeat: 2, block: {kind: swin_block, window: 3, head_dim: 8}}
  - {name: merge, kind: patch_merging}
  - {stage: s2, repeat: 2, block: {kind: swin_block, window: 3, head_dim: 8}}
  - {name: head_norm, kind: layer_norm, trailing: 1}
  - {name: first, kind: permute, dims: [2, 0, 1]}
  - {name: avgpool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


def test_training_memory_matches_a_real_step():
    """10x10 tokens in 3x3 windows (padded to 12x12, shifted), then 5x5 (padded to 6x6): what one
    adam step keeps, exactly but for what the model leaves out, as for ConvNeXt: the one fp32 random
    factor per sample of each active stochastic-depth layer (two in each of the three blocks past the first)."""
    from scalelab.analysis.memory import training_memory
    from scalelab.analysis.memory_probe import training_step
    from scalelab.blocks.layers.torch_modules import StochasticDepth
    from scalelab.build import build_module

    network = resolve(parse_spec(SMALL))
    model = training_memory(network, batch=2, optimizer="adam")
    real = training_step(network, "adam", batch=2)
    assert (model.weight_bytes, model.gradient_bytes, model.optimizer_bytes) == (
        real["weight_bytes"], real["gradient_bytes"], real["optimizer_bytes"])
    drop_paths = sum(1 for m in build_module(network).modules() if isinstance(m, StochasticDepth) and m.p > 0)
    assert drop_paths == 6
    assert real["saved_bytes"] - model.saved_bytes == 4 * 2 * drop_paths


@pytest.mark.parametrize("batch", [1, 2])
def test_inference_peaks_count_the_bias_and_mask_the_batch_shares(batch):
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import block_peaks
    from scalelab.build import build_module

    network = resolve(parse_spec(SMALL))
    model = {n: b.alive_bytes for n, b in inference_memory(network, batch=batch).blocks.items()}
    real = block_peaks(build_module(network), network.input_shape, batch)
    assert model == real


# --------------------------------------------------------------------------------------------------
# The zoo spec


def test_swin_t_equals_torchvision(torchvision_model, count_params, reference_macs):
    import torch
    import torchvision

    result = analyze("swin_t")
    model = torchvision_model("swin_t")
    meta = torchvision.models.get_model_weights("swin_t").DEFAULT.meta
    assert result.total.params == count_params(model) == meta["num_params"] == 28_288_354
    assert result.total.macs == reference_macs(model, torch.randn(1, 3, 224, 224))
    assert round(result.total.macs / 1e9, 3) == meta["_ops"]
    spec = result.network.spec
    assert spec.reference.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"] == 81.474
    assert (spec.reference.protocol.pretraining, spec.reference.protocol.distillation) == ("none", "none")
    assert said(f"Swin-T: {result.total.params:,} parameters, {result.total.macs:,} MACs")


@pytest.mark.parametrize("resolution", [224, (200, 232)])
def test_swin_t_computes_the_same_function(resolution, torchvision_model, reference_macs):
    """At 224, and at 200x232, where stages pad to whole windows, a patch merging pads an odd side
    and the last stage's map fits in one window (no shift)."""
    import torch

    from scalelab.build import build_module

    theirs = torchvision_model("swin_t")
    ours = build_module("swin_t", resolution=resolution).eval()
    load_into(ours, theirs)
    shape = analyze("swin_t", resolution=resolution).input_shape
    x = torch.randn(2, *shape)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert analyze("swin_t", resolution=resolution).total.macs == reference_macs(theirs, x[:1])


def test_the_readme_attention_formula():
    """4 H W C² MACs of projections and 2 H W N C of scores and weighted sums, on the padded map:
    Swin-T's first block (56x56 of 96 in 7x7 windows) and a 10x10 map of 16 padded to 12x12."""
    for shape, window in (((56, 56, 96), 7), ((10, 10, 16), 3)):
        block = KINDS["swin_block"].model_validate({"kind": "swin_block", "window": window, "head_dim": 8})
        attention = block.layers(shape).items[0]
        h, w = (-(-side // window) * window for side in shape[:2])
        c, n = shape[2], window * window
        assert sum(c.macs for c in L.walk(attention, shape).costs) == 4 * h * w * c * c + 2 * h * w * n * c


def test_swin_t_memory_equals_what_torch_holds():
    """At 56x56 (maps of 14, 7, and 4 and 2 padded to one window), batch 2: the tensors one training
    step saves, exactly but for the stochastic-depth factors (two in each of the 11 blocks past the
    first, as for ConvNeXt); every block's inference peak exactly, the bias and mask beside the
    attention (the same for every sample) included."""
    from scalelab.analysis.memory import inference_memory, training_memory
    from scalelab.analysis.memory_probe import block_peaks, training_step
    from scalelab.build import build_module
    from scalelab.spec import load_spec

    network = resolve(load_spec("swin_t"), 56)
    model = {n: b.alive_bytes for n, b in inference_memory(network, batch=2).blocks.items()}
    real = block_peaks(build_module(network), network.input_shape, 2)
    assert model == real
    saved = training_step(network, "sgd", batch=2)["saved_bytes"] - training_memory(network, batch=2).saved_bytes
    assert saved == 4 * 2 * 22


def said(text: str) -> bool:
    return " ".join(text.split()) in " ".join(README.split())


def test_the_readme_lists_the_swin_kinds():
    for kind in ("swin_block", "patch_merging"):
        assert re.search(rf"^\| `{kind}` \| {re.escape(KINDS[kind].summary)} \|$", README, re.M), kind
