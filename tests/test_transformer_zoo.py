"""The transformer zoo specs equal their sources: torchvision's vit_b_16 and timm's
deit_tiny_patch16_224, in parameters, MACs (the reference figure: FlopCounterMode / 2 with grad
enabled and the math attention kernel; vit_b_16's is torchvision's published ``_ops``) and, with
the source's randomly initialised state dict loaded, outputs; their memory against the torch probe."""

from __future__ import annotations

import pytest

from scalelab import analyze
from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.analysis.memory_probe import block_peaks, module_training_step, training_step
from scalelab.graph import resolve
from scalelab.spec import load_spec

torch = pytest.importorskip("torch")


def torchvision_in_spec_order(model) -> dict:
    """torchvision's ViT state dict in the order the spec's blocks hold it: the class token after the
    patch embedding's conv (torchvision registers it first); the rest runs in registration order
    (ln_1, in_proj = the fused qkv, out_proj = the projection, ln_2, mlp.0, mlp.3; encoder.ln; heads)."""
    state = dict(model.state_dict())
    conv = {k: state.pop(k) for k in ("conv_proj.weight", "conv_proj.bias")}
    return {**conv, "class_token": state.pop("class_token"), **state}


def timm_in_spec_order(model) -> dict:
    """timm's state dict with its class token and position embedding after the patch embedding's conv."""
    state = dict(model.state_dict())
    tokens = {k: state.pop(k) for k in ("cls_token", "pos_embed")}
    conv = {k: state.pop(k) for k in ("patch_embed.proj.weight", "patch_embed.proj.bias")}
    return {**conv, **tokens, **state}


def source_model(name: str):
    torch.manual_seed(0)
    if name == "vit_b_16":
        import torchvision

        return torchvision.models.vit_b_16(), torchvision_in_spec_order
    timm = pytest.importorskip("timm")
    return timm.create_model(name), timm_in_spec_order


@pytest.mark.parametrize("name", [pytest.param("vit_b_16", marks=pytest.mark.slow), "deit_tiny_patch16_224"])
def test_equals_its_source(name, reference_macs):
    from scalelab.build import build_module

    model, ordered = source_model(name)
    model.eval()
    result = analyze(name)
    x = torch.randn(2, 3, 224, 224)
    assert result.total.params == sum(p.numel() for p in model.parameters())
    assert result.total.macs == reference_macs(model, x[:1])
    built = build_module(resolve(load_spec(name))).eval()
    source = ordered(model)
    keys = list(built.state_dict())
    assert [tuple(built.state_dict()[k].shape) for k in keys] == [tuple(t.shape) for t in source.values()]
    built.load_state_dict(dict(zip(keys, source.values(), strict=True)))
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), atol=1e-4, rtol=1e-4)


def test_vit_b_16_is_torchvisions_published_figures():
    """torchvision's weight metadata: 86,567,656 parameters, _ops 17.564 GFLOPs (MACs); the exact
    reference count 17,563,828,224 (the issue's and FlopCounterMode's, computed in test_equals_its_source)."""
    from torchvision.models import ViT_B_16_Weights

    meta = ViT_B_16_Weights.IMAGENET1K_V1.meta
    result = analyze("vit_b_16")
    assert result.total.params == meta["num_params"]
    assert round(result.total.macs / 1e9, 3) == meta["_ops"]
    assert result.total.macs == 17_563_828_224


@pytest.mark.parametrize("kernel", ["math", "fused"])
def test_deit_tiny_training_step_equals_timm_and_the_analysis(kernel):
    """One real training step (batch 2, Adam): the analysis, the built spec (math kernel only: its
    module forces it) and timm's own module with the kernel forced (fused: flash attention on CPU)
    keep the same bytes: the score matrix saved for backward, or the log-sum-exp instead."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    timm = pytest.importorskip("timm")
    network = resolve(load_spec("deit_tiny_patch16_224"))
    model = training_memory(network, batch=2, optimizer="adam", attention_kernel=kernel)
    with sdpa_kernel(SDPBackend.MATH if kernel == "math" else SDPBackend.FLASH_ATTENTION):
        source = module_training_step(timm.create_model("deit_tiny_patch16_224"), (3, 224, 224), "adam", batch=2)
    reals = [source, training_step(network, "adam", batch=2)] if kernel == "math" else [source]
    figures = (model.weight_bytes, model.gradient_bytes, model.optimizer_bytes, model.saved_bytes)
    for real in reals:
        assert figures == (real["weight_bytes"], real["gradient_bytes"], real["optimizer_bytes"], real["saved_bytes"])


@pytest.mark.slow
def test_vit_b_16_training_step_equals_the_analysis():
    network = resolve(load_spec("vit_b_16"))
    model = training_memory(network, batch=2, optimizer="sgd")
    real = training_step(network, "sgd", batch=2)
    assert (model.weight_bytes, model.gradient_bytes, model.saved_bytes) == (
        real["weight_bytes"], real["gradient_bytes"], real["saved_bytes"])


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224", pytest.param("vit_b_16", marks=pytest.mark.slow)])
def test_inference_memory_equals_what_torch_holds(name):
    from scalelab.build import build_module

    network = resolve(load_spec(name))
    model = inference_memory(network, batch=2)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network),
                                                                              network.input_shape, 2)


def test_the_readme_states_these_figures():
    """Every transformer figure README.md states, recomputed: ViT-B/16's block by the formula
    4 N D² + 2 N² D + 2 N D H and by the analysis, both zoo specs' totals, DeiT-Ti's saved bytes by kernel."""
    from pathlib import Path

    from scalelab.report import human_bytes

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    vit, deit = analyze("vit_b_16"), analyze("deit_tiny_patch16_224")
    n, d, h = 197, 768, 3072
    block = next(b for b in vit.blocks if b.name == "encoder.0").cost.macs
    assert block == 4 * n * d * d + 2 * n * n * d + 2 * n * d * h
    assert f"ViT-B/16 (N = 197, D = 768, H = 3072): {block:,} MACs a block, {vit.total.macs:,} in all." in readme
    assert (f"(`vit_b_16`: {vit.total.params:,} parameters, {vit.total.macs:,} MACs, its `_ops` "
            f"{vit.total.macs / 1e9:.3f} G)") in readme
    assert f"(`deit_tiny_patch16_224`: {deit.total.params:,} parameters, {deit.total.macs:,} MACs)" in readme
    network = resolve(load_spec("deit_tiny_patch16_224"))
    math, fused = (human_bytes(training_memory(network, batch=8, attention_kernel=k).saved_bytes) for k in ("math", "fused"))
    assert f"DeiT-Ti at batch 8: saved activations {math} with the math kernel, {fused} fused" in readme
