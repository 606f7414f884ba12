"""Folded imports of timm CNNs of ten families scale and search as the zoo's specs do: width 1.25 with
depth 1.5 (their folded stages' repeats x1.5) builds in torch and its analysis equals the built
module's sum(p.numel()) and FlopCounterMode's MACs (conftest's reference_macs), and a search under a
budget of twice the import's MACs, ranked by the proxy (a timm model states no top-1), finishes with
a winner within the budget. One model runs by default, the rest under ``-m slow``.

CSPResNet splits each stage's expanded map into two halves by stated sizes (``split`` with
``sizes``): width scaling cuts the scaled map into halves as the import's, each the count a conv
reading it rounds to, and the map their sum (``scaling.wired``), so cspresnet50 widens and searches
as the others do."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

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
    width = 1.25
    scaled = scale_spec(spec, depth=1.5, width=width)
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
    # x1.25 on both sides of most convs (about 1.56x), and more blocks
    assert result.macs > 1.3 * base_macs
    # a split of the channels (CSPResNet's) keeps its pieces' proportion: halves x1.25 (128 -> 160, ...)
    splits = [(b.sizes, s.sizes) for b, s in zip(spec.blocks, scaled.blocks) if getattr(b, "kind", "") == "split"]
    assert [scaled_sizes for _, scaled_sizes in splits] == [[round(v * 1.25) for v in sizes] for sizes, _ in splits]
    assert bool(splits) == (name == "cspresnet50")


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


def _separable(cin: int, cout: int) -> nn.Sequential:
    """Xception's separable conv: a depthwise 3x3 over the input, a 1x1 to ``cout``, each normed."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class XceptionBlock(nn.Module):
    """ReLU, separable conv to ``cout``, ReLU, separable conv; summed with the input, projected by a
    1x1 conv where the channels change."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), _separable(cin, cout), nn.ReLU(), _separable(cout, cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if cin != cout else nn.Identity()

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class TinyXception(nn.Module):
    """An entry block from 16 to 32 channels, then a middle flow of two 32-channel blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.entry = XceptionBlock(16, 32)
        self.middle = nn.Sequential(XceptionBlock(32, 32), XceptionBlock(32, 32))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.middle(self.entry(self.stem(x))).mean((2, 3)))


def test_a_block_whose_body_states_its_input_channels_is_no_stage_to_deepen(reference_macs):
    """The entry block's first depthwise conv is over the 16 channels it reads: repeated, it would read
    its own 32 (a conv of 16 groups of 2, or none), so it folds into a block, not a stage of one;
    depth 1.5 deepens the middle flow, 2 -> 3 blocks, and every depthwise conv stays one."""
    torch.manual_seed(0)
    model = TinyXception().eval()
    spec = import_module(model, (3, 16, 16), name="tiny_xception").spec
    assert analyze(spec).total.params == sum(p.numel() for p in model.parameters())
    assert [(e.stage, e.repeat) if isinstance(e, Stage) else (e.name, e.kind) for e in spec.blocks[:3]] == [
        ("stem", "conv"), ("entry", "wrap"), ("middle", 2)]
    scaled = scale_spec(spec, depth=1.5, width=1.25)
    assert [e.repeat for e in scaled.blocks if isinstance(e, Stage)] == [3]
    built = build_module(scaled).eval()
    x = torch.randn(1, 3, 16, 16)
    # the stem's 16 -> 20 -> 24; the blocks' 32 -> 40: each depthwise conv's groups its input's channels
    grouped = [(m.in_channels, m.groups) for m in built.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert grouped == [(24, 24), (40, 40)] + [(40, 40)] * 6
    assert analyze(scaled).total.params == sum(p.numel() for p in built.parameters())
    assert analyze(scaled).total.macs == reference_macs(built, x)
