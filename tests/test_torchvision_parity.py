"""Zoo specs that mirror a torchvision model equal it exactly: parameters; MACs by
``torch.utils.flop_counter`` (FLOPs / 2) and by torchvision's published ``_ops``; fvcore's conv and
linear counts, and fvcore's total once what fvcore adds on top is accounted for.

Expected figures are torchvision's (reference README §1), not scalelab's."""

from __future__ import annotations

import logging

import pytest

from scalelab import analyze

# spec, torchvision builder, builder arguments, params, MACs (torchvision 0.29.1, batch 1 at 224)
MIRRORS = [
    ("resnet18", "resnet18", {}, 11_689_512, 1_814_073_344),
    ("resnet34", "resnet34", {}, 21_797_672, 3_663_761_408),
    ("resnet50", "resnet50", {}, 25_557_032, 4_089_184_256),
    ("resnet101", "resnet101", {}, 44_549_160, 7_801_405_440),
    ("resnet152", "resnet152", {}, 60_192_808, 11_513_626_624),
    ("wide_resnet50_2", "wide_resnet50_2", {}, 68_883_240, 11_398_021_120),
    ("resnext50_32x4d", "resnext50_32x4d", {}, 25_028_904, 4_230_479_872),
    ("vgg16", "vgg16", {}, 138_357_544, 15_470_264_320),
    ("vgg16_bn", "vgg16_bn", {}, 138_365_992, 15_470_264_320),
    ("alexnet_torchvision", "alexnet", {}, 61_100_840, 714_188_480),
    ("googlenet", "googlenet", {"aux_logits": False, "init_weights": True}, 6_624_904, 1_498_376_192),
    ("mobilenet_v2", "mobilenet_v2", {}, 3_504_872, 300_774_272),
    ("efficientnet_b0", "efficientnet_b0", {}, 5_288_548, 385_814_752),
]
IDS = [m[0] for m in MIRRORS]


@pytest.fixture(scope="module")
def fvcore_counts(torchvision_model):
    """fvcore's per-operator counts of each torchvision model, computed once."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    cache: dict = {}

    def get(builder: str, kwargs: dict, resolution: int):
        key = (builder, tuple(sorted(kwargs.items())))
        if key not in cache:
            logging.getLogger("fvcore").setLevel(logging.ERROR)
            counter = FlopCountAnalysis(torchvision_model(builder, **kwargs), torch.randn(1, 3, resolution, resolution))
            counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            cache[key] = (dict(counter.by_operator()), counter.total())
        return cache[key]

    return get


@pytest.mark.parametrize("spec, builder, kwargs, params, macs", MIRRORS, ids=IDS)
def test_parameters_equal_torchvision(spec, builder, kwargs, params, macs, torchvision_model, count_params):
    assert count_params(torchvision_model(builder, **kwargs)) == params
    assert analyze(spec).total.params == params


@pytest.mark.parametrize("spec, builder, kwargs, params, macs", MIRRORS, ids=IDS)
def test_macs_equal_torch_flop_counter(spec, builder, kwargs, params, macs, torchvision_model, flop_counter_macs):
    import torch

    result = analyze(spec)
    model = torchvision_model(builder, **kwargs)
    assert flop_counter_macs(model, torch.randn(1, *result.input_shape)) == macs
    assert result.total.macs == macs


@pytest.mark.parametrize("spec, builder, kwargs, params, macs", MIRRORS, ids=IDS)
def test_macs_match_torchvision_published_ops(spec, builder, kwargs, params, macs):
    """torchvision's weight metadata publishes GFLOPS (multiply-adds, in 1e9) rounded to 3 decimals."""
    import torchvision

    weights = torchvision.models.get_model_weights(builder).DEFAULT
    assert round(analyze(spec).total.macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=1e-9)
    assert weights.meta["num_params"] == params


