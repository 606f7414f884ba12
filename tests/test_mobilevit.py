"""MobileViT (Mehta & Rastegari 2022): the ``unfold`` kind (a map unfolded into one token sequence per
patch position, a body of token blocks, folded back) inside a MobileViT block against timm's
``MobileVitBlock`` with its state dict loaded, its refusals, and specs/mobilevit_xxs.yaml against
timm's mobilevit_xxs: parameters, MACs (the reference figure), outputs, and memory against the torch
probe. Expected figures come from timm and torch, computed here."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from cli_helpers import assert_refused, invoke
from hybrid_strategies import STRATEGIES
from hypothesis import HealthCheck, given, settings
from test_block_kinds import _check

from scalelab import analyze
from scalelab.blocks import KINDS
from scalelab.blocks import layers as L

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("label", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(label, count_params, flop_counter_macs):
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[label])
    def run(example):
        params, shape = example
        _check(label, params, shape, count_params, flop_counter_macs)

    run()


def mobilevit_block(channels: int, dim: int, depth: int, patch: "list[int]") -> list:
    """A MobileViT block as the zoo spec writes it: the wrap and the fusion conv after it."""
    transformer = {"kind": "transformer", "heads": 2, "mlp_ratio": 2.0, "activation": "silu", "norm_eps": 1e-5}
    body = [{"kind": "conv", "out": channels, "kernel": 3, "activation": "silu"},
            {"kind": "conv", "out": dim, "kernel": 1, "norm": "none", "activation": "none", "bias": False},
            {"kind": "unfold", "patch": patch, "body": [transformer] * depth + [{"kind": "layer_norm", "trailing": 1}]},
            {"kind": "conv", "out": channels, "kernel": 1, "activation": "silu"}]
    return [KINDS["wrap"].model_validate({"kind": "wrap", "join": "concat", "body": body}),
            KINDS["conv"].model_validate({"kind": "conv", "out": channels, "kernel": 3, "activation": "silu"})]


@pytest.mark.parametrize("shape, patch", [((8, 4, 6), [2, 3]), ((8, 6, 6), [2, 2]), ((8, 3, 2), [1, 2])])
def test_a_mobilevit_block_computes_as_timm(shape, patch, reference_macs, count_params):
    import torch
    from timm.layers import ConvNormAct
    from timm.models.byobnet import LayerFn
    from timm.models.mobilevit import MobileVitBlock
    from torch import nn

    from scalelab.build import to_torch

    torch.manual_seed(0)
    layers = LayerFn(conv_norm_act=partial(ConvNormAct, act_layer=nn.SiLU), act=nn.SiLU)
    theirs = MobileVitBlock(8, 8, transformer_dim=16, transformer_depth=2, patch_size=tuple(patch), num_heads=2,
                            layers=layers).eval()
    wrap, fusion = mobilevit_block(8, 16, 2, patch)
    joined = wrap.layers(shape)
    tree = L.seq(joined, fusion.layers(L.walk(joined, shape).out))
    ours = to_torch(tree).eval()
    state, our_state = theirs.state_dict(), ours.state_dict()
    assert [tuple(t.shape) for t in state.values()] == [tuple(t.shape) for t in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, state.values())), strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    costs = L.walk(tree, shape).costs
    assert sum(c.params for c in costs) == count_params(theirs)
    assert 2 * sum(c.macs for c in costs) == reference_macs(theirs, x)


def _spec(tmp_path, resolution: int, block: str) -> str:
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\ninput: {{channels: 3, resolution: {resolution}}}\nblocks:\n"
                    f"  - {{name: c, kind: conv, out: 8, kernel: 1}}\n  - {{name: u, {block[1:]}\n")
    return str(spec)


@pytest.mark.parametrize("resolution, block, message", [
    (5, "{kind: unfold, patch: 2, body: [{kind: layer_norm, trailing: 1}]}",
     "unfold: a 5x5 map does not divide into whole 2x2 patches"),
    (4, "{kind: unfold, patch: 2, body: [{kind: linear, out: 4, flatten: false}]}",
     "unfold: the body turns the 4x4x8 sequences into 4x4x4; folding back needs the same shape"),
])
def test_bad_unfolds_are_refused_by_name(tmp_path, resolution, block, message):
    assert_refused(invoke("analyze", _spec(tmp_path, resolution, block)), message)


def test_the_unfold_by_hand():
    """8 channels on 4x6 in 2x3 patches: 6 sequences of 4 tokens; the layout copies, two each way,
    write the map once each (4 x 192 ops); a layer norm body costs its 5 ops an element."""
    block = KINDS["unfold"].model_validate({"kind": "unfold", "patch": [2, 3], "body": [{"kind": "layer_norm", "trailing": 1}]})
    tree = block.layers((8, 4, 6))
    walked = L.walk(tree, (8, 4, 6))
    assert walked.out == (8, 4, 6)
    norm = next(c for c in walked.costs if c.label == "layernorm")
    assert norm.in_elems == 6 * 4 * 8 and norm.params == 2 * 8
    assert sum(c.ops for c in walked.costs) == 4 * 192 + 5 * 192


# --------------------------------------------------------------------------------------------------
# The zoo spec


@pytest.fixture(scope="module")
def timm_mobilevit():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("mobilevit_xxs", pretrained=False).eval()


def test_mobilevit_xxs_equals_timm(timm_mobilevit, count_params, reference_macs):
    import torch

    result = analyze("mobilevit_xxs")
    assert result.input_shape == (3, 256, 256) == timm_mobilevit.pretrained_cfg["input_size"]
    assert result.total.params == count_params(timm_mobilevit) == 1_272_024
    assert result.total.macs == reference_macs(timm_mobilevit, torch.randn(1, 3, 256, 256))
    assert said(f"MobileViT-XXS: {result.total.params:,} parameters, {result.total.macs:,} MACs")


def test_mobilevit_xxs_computes_the_same_function(timm_mobilevit):
    import torch

    from scalelab.build import build_module

    ours = build_module("mobilevit_xxs").eval()
    state, our_state = timm_mobilevit.state_dict(), ours.state_dict()
    assert [tuple(t.shape) for t in state.values()] == [tuple(t.shape) for t in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, state.values())), strict=True)
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        expected, got = timm_mobilevit(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_mobilevit_xxs_memory_equals_what_torch_holds():
    """At 64x64, batch 2: every block's inference peak and the tensors one training step saves, exactly."""
    from scalelab.analysis.memory import inference_memory, training_memory
    from scalelab.analysis.memory_probe import block_peaks, training_step
    from scalelab.build import build_module
    from scalelab.graph import resolve
    from scalelab.spec import load_spec

    network = resolve(load_spec("mobilevit_xxs"), 64)
    model = inference_memory(network, batch=2)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, 2)
    assert training_memory(network, batch=2).saved_bytes == training_step(network, "sgd", batch=2)["saved_bytes"]


def said(text: str) -> bool:
    return " ".join(text.split()) in " ".join(README.split())


def test_the_readme_lists_the_unfold_kind():
    assert f"| `unfold` | {KINDS['unfold'].summary} |" in README
