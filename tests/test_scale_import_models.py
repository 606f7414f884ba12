"""Imported torchvision and timm CNNs, flat (``fold=False``) and folded, scaled to width 1.25: the
scaled spec builds in torch and runs, and its analysis equals the built module's sum(p.numel()) and
FlopCounterMode's MACs (conftest's reference_macs). A handful run by default, the rest under
``-m slow``. Folded specs deepen too: depth multiplies their stages' repeats."""

from __future__ import annotations

import pytest
import torch

from scalelab.analysis import analyze
from scalelab.build import build_module
from scalelab.importer import import_module
from scalelab.scaling.compound import scale_spec
from scalelab.spec.model import Stage

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")

#: the stem conv's channels at width 1.25, worked out by hand: 64 x 1.25 = 80; 32 x 1.25 = 40;
#: 40 x 1.25 = 50 -> 48 (a multiple of 8, within 90%); GhostNet's 16 is tied to the 16 + 16 halves its
#: first block concatenates and adds to it (8 x 1.25 = 10 -> 8 is below 90% of 10, so 16 each)
MODELS = {
    "torchvision:resnet50": 80, "torchvision:mobilenet_v2": 40, "torchvision:efficientnet_b0": 40,
    "timm:resnet50d": 40, "timm:efficientnet_b0": 40, "timm:convnext_atto": 48, "timm:regnety_004": 40,
    "timm:ghostnet_100": 32,
}
DEFAULT_RUN = {("torchvision:mobilenet_v2", False), ("timm:ghostnet_100", False), ("timm:convnext_atto", False),
               ("timm:regnety_004", False), ("torchvision:mobilenet_v2", True)}
PARAMS = [pytest.param(m, fold, marks=() if (m, fold) in DEFAULT_RUN else pytest.mark.slow, id=f"{m}-{'folded' if fold else 'flat'}")
          for m in MODELS for fold in (False, True)]


def _model(ref: str):
    where, name = ref.split(":")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False) if where == "timm" else getattr(torchvision.models, name)()
    size = tuple(model.pretrained_cfg["input_size"]) if where == "timm" else (3, 224, 224)
    return model.eval(), size


def _stem_out(module) -> int:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).out_channels


@pytest.mark.parametrize("ref,fold", PARAMS)
def test_width_scaled_import_builds_and_equals_its_analysis(ref, fold, reference_macs):
    model, size = _model(ref)
    imported = import_module(model, size, name=ref.split(":")[1], fold=fold)
    base = analyze(imported.spec).total
    scaled = scale_spec(imported.spec, width=1.25)
    result = analyze(scaled).total
    built = build_module(scaled).eval()
    x = torch.randn(1, *size)
    with torch.no_grad():
        assert built(x).shape == (1, 1000)
    assert result.params == sum(p.numel() for p in built.parameters())
    assert result.macs == reference_macs(built, x)
    assert _stem_out(built) == MODELS[ref], scaled.blocks[:3]
    assert result.macs > 1.3 * base.macs  # x1.25 on both sides of most convs: about 1.56x


@pytest.mark.slow
def test_a_folded_import_deepens_by_its_stages():
    """torchvision's resnet50 folds into four bottleneck stages of 3, 4, 6, 3: depth 1.5 makes them
    ceil(4.5) = 5, 6, 9, ceil(4.5) = 5, and the deeper network builds with the analysis's figures."""
    model, size = _model("torchvision:resnet50")
    spec = import_module(model, size, name="resnet50").spec
    deeper = scale_spec(spec, depth=1.5, width=1.25)
    assert [e.repeat for e in deeper.blocks if isinstance(e, Stage)] == [5, 6, 9, 5]
    built = build_module(deeper).eval()
    assert analyze(deeper).total.params == sum(p.numel() for p in built.parameters())


@pytest.mark.slow
def test_folded_and_flat_ghostnet_scale_to_the_same_network():
    """README: the ghost modules fold into nested wraps, whose ties are the flat blocks' ties."""
    model, size = _model("timm:ghostnet_100")
    totals = [analyze(scale_spec(import_module(model, size, name="ghostnet_100", fold=fold).spec, width=1.25)).total
              for fold in (False, True)]
    assert (totals[0].params, totals[0].macs) == (totals[1].params, totals[1].macs)
    assert totals[0].macs > analyze(import_module(model, size, name="ghostnet_100").spec).total.macs
