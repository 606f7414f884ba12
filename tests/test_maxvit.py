"""MaxViT (Tu et al. 2022): the maxvit_block kind against torchvision's MaxVitLayer and MaxVitBlock
(their state dicts loaded), where the partitions copy and where they are views as torch decides,
memory and training against the torch probe on a small MaxViT, and specs/maxvit_t.yaml against
torchvision's maxvit_t: parameters, MACs, published figures and outputs. Expected figures come from
torch and torchvision, computed here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import assert_refused, invoke

from scalelab import analyze
from scalelab.blocks import KINDS
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import load_spec, parse_spec

torch = pytest.importorskip("torch")

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def in_run_order(keys: list[str]) -> list[str]:
    """torchvision's state-dict keys in the order the built spec registers its tensors: an MBConv's
    shortcut (``proj``, registered first) after its body, an attention's bias table and index
    (registered on the attention module, before its linear children) after its qkv projection."""
    out, proj, held = [], [], []
    for key in keys:
        if ".MBconv.proj." in key:
            proj.append(key)
        elif key.endswith(("relative_position_bias_table", "relative_position_index")):
            held.append(key)
        else:
            out.append(key)
            if key.endswith("MBconv.layers.conv_c.bias"):
                out, proj = out + proj, []
            if key.endswith("to_qkv.bias"):
                out, held = out + held, []
    return out


def load_into(ours, theirs) -> None:
    """theirs' state dict into ours; the relative position index, (N, N) in torchvision and
    flattened in ours, must hold the same values."""
    state, our_state = theirs.state_dict(), ours.state_dict()
    keys = in_run_order(list(state))
    assert len(keys) == len(our_state)
    loaded = {}
    for key, (our_key, ours_tensor) in zip(keys, our_state.items()):
        tensor = state[key]
        if key.endswith("relative_position_index"):
            assert torch.equal(tensor.flatten(), ours_tensor), key
            tensor = tensor.flatten()
        assert tuple(tensor.shape) == tuple(ours_tensor.shape), (key, our_key)
        loaded[our_key] = tensor
    ours.load_state_dict(loaded, strict=True)


def perturbed(model):
    """Batchnorm statistics and affine, and zero-initialised biases, made random: torchvision's
    initialisation leaves them at 0 and 1, where a misplaced norm or a missing bias would not show."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.LayerNorm)) and m.bias is not None:
                m.bias.normal_(0, 0.1, generator=gen)
    return model.eval()


def _norm():
    from functools import partial

    return partial(torch.nn.BatchNorm2d, eps=1e-3, momentum=0.01)


def _block(**fields):
    return KINDS["maxvit_block"].model_validate({"kind": "maxvit_block", **fields})


# --------------------------------------------------------------------------------------------------
# The kind against torchvision's modules

#: in and out channels, stride, input side, partition (window = grid), head width: a strided block
#: widening (average pool and conv shortcut), one keeping its channels at a stride, a stride-1 block
#: widening (conv shortcut), and one whose windows and grid cells are the whole map and single
#: pixels (identity shortcut; its partitions are views)
LAYERS = [(8, 16, 2, 8, 2, 8), (8, 8, 2, 12, 3, 4), (8, 16, 1, 6, 2, 8), (16, 16, 1, 4, 4, 8)]


@pytest.mark.parametrize("c_in, c_out, stride, side, partition, head_dim", LAYERS)
def test_maxvit_block_computes_as_torchvisions_layer(c_in, c_out, stride, side, partition, head_dim,
                                                     reference_macs, count_params):
    from torchvision.models.maxvit import MaxVitLayer

    from scalelab.build import to_torch

    torch.manual_seed(0)
    grid = (side // stride, side // stride)
    theirs = perturbed(MaxVitLayer(c_in, c_out, 0.25, 4, stride, _norm(), torch.nn.GELU, head_dim, 4, 0.0, 0.0, 0.0,
                                   partition, grid))
    block = _block(out=c_out, stride=stride, window=partition, grid=partition, head_dim=head_dim)
    shape = (c_in, side, side)
    tree = block.layers(shape)
    ours = to_torch(tree).eval()
    load_into(ours, theirs)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)
    walked = L.walk(tree, shape)
    assert walked.out == (c_out, *grid)
    assert sum(c.params for c in walked.costs) == count_params(theirs)
    assert sum(c.macs for c in walked.costs) == reference_macs(theirs, x[:1])


