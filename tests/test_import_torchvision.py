"""`scalelab import` on every classification CNN of the installed torchvision: the imported spec's
parameters equal sum(p.numel()) (the heads that never run in eval imported as training-only blocks),
its MACs equal FlopCounterMode's total / 2, and each block named after a module has that module's
output shape (forward hooks on the real module). Every one imports exactly: none is refused. A
handful runs by default and the rest are marked slow, so the default run and ``-m slow`` together
cover every model; ``-m "slow or not slow"`` runs all of them at once."""

from __future__ import annotations

import pytest
import torch
import torchvision

from scalelab import analyze
from scalelab.importer import import_module
from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch

#: the transformers (ViT, Swin, Swin V2 and MaxViT, every one exact), on tests/test_import_attention.py's
#: list with their own input sizes (which checks the two lists hold every model)
TRANSFORMERS = ("vit_", "swin_", "maxvit")
#: heads that run only in training, by model
TRAINING_ONLY = {"googlenet": {"aux1", "aux2"}, "inception_v3": {"AuxLogits"}}
DEFAULT_RUN = {"resnet18", "squeezenet1_1", "googlenet", "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5"}

MODELS = sorted(m for m in torchvision.models.list_models(module=torchvision.models) if not m.startswith(TRANSFORMERS))
PARAMS = [pytest.param(m, marks=() if m in DEFAULT_RUN else pytest.mark.slow) for m in MODELS]


def _build(name: str):
    torch.manual_seed(0)
    kwargs = {"init_weights": True} if name in TRAINING_ONLY else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs).eval()


def _module_shapes(model, x) -> dict:
    """Output shape per sample of every named module called exactly once in a real forward pass."""
    seen: dict = {}

    def hook(name):
        def record(module, inputs, output):
            seen.setdefault(name, []).append(tuple(output.shape[1:]))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: shapes[0] for n, shapes in seen.items() if len(shapes) == 1}


@pytest.mark.parametrize("name", PARAMS)
def test_torchvision_cnn_imports_exactly(name, reference_macs, run_fresh, tmp_path):
    model = _build(name)
    size = 299 if name == "inception_v3" else 224
    imported = import_module(model, (3, size, size), name=name)
    result = analyze(imported.spec)
    heads = TRAINING_ONLY.get(name, set())
    assert set(imported.training_only) == heads
    head_params = sum(p.numel() for h in heads for p in model.get_submodule(h).parameters())
    assert result.total.params == sum(p.numel() for p in model.parameters()) - head_params
    assert result.training_only_total.params == head_params  # imported as training-only blocks
    x = torch.zeros(1, 3, size, size)
    assert result.total.macs == reference_macs(model, x)
    if heads:  # in training mode the heads run too (batch 2: batchnorm needs more than one value)
        model.train()
        train_macs = reference_macs(model, torch.zeros(2, 3, size, size)) // 2
        model.eval()
        assert train_macs == result.total.macs + result.training_only_total.macs
    shapes = _module_shapes(model, x)
    named = [b for b in result.blocks if b.name in shapes]
    # most blocks carry a module's name; a folded stage's blocks its stage's (a module, or a range: features.2-3.0)
    assert len(named) >= len([b for b in result.blocks if b.stage is None]) // 3
    # between ConvNeXt's permutes torch holds (H, W, C); the spec states every map as (C, H, W)
    as_torch = [(b.name, tuple(b.out_shape) if shapes[b.name] == tuple(b.out_shape) or len(b.out_shape) != 3
                 else (*b.out_shape[1:], b.out_shape[0])) for b in named]
    assert as_torch == [(b.name, shapes[b.name]) for b in named]
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, sum(p.numel() for p in model.parameters()),
                                    result.total.macs)
    torch.manual_seed(1)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, size, size))
