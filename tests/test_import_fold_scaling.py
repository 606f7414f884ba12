"""Folded imports of timm CNNs of ten families scale and search as the zoo's specs do: width 1.25 with
depth 1.5 (their folded stages' repeats x1.5) builds in torch and its analysis equals the built
module's sum(p.numel()) and FlopCounterMode's MACs (conftest's reference_macs), and a search under a
budget of twice the import's MACs, ranked by the proxy (a timm model states no top-1), finishes with
a winner within the budget. One model runs by default, the rest under ``-m slow``."""

from __future__ import annotations

import math

import pytest
import torch

from scalelab.analysis import analyze
from scalelab.build import build_module
from scalelab.importer import import_module
from scalelab.scaling.budget import Budget
from scalelab.scaling.candidates import Evaluator
from scalelab.scaling.compound import scale_spec
from scalelab.scaling.search import SearchSettings, run_search
from scalelab.spec.model import Stage

timm = pytest.importorskip("timm")

#: the ten families of tests/test_import_fold.py
MODELS = ("gernet_s", "resnet50d", "seresnet50", "cspresnet50", "xception41", "regnety_004", "efficientnet_b0",
          "mobilenetv2_100", "mobilenetv3_large_100", "ghostnet_100")
DEFAULT = {"gernet_s"}
PARAMS = [pytest.param(m, marks=() if m in DEFAULT else pytest.mark.slow) for m in MODELS]

_imports: dict = {}


def _folded(name: str):
    """The timm model (no weights, eval mode) and its folded import, once per session."""
    if name not in _imports:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        size = tuple(model.pretrained_cfg["input_size"])
        _imports[name] = model, size, import_module(model, size, name=name).spec
    return _imports[name]


@pytest.mark.parametrize("name", PARAMS)
def test_a_folded_timm_cnn_deepens_and_widens_to_a_network_that_equals_its_analysis(name, reference_macs):
    model, size, spec = _folded(name)
    stages = [e for e in spec.blocks if isinstance(e, Stage)]
    assert stages, "the import folds into stages, which depth multiplies"
    scaled = scale_spec(spec, depth=1.5, width=1.25)
    # each stage's repeats x1.5, rounded up (the zoo's rule): 1 -> 2, 2 -> 3, 3 -> 5, 4 -> 6
    assert [e.repeat for e in scaled.blocks if isinstance(e, Stage)] == [
        math.ceil(s.repeat * 1.5) if s.scale_depth else s.repeat for s in stages]
    built = build_module(scaled).eval()
    x = torch.randn(1, *size)
    with torch.no_grad():
        assert built(x).shape == (1, 1000)
    result = analyze(scaled).total
    assert result.params == sum(p.numel() for p in built.parameters())
    assert result.macs == reference_macs(built, x)
    base_macs = reference_macs(model, x)
    assert result.macs > 1.3 * base_macs  # x1.25 on both sides of most convs and more blocks


@pytest.mark.parametrize("name", PARAMS)
def test_a_folded_timm_cnn_searches_within_twice_its_macs(name):
    _, _, spec = _folded(name)
    assert spec.reference is None  # no top-1 to scale: the proxy ranks the candidates
    budget = Budget("macs", 2.0 * analyze(spec).total.macs, "2x")
    result = run_search(Evaluator(spec, (budget,), accuracy_method="proxy"),
                        SearchSettings((budget,), method="two-step", trials=4))
    winner = result.winner
    assert winner.feasible and winner.candidate.macs <= budget.limit
    again = analyze(scale_spec(spec, winner.candidate.depth_multiplier, winner.candidate.width, winner.candidate.pixels))
    assert again.total.macs == winner.candidate.macs