def test_a_stage_of_maxvit_blocks_is_torchvisions_maxvit_block(reference_macs, count_params):
    """torchvision's MaxVitBlock (its stage: the first layer strided) of three layers, 8 -> 16
    channels on a 16x16 map, in windows and a grid of 2x2, as a spec's stage of three repeats."""
    from torchvision.models.maxvit import MaxVitBlock

    from scalelab.build import build_module

    torch.manual_seed(0)
    theirs = perturbed(MaxVitBlock(8, 16, 0.25, 4, _norm(), torch.nn.GELU, 8, 4, 0.0, 0.0, 2, (16, 16), 3, [0.0] * 3))
    network = resolve(parse_spec("name: s\ninput: {channels: 8, resolution: 16}\nblocks:\n"
                                 "  - {stage: s, repeat: 3, stride: 2, block: {kind: maxvit_block, out: 16, window: 2, "
                                 "grid: 2, head_dim: 8}}\n"))
    ours = build_module(network).eval()
    load_into(ours, theirs)
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)
    result = analyze(network.spec)
    assert result.total.params == count_params(theirs)
    assert result.total.macs == reference_macs(theirs, x[:1])


def _torch_copies(c: int, h: int, w: int, cell: tuple[int, int], swapped: bool) -> int:
    """How many of torchvision's partition into cells of cell[0] x cell[1] pixels and its departition
    copy the map (the reshape after the permute) rather than view it. The departition reads the map
    as the residual adds leave it: in the swapped order for the grid."""
    a, b = cell
    rows, cols = h // a, w // b
    x = torch.randn(1, c, h, w)
    parts = x.reshape(1, c, rows, a, cols, b).permute(0, 2, 4, 3, 5, 1).reshape(1, rows * cols, a * b, c)
    groups = torch.randn(1, a * b, rows * cols, c).transpose(1, 2) if swapped else torch.randn(1, rows * cols, a * b, c)
    back = groups.reshape(1, rows, cols, a, b, c).permute(0, 5, 1, 3, 2, 4).reshape(1, c, h, w)
    shares = [y.untyped_storage().data_ptr() == z.untyped_storage().data_ptr() for y, z in ((parts, x), (back, groups))]
    return shares.count(False)


#: (channels, height, width), window, grid: square and oblong maps, partitions that copy, that view,
#: and one of each
OBLONG = [((8, 8, 8), 2, 2), ((8, 4, 4), 4, 4), ((8, 4, 8), 4, 2), ((8, 8, 4), 4, 4), ((8, 2, 8), 2, 2),
          ((8, 6, 3), 3, 3), ((8, 3, 6), 3, 1)]


