"""The zoo specs of modern CNNs equal torchvision's models: parameters, MACs (FlopCounterMode / 2,
and torchvision's published ``_ops``), and, with torchvision's randomly initialised state dict
loaded, the same outputs. Expected figures are torchvision's, computed here from its models."""

from __future__ import annotations

import pytest

from scalelab import analyze

# spec (= torchvision builder), params and _ops from torchvision 0.29.1's weight metadata
MODERN = [
    ("mobilenet_v3_large", 5_483_032, 0.217),
    ("mobilenet_v3_small", 2_542_856, 0.057),
    ("efficientnet_v2_s", 21_458_488, 8.366),
    ("regnet_y_400mf", 4_344_144, 0.402),
    ("convnext_tiny", 28_589_128, 4.456),
    ("shufflenet_v2_x1_0", 2_278_604, 0.145),
    ("densenet121", 7_978_856, 2.834),
]
IDS = [m[0] for m in MODERN]

# Where torchvision registers a module's tensors before those of its siblings that run first:
# RegNet's projection shortcut ``proj`` before the residual branch ``f``; ConvNeXt's ``layer_scale``
# before the ``block`` it scales. The built spec registers them in the order they run.
REGISTERED_EARLY = {"proj", "layer_scale"}


def in_run_order(keys: list[str]) -> list[str]:
    """State-dict keys with each REGISTERED_EARLY entry moved after its siblings (stable otherwise)."""
    tree: dict = {}
    for key in keys:
        node = tree
        for part in key.split("."):
            node = node.setdefault(part, {})

    def flatten(node: dict, prefix: str) -> list[str]:
        if not node:
            return [prefix]
        names = sorted(node, key=lambda n: n in REGISTERED_EARLY)  # stable: others keep their order
        return [k for n in names for k in flatten(node[n], f"{prefix}.{n}" if prefix else n)]

    return flatten(tree, "")


@pytest.mark.parametrize("spec, params, ops", MODERN, ids=IDS)
def test_counts_equal_torchvision(spec, params, ops, torchvision_model, count_params, flop_counter_macs):
    import torch
    import torchvision

    result = analyze(spec)
    model = torchvision_model(spec)
    assert count_params(model) == params == result.total.params
    assert flop_counter_macs(model, torch.randn(1, *result.input_shape)) == result.total.macs
    meta = torchvision.models.get_model_weights(spec).DEFAULT.meta
    assert meta["num_params"] == params
    assert round(result.total.macs / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-9) == ops
    assert spec.endswith("_s") or result.input_shape == (3, 224, 224)


@pytest.mark.parametrize("spec", IDS)
def test_built_spec_computes_the_same_function(spec, torchvision_model):
    """torchvision's tensors, in run order, have the built spec's shapes one for one; loaded into it,
    the outputs agree. This pins what counts cannot: activation and SE placement, padding, strides."""
    import torch

    from scalelab.build import build_module

    theirs = torchvision_model(spec)
    ours = build_module(spec).eval()
    state = theirs.state_dict()
    their_keys = in_run_order(list(state))
    our_state = ours.state_dict()
    assert [tuple(state[k].shape) for k in their_keys] == [tuple(t.shape) for t in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, (state[k] for k in their_keys))), strict=True)
    x = torch.randn(2, *analyze(spec).input_shape)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


@pytest.mark.parametrize("spec, blocks, rate, steps", [
    ("efficientnet_v2_s", 40, 0.2, 40),  # EfficientNet: 0.2 * i / 40, the last block below 0.2
    ("convnext_tiny", 18, 0.1, 17),  # ConvNeXt: 0.1 * i / 17, the last block at 0.1
])
def test_stochastic_depth_ramp_equals_torchvision(spec, blocks, rate, steps, torchvision_model):
    """Block i drops its branch with torchvision's probability; a block without a residual branch
    (the first of an EfficientNet stage) holds the rate but has nothing to drop."""
    from torchvision.ops import StochasticDepth

    from scalelab.blocks.layers.torch_modules import StochasticDepth as Ours
    from scalelab.build import build_module

    theirs = [m.p for m in torchvision_model(spec).modules() if isinstance(m, StochasticDepth)]
    assert theirs == pytest.approx([rate * i / steps for i in range(blocks)])
    network = analyze(spec).network
    stage_blocks = [b for b in network.blocks.values() if b.stage]
    assert [b.block.drop_path for b in stage_blocks] == pytest.approx(theirs)
    with_branch = [b.block.drop_path for b in stage_blocks if b.kind == "wrap" or (b.block.stride == 1 and b.in_shape[0] == b.block.out)]
    built = [m.p for m in build_module(network).modules() if isinstance(m, Ours)]
    assert built == pytest.approx([p for p in with_branch if p > 0])
