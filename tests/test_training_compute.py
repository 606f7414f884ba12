"""Training compute equals torch.utils.flop_counter.FlopCounterMode / 2 over a real
``loss.backward()``, for every zoo spec built by scalelab and for the torchvision models the zoo
mirrors: all layers trained, and frozen through two points.

FlopCounterMode counts a grouped conv's weight gradient as if the conv had one group (its
``conv_backward`` formula takes the weight-gradient shape without the groups), i.e. ``groups`` times
the multiply-adds the gradient really takes; the difference, (groups - 1) x the conv's forward MACs
for every trained grouped conv, is computed here from the layer walk and asserted exactly.

A few small networks that cover every layer kind run by default (plain convs, LRN, residual blocks,
grouped and depthwise convs, linear heads); the rest are marked slow (``pytest -m slow``)."""

from __future__ import annotations

import pytest

from scalelab import analyze
from scalelab.analysis.trace import traced_layers
from scalelab.analysis.training import training_compute
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import load_spec, zoo_names

BATCH = 2  # batchnorm in training mode needs more than one value per channel


FAST = {"lenet5", "lenet5_modern", "alexnet", "resnet20", "mobilenet_v1", "mobilenet_v2"}


def _param(*values):
    return pytest.param(*values, marks=() if values[0] in FAST else pytest.mark.slow)


def freeze_points(network) -> list:
    names = list(network.blocks)
    return [None, names[len(names) // 3], names[-2]]


def flop_counter_step(model, input_shape, batch: int = BATCH) -> int:
    """MACs of forward + backward of a summed loss, by FlopCounterMode (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *input_shape)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        outs = out if isinstance(out, tuple) else (out,)  # auxiliary heads in training mode
        sum(o.sum() for o in outs).backward()
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


def grouped_weight_grad_excess(network, compute, batch: int = BATCH) -> int:
    """What FlopCounterMode adds: (groups - 1) x forward MACs of every trained grouped conv."""
    return sum((t.layer.groups - 1) * t.cost.macs * batch
               for b in network.blocks.values() if compute.blocks[b.name].trainable
               for t in traced_layers(b.layers, b.in_shape)
               if isinstance(t.layer, L.Conv) and t.layer.groups > 1)


def frozen_prefix(model, network, freeze_until) -> int:
    """Freeze the built module's blocks through ``freeze_until``; return the frozen parameter count."""
    if freeze_until is None:
        return 0
    names = list(network.blocks)
    frozen = 0
    for name in names[: names.index(freeze_until) + 1]:
        for p in model.block(name).parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


@pytest.mark.parametrize("name", [_param(n) for n in zoo_names()])
def test_built_module_training_step_equals_flop_counter(name):
    import torch

    from scalelab.build import Net

    network = resolve(load_spec(name))
    for freeze in freeze_points(network):
        torch.manual_seed(0)
        model = Net(network).train()
        frozen_prefix(model, network, freeze)
        compute = training_compute(network, BATCH, freeze)
        measured = flop_counter_step(model, network.input_shape)
        assert measured == compute.total_macs + grouped_weight_grad_excess(network, compute), (name, freeze)


def test_the_rules_by_hand_on_resnet18():
    network = resolve(load_spec("resnet18"))
    inference = analyze(network).total.macs
    everything = training_compute(network, 1)
    # forward + input gradients (all but the stem's, whose input is the image) + weight gradients
    stem = analyze(network).blocks[0].cost.macs
    assert everything.forward_macs == inference
    assert everything.weight_grad_macs == inference
    assert everything.input_grad_macs == inference - stem
    assert everything.total_macs == 3 * inference - stem
    # frozen through avgpool: only fc's forward and weight gradient (512 x 1000) are added
    head = training_compute(network, 1, "avgpool")
    assert (head.forward_macs, head.input_grad_macs, head.weight_grad_macs) == (inference, 0, 512 * 1000)
    # batch scales every figure
    assert training_compute(network, 8, "layer3.0").total_macs == 8 * training_compute(network, 1, "layer3.0").total_macs


# spec, torchvision builder and arguments (training mode: GoogLeNet with its auxiliary heads)
MIRRORS = [
    ("resnet18", "resnet18", {}), ("resnet34", "resnet34", {}), ("resnet50", "resnet50", {}),
    ("resnet101", "resnet101", {}), ("resnet152", "resnet152", {}), ("wide_resnet50_2", "wide_resnet50_2", {}),
    ("resnext50_32x4d", "resnext50_32x4d", {}), ("vgg16", "vgg16", {}), ("vgg16_bn", "vgg16_bn", {}),
    ("alexnet_torchvision", "alexnet", {}), ("googlenet", "googlenet", {"aux_logits": True, "init_weights": True}),
    ("mobilenet_v2", "mobilenet_v2", {}), ("efficientnet_b0", "efficientnet_b0", {}),
]


@pytest.mark.parametrize("spec, builder, kwargs", [_param(*m) for m in MIRRORS], ids=[m[0] for m in MIRRORS])
def test_torchvision_training_step_equals_flop_counter(spec, builder, kwargs):
    """Both registrations list parameters in execution order for these freeze points, so freezing the
    first parameters of the torchvision model freezes the same layers (the frozen counts are asserted)."""
    import torch
    import torchvision

    from scalelab.build import Net

    network = resolve(load_spec(spec))
    for freeze in freeze_points(network):
        torch.manual_seed(0)
        model = getattr(torchvision.models, builder)(weights=None, **kwargs).train()
        ours = Net(network)
        frozen = frozen_prefix(ours, network, freeze)
        count = sum(1 for p in ours.parameters() if not p.requires_grad)  # frozen tensors, in order
        params = list(model.parameters())
        for p in params[:count]:
            p.requires_grad_(False)
        assert sum(p.numel() for p in params[:count]) == frozen, (spec, freeze)
        compute = training_compute(network, BATCH, freeze)
        measured = flop_counter_step(model, network.input_shape)
        assert measured == compute.total_macs + grouped_weight_grad_excess(network, compute), (spec, freeze)