@pytest.mark.parametrize("shape, window, grid", OBLONG)
def test_partitions_copy_where_torch_copies(shape, window, grid, reference_macs):
    """A partition (and its departition) copies exactly where torch's reshape would; the built block
    runs (its reshapes are views, so a missing copy would be refused) and its MACs are torch's."""
    from scalelab.build import to_torch

    c, h, w = shape
    block = _block(out=c, window=window, grid=grid, head_dim=4)
    tree = block.layers(shape)
    expected = _torch_copies(c, h, w, (window, window), False) + _torch_copies(c, h, w, (h // grid, w // grid), True)
    assert sum(isinstance(item, L.Contiguous) for item in tree.items) == expected
    module = to_torch(tree).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert tuple(module(x).shape[1:]) == shape
    assert sum(cost.macs for cost in L.walk(tree, shape).costs) == reference_macs(module, x[:1])


def test_the_attentions_count_by_hand():
    """A 64-channel block on 56x56 (MaxViT-T's first stage, 2 heads of 32): each attention costs
    4 H W C² MACs in its projections and 2 H W N C in its scores and weighted sums (N = 49), its
    MLP 8 H W C², and the MBConv 2 H W C (4C) + 9 H W (4C) + H W (4C) C beside its SE (4C x 16 x 2)."""
    h = w = 56
    c, n = 64, 49
    costs = L.walk(_block(out=64).layers((c, h, w)), (c, h, w)).costs
    attention = 4 * h * w * c * c + 2 * h * w * n * c
    mlp = 8 * h * w * c * c
    mbconv = h * w * c * 4 * c + 9 * h * w * 4 * c + h * w * 4 * c * c + 2 * 4 * c * 16
    assert sum(cost.macs for cost in costs) == mbconv + 2 * (attention + mlp)
    tables = [cost for cost in costs if cost.label == "window_attention"]
    assert [cost.params for cost in tables] == [13 * 13 * 2] * 2


@pytest.mark.parametrize("block, message", [
    ("{kind: maxvit_block, out: 16, window: 3, head_dim: 8}",
     "maxvit_block: a 8x8 map (after the MBConv) does not divide into a window of 3x3"),
    ("{kind: maxvit_block, out: 16, window: 2, grid: 3, head_dim: 8}", "does not divide into a grid of 3x3"),
    ("{kind: maxvit_block, out: 16, window: 2, grid: 2, head_dim: 5}",
     "16 channels are no whole number of heads of head_dim 5"),
    ("{kind: maxvit_block, out: 16, window: 2, grid: 2, heads: 3}", "16 channels do not split into 3 heads"),
    ("{kind: maxvit_block, out: 16, heads: 2, head_dim: 8}", "not both"),
])
def test_bad_maxvit_blocks_are_refused_by_name(tmp_path, block, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninput: {channels: 3, resolution: 16}\nblocks:\n"
                    "  - {name: stem, kind: conv, out: 16, kernel: 3, stride: 2}\n"
                    f"  - {{name: b, {block[1:]}\n")
    assert_refused(invoke("analyze", str(spec)), message)


def test_a_flat_input_is_refused(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text("name: bad\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: f, kind: flatten}\n"
                    "  - {name: b, kind: maxvit_block, out: 16}\n")
    result = invoke("analyze", str(flat))
    assert_refused(result, "maxvit_block")


# --------------------------------------------------------------------------------------------------
# Memory and training of a small MaxViT against the probe and a real step

SMALL = """
name: small_maxvit
input: {channels: 3, resolution: 32}
stochastic_depth: {rate: 0.1, end: last}
defaults: {norm: batchnorm, activation: gelu}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 3, stride: 2, norm_eps: 1.0e-3}
  - {stage: s1, repeat: 2, stride: 2, block: {kind: maxvit_block, out: 16, window: 2, grid: 2, head_dim: 8}}
  - {stage: s2, repeat: 1, stride: 2, block: {kind: maxvit_block, out: 32, window: 4, grid: 4, head_dim: 8}}
  - {name: avgpool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 3])
def test_inference_peaks_equal_the_probe(batch):
    """8x8 maps in 2x2 windows and a 2x2 grid (partitions that copy), then a 4x4 map that is one
    window and one grid (partitions that view): every block's peak and the network's."""
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(SMALL))
    model = inference_memory(network, batch=batch)
    module = build_module(network)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(module, network.input_shape, batch)
    assert model.peak_bytes == inference_peak(module, network.input_shape, batch)


def test_training_memory_matches_a_real_step():
    """What one adam step keeps, exactly but for what the model leaves out, as for Swin and ConvNeXt:
    the one fp32 random factor per sample of each active stochastic-depth layer (five in each of the
    two blocks past the first: the MBConv's and the two of each attention)."""
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
    assert drop_paths == 10
    assert real["saved_bytes"] - model.saved_bytes == 4 * 2 * drop_paths


# --------------------------------------------------------------------------------------------------
# The zoo spec


def said(text: str) -> bool:
    return " ".join(text.split()) in " ".join(README.split())


def test_maxvit_t_is_torchvisions_published_figures(torchvision_model, count_params, reference_macs):
    from torchvision.models import MaxVit_T_Weights

    from scalelab.scaling.accuracy.family import network_family

    meta = MaxVit_T_Weights.IMAGENET1K_V1.meta
    result = analyze("maxvit_t")
    model = torchvision_model("maxvit_t")
    assert result.total.params == count_params(model) == meta["num_params"] == 30_919_624
    assert result.total.macs == reference_macs(model, torch.randn(1, 3, 224, 224))
    assert round(result.total.macs / 1e9, 3) == meta["_ops"]
    spec = result.network.spec
    assert spec.reference.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"] == 83.7
    assert spec.reference.top5 == meta["_metrics"]["ImageNet-1K"]["acc@5"]
    assert (spec.reference.protocol.crops, spec.reference.protocol.resolution) == (1, 224)
    assert (spec.reference.protocol.pretraining, spec.reference.protocol.distillation) == ("none", "none")
    assert network_family(spec) == "hybrid"
    assert said(f"MaxViT-T: {result.total.params:,} parameters, {result.total.macs:,} MACs")


def test_maxvit_t_computes_the_same_function(torchvision_model):
    from scalelab.build import build_module

    theirs = perturbed(torchvision_model("maxvit_t"))
    ours = build_module(resolve(load_spec("maxvit_t"))).eval()
    load_into(ours, theirs)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_maxvit_t_equals_its_import():
    """torchvision's maxvit_t imported (every operator as the exported program runs it) states the
    zoo spec's parameters, MACs, weight ops and the output of every stage."""
    import torchvision

    from scalelab.importer import import_module

    torch.manual_seed(0)
    imported = analyze(import_module(torchvision.models.maxvit_t().eval(), (3, 224, 224)).spec)
    ours = analyze("maxvit_t")
    assert (imported.total.params, imported.total.macs) == (ours.total.params, ours.total.macs)
    assert imported.total.weight_ops == ours.total.weight_ops
    # each MaxVitLayer's output is its last block's (its grid attention's departition)
    layers = {".".join(b.name.split(".")[:4]): b.out_shape for b in imported.blocks if b.name.startswith("blocks.")}
    assert list(layers.values()) == [b.out_shape for b in ours.blocks if b.kind == "maxvit_block"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 2])
def test_maxvit_t_inference_memory_equals_the_probe(batch):
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import block_peaks
    from scalelab.build import build_module

    network = resolve(load_spec("maxvit_t"))
    model = inference_memory(network, batch=batch)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network),
                                                                              network.input_shape, batch)


def test_scalelab_analyze_maxvit_t_reports_its_memory_and_training():
    from scalelab.analysis.memory import training_memory

    result = invoke("analyze", "maxvit_t", "--level", "1", "--mode", "train")
    assert result.exit_code == 0, result.output
    assert re.search(r"^stage3 +maxvit_block x5 +256x14x14 ", result.output, re.M)
    network = resolve(load_spec("maxvit_t"))
    assert training_memory(network, batch=1).weight_bytes == 4 * 30_919_624
    assert "Training memory (fp32, batch 1, sgd" in result.output and "Inference memory" in result.output


def test_the_readme_lists_the_kind():
    summary = KINDS["maxvit_block"].summary
    assert re.search(rf"^\| `maxvit_block` \| {re.escape(summary)} \|$", README, re.M)
