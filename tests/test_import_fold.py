"""Imports fold into the zoo's block kinds and stages: the folded spec states the module exactly (the
flat spec's totals, every block's shape the module's, the rebuilt module with the source's weights
computing the source's outputs), torchvision's resnet50, mobilenet_v2, efficientnet_b0 and
regnet_y_400mf give the zoo specs' stage rows, and timm CNNs of ten families read about as short as
the zoo's hand-written specs. Expected structures are read off the models' definitions; the figures
are the modules' own (sum of p.numel(), FlopCounterMode). Small models run by default, the rest
under ``-m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cli_helpers import invoke
from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze, load_spec
from scalelab.importer import import_module
from scalelab.report import build_report
from scalelab.spec.model import Stage

ROOT = Path(__file__).resolve().parent.parent
torchvision = pytest.importorskip("torchvision")
from torchvision.models.efficientnet import MBConv, MBConvConfig  # noqa: E402
from torchvision.models.mobilenetv2 import InvertedResidual  # noqa: E402
from torchvision.models.resnet import BasicBlock  # noqa: E402
from torchvision.ops.misc import Conv2dNormActivation  # noqa: E402


def _figures(spec) -> tuple:
    """Totals that folding must keep (block output elements, ``activations``, count blocks, so they
    change with the number of blocks)."""
    total = analyze(spec).total
    return total.params, total.macs, total.ops, total.weight_ops


def _module_shapes(model, x) -> dict:
    """Output shape per sample of every named module called once in a real forward pass."""
    seen: dict = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: seen.setdefault(n, []).append(tuple(o.shape[1:])))
               for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: s[0] for n, s in seen.items() if len(s) == 1}


def _stage_lines(spec) -> list[tuple]:
    """(name, repeat, stride, kind, out) of every stage of a spec."""
    return [(e.stage, e.repeat, e.stride or 1, e.block.kind, getattr(e.block, "out", None))
            for e in spec.blocks if isinstance(e, Stage)]


def assert_folds_exactly(model, size, name: str, run_fresh=None, tmp_path=None, reference_macs=None):
    """The folded import states the module as the flat one does, block shapes and outputs included."""
    torch.manual_seed(0)
    folded = import_module(model, size, name=name)
    flat = import_module(model, size, name=name, fold=False)
    assert _figures(folded.spec) == _figures(flat.spec)
    assert analyze(folded.spec).total.params == sum(p.numel() for p in model.parameters())
    module = _module_shapes(model, torch.zeros(1, *size))
    blocks = analyze(folded.spec).blocks
    named = [b for b in blocks if b.name in module]
    assert named and all(tuple(b.out_shape) == module[b.name] for b in named)
    if run_fresh is not None:
        macs = reference_macs(model, torch.zeros(1, *size))
        assert analyze(folded.spec).total.macs == macs
        assert_reanalysed_without_torch(folded, tmp_path, run_fresh, sum(p.numel() for p in model.parameters()), macs)
    assert_rebuilt_module_computes_the_same(folded, model, torch.randn(2, *size))
    return folded, flat


class TinyResNet(nn.Module):
    """Two stages of torchvision's basic block: 16 channels, then 32 at stride 2 (projection)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dNormActivation(3, 16, 3)
        down = nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32))
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2, downsample=down), BasicBlock(32, 32), BasicBlock(32, 32))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _randomise_norms(model) -> None:
    """Statistics and affine weights other than the defaults, so that each must load where it belongs."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_basic_blocks_fold_into_residual_stages(run_fresh, tmp_path, reference_macs):
    model = TinyResNet().eval()
    _randomise_norms(model)
    folded, flat = assert_folds_exactly(model, (3, 32, 32), "tiny", run_fresh, tmp_path, reference_macs)
    # the definition: layer1 two 16-channel blocks; layer2 three 32-channel blocks, the first at stride 2
    assert _stage_lines(folded.spec) == [("layer1", 2, 1, "residual", 16), ("layer2", 3, 2, "residual", 32)]
    assert _stage_lines(flat.spec) == []
    entries = ["stage" if isinstance(e, Stage) else e.kind for e in folded.spec.blocks]
    assert entries == ["conv", "stage", "stage", "global_avgpool", "flatten", "linear"]


def test_inverted_residuals_with_squeeze_excite_fold_into_mbconv_stages():
    """torchvision's MobileNet v2 block (expand 6, ReLU6) and EfficientNet's MBConv (SE a quarter of
    the input channels, SiLU), each a stage whose first block takes the stride and the channels."""
    v2 = nn.Sequential(Conv2dNormActivation(3, 16, 3, activation_layer=nn.ReLU6),
                       InvertedResidual(16, 24, 2, 6), InvertedResidual(24, 24, 1, 6)).eval()
    folded, _ = assert_folds_exactly(v2, (3, 32, 32), "v2")
    (stage,) = [e for e in folded.spec.blocks if isinstance(e, Stage)]
    assert (stage.stage, stage.repeat, stage.stride) == ("1-2", 2, 2)
    assert (stage.block.kind, stage.block.out, stage.block.expand, stage.block.activation) == ("mbconv", 24, 6, "relu6")
    cfg = [MBConvConfig(6, 5, 2, 16, 24, 1), MBConvConfig(6, 5, 1, 24, 24, 1)]
    b0 = nn.Sequential(Conv2dNormActivation(3, 16, 3, activation_layer=nn.SiLU),
                       nn.Sequential(*(MBConv(c, 0.0, nn.BatchNorm2d) for c in cfg))).eval()
    _randomise_norms(b0)
    folded, _ = assert_folds_exactly(b0, (3, 32, 32), "b0")
    (stage,) = [e for e in folded.spec.blocks if isinstance(e, Stage)]
    assert (stage.stage, stage.repeat, stage.stride, stage.block.kernel, stage.block.se) == ("1", 2, 2, (5, 5), 0.25)


class NotAResidual(nn.Module):
    """conv1, conv2, then conv2's output plus conv1's (not the block's input): a sum around conv2 alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = Conv2dNormActivation(8, 8, 3)
        self.conv2 = Conv2dNormActivation(8, 8, 3, activation_layer=None)

    def forward(self, x):
        y = self.conv1(x)
        return torch.relu(self.conv2(y) + y)


class Ghost(nn.Module):
    """GhostNet's module: a 1x1 conv and a depthwise conv of its output, concatenated."""

    def __init__(self, cin: int, half: int) -> None:
        super().__init__()
        self.primary = Conv2dNormActivation(cin, half, 1)
        self.cheap = Conv2dNormActivation(half, half, 3, groups=half)

    def forward(self, x):
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)