@pytest.mark.filterwarnings("ignore::FutureWarning")  # fvcore's own use of torch.jit
@pytest.mark.parametrize("spec, builder, kwargs, params, macs", MIRRORS, ids=IDS)
def test_fvcore_agrees(spec, builder, kwargs, params, macs, fvcore_counts):
    """fvcore counts one "flop" per multiply-add for conv and linear, so those entries equal our MACs.
    Its total is larger: it also charges eval-mode batchnorm 2 per element (scale and shift) and
    adaptive average pooling 1 per input element, and these equal scalelab's "other ops" for the
    same layers. It skips activations, pooling windows, adds and SE gating (unsupported operators)."""
    by_operator, total = fvcore_counts(builder, kwargs, 224)
    result = analyze(spec)
    layers = [layer for block in result.blocks if not block.training_only for layer in block.layers]
    assert by_operator.get("conv", 0) == sum(c.macs for c in layers if c.label == "conv")
    assert by_operator.get("linear", 0) + by_operator.get("addmm", 0) == sum(c.macs for c in layers if c.label == "linear")
    assert by_operator.get("conv", 0) + by_operator.get("linear", 0) + by_operator.get("addmm", 0) == macs

    batchnorm_ops = sum(c.ops for c in layers if c.label == "batchnorm")
    adaptive_pool_ops = sum(c.ops for c in layers if c.label == "avgpool")  # these mirrors have no windowed avg pool
    assert by_operator.get("batch_norm", 0) == batchnorm_ops
    assert by_operator.get("adaptive_avg_pool2d", 0) == adaptive_pool_ops
    assert set(by_operator) <= {"conv", "linear", "addmm", "batch_norm", "adaptive_avg_pool2d"}
    assert total - macs == batchnorm_ops + adaptive_pool_ops


def test_googlenet_with_auxiliary_heads(torchvision_model, count_params, flop_counter_macs):
    """torchvision's GoogLeNet built with its two auxiliary classifiers has 13,004,888 parameters; the
    spec marks them training-only: inference totals leave them out, the training-only total holds
    them. In training mode torchvision runs them, and so does the built spec."""
    import torch

    from scalelab.build import build_module

    result = analyze("googlenet")
    model = torchvision_model("googlenet", aux_logits=True, init_weights=True)
    assert count_params(model) == 13_004_888
    assert result.total.params == 6_624_904
    assert result.total.params + result.training_only_total.params == 13_004_888

    x = torch.randn(2, 3, 224, 224)  # batch 2: batchnorm in training mode needs more than one value
    model.train()
    try:
        torchvision_train_macs = flop_counter_macs(model, x) // 2
    finally:
        model.eval()
    assert torchvision_train_macs == result.total.macs + result.training_only_total.macs
    # each head: 1x1 conv 512 or 528 -> 128 on 4x4, fc 2048 -> 1024, fc 1024 -> 1000
    assert result.training_only_total.macs == sum(16 * c * 128 + 2048 * 1024 + 1024 * 1000 for c in (512, 528))

    net = build_module(result.network).train()
    with torch.no_grad():
        outputs = net(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 1000)] * 3


@pytest.mark.parametrize("spec, builder, kwargs", [
    ("resnet50", "resnet50", {}),
    ("resnext50_32x4d", "resnext50_32x4d", {}),
    ("googlenet", "googlenet", {"aux_logits": False, "init_weights": True}),
    ("mobilenet_v2", "mobilenet_v2", {}),
    ("efficientnet_b0", "efficientnet_b0", {}),
    ("alexnet_torchvision", "alexnet", {}),
])
def test_built_spec_computes_the_same_function(spec, builder, kwargs, torchvision_model):
    """Beyond equal counts: the built spec holds torchvision's tensors in the same order and shapes
    (parameters and batchnorm buffers), and with torchvision's weights loaded it gives the same
    output. This pins what counts cannot: activation placement, padding, stride position, pooling."""
    import torch

    from scalelab.build import build_module

    theirs = torchvision_model(builder, **kwargs)
    ours = build_module(spec).eval()
    their_tensors = list(theirs.state_dict().values())
    # training-only heads (GoogLeNet's auxiliary classifiers) are not in the inference model
    heads = tuple(f"blocks.{i}." for i, aux in enumerate(ours.training_only) if aux)
    our_state = {k: v for k, v in ours.state_dict().items() if not k.startswith(heads or ("-",))}
    assert [tuple(t.shape) for t in their_tensors] == [tuple(t.shape) for t in our_state.values()]
    missing, unexpected = ours.load_state_dict(dict(zip(our_state, their_tensors)), strict=False)
    assert not unexpected and all(k.startswith(heads) for k in missing)
    x = torch.randn(2, *analyze(spec).input_shape)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