class Branches(nn.Module):
    """Two branches of the same input concatenated (an inception module)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Conv2dNormActivation(16, 4, 1)
        self.b = nn.Sequential(Conv2dNormActivation(16, 4, 1), Conv2dNormActivation(4, 6, 3))

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dNormActivation(3, 8, 3)
        self.odd = NotAResidual()
        self.ghost = Ghost(8, 8)
        self.mixed = Branches()

    def forward(self, x):
        return self.mixed(self.ghost(self.odd(self.stem(x))))


def test_sums_and_concatenations_fold_into_wraps_and_inceptions_as_the_data_flows():
    """The sum around conv2 alone is no residual block (its shortcut is not the input): conv1, then a
    wrap of conv2; the ghost module a conv and a dense wrap (join concat); the branches an inception."""
    model = Nested().eval()
    _randomise_norms(model)
    folded, _ = assert_folds_exactly(model, (3, 16, 16), "nested")
    by_name = {b.name: b for b in folded.spec.blocks}
    odd = by_name["odd"]
    assert odd.kind == "wrap" and odd.shortcut == "none"
    assert [b.kind for b in odd.body] == ["conv", "wrap"] and odd.body[1].post == "relu"
    assert odd.body[1].shortcut == "identity" and [b.kind for b in odd.body[1].body] == ["conv"]
    ghost = by_name["ghost"]
    assert [b.kind for b in ghost.body] == ["conv", "wrap"] and ghost.body[1].join == "concat"
    mixed = by_name["mixed"]
    assert mixed.kind == "inception" and [[b.kind for b in br] for br in mixed.branches] == [["conv"], ["conv", "conv"]]


def test_no_fold_gives_the_flat_spec_and_the_same_totals(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "from torch import nn\nfrom torchvision.models.resnet import BasicBlock\n"
        "def build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BasicBlock(8, 8), BasicBlock(8, 8))\n")
    ref = f"{tmp_path / 'tiny.py'}:build"
    folded, flat = tmp_path / "folded.yaml", tmp_path / "flat.yaml"
    assert invoke("import", ref, "--input", "3x16x16", "-o", folded).exit_code == 0
    assert invoke("import", ref, "--input", "3x16x16", "--no-fold", "-o", flat).exit_code == 0
    # the two basic blocks (8 channels, stride 1) are one stage; flat, each conv is a block
    assert _stage_lines(load_spec(folded)) == [("1-2", 2, 1, "residual", 8)]
    assert "stage" not in flat.read_text() and flat.read_text().count("kind: conv") == 5
    assert _figures(load_spec(folded)) == _figures(load_spec(flat))


def _rows(spec) -> list[tuple]:
    """The ``--level 1`` rows (kind with repeats, output shape, parameters, MACs), the rows that
    cost nothing (a flatten, a dropout) left out."""
    rows = build_report(analyze(spec), depth=1).rows
    return [(r.kind, tuple(r.out_shape), r.values["params"], r.values["macs"]) for r in rows
            if r.values["params"] or r.values["macs"] or r.values["other_ops"]]


ZOO_MATCHES = [pytest.param("resnet18", id="resnet18"),
               *(pytest.param(m, marks=pytest.mark.slow, id=m)
                 for m in ("resnet50", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf"))]


@pytest.mark.parametrize("name", ZOO_MATCHES)
def test_torchvision_imports_give_the_zoo_specs_stage_rows(name):
    model = getattr(torchvision.models, name)(weights=None).eval()
    folded, _ = assert_folds_exactly(model, (3, 224, 224), name)
    assert _rows(folded.spec) == _rows(load_spec(name))
    if name.startswith("resnet"):  # the zoo's ResNets name their stages as torchvision's modules: the same lines

        def stage_lines(text: str) -> list[str]:
            return [line for line in text.splitlines() if line.startswith("  - {stage:")]

        assert stage_lines(folded.text) == stage_lines((ROOT / "specs" / f"{name}.yaml").read_text())
        assert len(stage_lines(folded.text)) == 4


@pytest.mark.slow
def test_timm_efficientnet_b0_has_the_zoo_specs_stages():
    timm = pytest.importorskip("timm")
    folded = import_module(timm.create_model("efficientnet_b0").eval(), (3, 224, 224), name="efficientnet_b0")

    def structure(spec):
        return [(e.repeat, e.stride or 1, e.block.kind, e.block.out, e.block.kernel, e.block.expand, e.block.se,
                 e.block.activation) for e in spec.blocks if isinstance(e, Stage)]

    assert structure(folded.spec) == structure(load_spec("efficientnet_b0")) and len(structure(folded.spec)) == 7


#: timm CNNs of ten families, each with the zoo spec of similar depth its length is held against
TIMM_LENGTHS = {"resnet50d": "resnet50", "seresnet50": "resnet50", "cspresnet50": "resnet50", "gernet_s": "resnet34",
                "xception41": "resnet50", "regnety_004": "regnet_y_400mf", "efficientnet_b0": "efficientnet_b0",
                "mobilenetv2_100": "mobilenet_v2", "mobilenetv3_large_100": "mobilenet_v3_large",
                "ghostnet_100": "mobilenet_v3_large"}
TIMM_DEFAULT = {"gernet_s"}


@pytest.mark.parametrize("name", [pytest.param(m, marks=() if m in TIMM_DEFAULT else pytest.mark.slow)
                                  for m in TIMM_LENGTHS])
def test_timm_cnns_fold_to_at_most_three_times_a_zoo_specs_length(name, run_fresh, tmp_path, reference_macs):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    folded, flat = assert_folds_exactly(model, size, name, run_fresh, tmp_path, reference_macs)
    zoo = (ROOT / "specs" / f"{TIMM_LENGTHS[name]}.yaml").read_text()
    assert len(folded.text.splitlines()) <= 3 * len(zoo.splitlines())
    assert len(folded.text.splitlines()) < len(flat.text.splitlines())



def test_a_fold_that_changed_a_figure_stops_the_import_naming_no_fold(monkeypatch):
    """The last guard: a folded spec whose totals differ from the flat one's is never written."""
    from scalelab.errors import ScalelabError
    from scalelab.importer import importing

    real = importing.fold_spec

    def one_repeat_short(spec, blocks, shapes, held):
        blocks, shapes, held = real(spec, blocks, shapes, held)
        return [{**b, "repeat": b["repeat"] - 1} if b.get("repeat", 0) > 1 else b for b in blocks], shapes, held

    monkeypatch.setattr(importing, "fold_spec", one_repeat_short)
    with pytest.raises(ScalelabError, match="folding changed the spec's totals; --no-fold imports it flat"):
        import_module(TinyResNet().eval(), (3, 32, 32), name="tiny")
