"""The conv's weight_standardization against timm's StdConv2d and ScaledStdConv2d, face by face:
shape, parameters (the gain), MACs (FlopCounterMode, which counts none for the standardisation), the
weight ops by the stated per-element formula, what autograd saves, and the same outputs from the
module built with timm's state dict; then a small module of both imported exactly (the weight found
by data flow, a 0-d parameter operand as NFNet's skip gain)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze
from scalelab.blocks import layers as L
from scalelab.blocks.layers.conv import WeightStd
from scalelab.importer import import_module
from scalelab.report import build_report

std_conv = pytest.importorskip("timm.layers.std_conv")

CASES = {  # name -> (timm module, the spec's primitive)
    "scaled": (lambda: std_conv.ScaledStdConv2d(4, 6, 3, stride=2, gamma=1.7015043497207642, eps=1e-5),
               L.Conv(4, 6, (3, 3), (2, 2), (1, 1), bias=True, standardize=WeightStd(1e-5, True, 1.7015043497207642))),
    "plain": (lambda: std_conv.StdConv2d(4, 6, 3, groups=2, bias=True),
              L.Conv(4, 6, (3, 3), (1, 1), (1, 1), groups=2, bias=True, standardize=WeightStd(1e-6))),
}


def _source(name):
    torch.manual_seed(0)
    module = CASES[name][0]()
    if hasattr(module, "gain"):
        nn.init.normal_(module.gain, 1.0, 0.5)  # not all ones, so that a gain left out would show
    return module


@pytest.mark.parametrize("name", CASES)
def test_the_primitive_counts_and_computes_as_timm(name):
    source, layer = _source(name), CASES[name][1]
    shape = (4, 9, 9)
    out = layer.out_shape(shape)
    cost = layer.cost(shape, out)
    x = torch.randn(3, *shape)
    with FlopCounterMode(display=False) as counter:
        y = source(x)
    assert tuple(y.shape[1:]) == out
    assert cost.params == sum(p.numel() for p in source.parameters())
    assert 2 * 3 * cost.macs == counter.get_total_flops()
    weights, gain = source.weight.numel(), name == "scaled"
    # mean, variance and normalise per weight element, the gain's scale too (5), and gain * scale per channel
    assert cost.weight_ops == (weights * 5 + 6 if gain else weights * 4)
    built = layer.torch_module()
    built.load_state_dict(source.state_dict())
    assert list(built.state_dict()) == list(source.state_dict())
    assert torch.equal(built(x), y)


def _saved_bytes(module, x, trained: bool) -> int:
    """Distinct storages autograd keeps in one pass, parameters excluded, as tests/faces.py counts."""
    for p in module.parameters():
        p.requires_grad_(trained)
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved: dict = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(saved.values())


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("trained", [True, False])
def test_the_saved_face_is_what_autograd_keeps(name, trained):
    source, layer = _source(name), CASES[name][1]
    shape, batch = (4, 9, 9), 3
    x = torch.randn(batch, *shape, requires_grad=True) * 1  # a non-leaf input, as inside a network
    face = layer.saved(shape, layer.out_shape(shape), trained, True, "cpu")
    expected = 4 * (batch * L.elements(shape) * face.input + face.fixed_elements) + face.fixed_bytes
    assert _saved_bytes(source, x, trained) == expected
    assert face.fixed_elements >= source.weight.numel()  # the standardised weight is kept, a tensor of its own


class Small(nn.Module):
    """A stem of timm's ScaledStdConv2d, a StdConv2d and a skip scaled by a 0-d gain (NFNet's skipinit)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = std_conv.ScaledStdConv2d(3, 8, 3, stride=2, gamma=1.7015043497207642, eps=1e-5)
        self.conv = std_conv.StdConv2d(8, 8, 3)
        self.skip_gain = nn.Parameter(torch.tensor(0.25))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return x + self.conv(x).mul_(self.skip_gain)


def test_a_small_module_of_standardised_convs_imports_exactly(reference_macs, run_fresh, tmp_path):
    torch.manual_seed(0)
    model = Small().eval()
    nn.init.normal_(model.stem.gain, 1.0, 0.5)
    imported = import_module(model, (3, 16, 16), name="small")
    stem = next(b for b in imported.spec.blocks if b.name == "stem")
    assert stem.weight_standardization is not None and stem.weight_standardization.gain
    assert stem.weight_standardization.gamma * 27 ** -0.5 == model.stem.scale  # the scale to the last bit
    result = analyze(imported.spec, batch=4)
    params = sum(p.numel() for p in model.parameters())
    assert result.total.params == params
    assert result.total.macs == 4 * reference_macs(model, torch.zeros(1, 3, 16, 16))
    # the standardisations run once per pass, whatever the batch: 8 x 27 weights (and 8 gains), 8 x 72
    assert result.total.weight_ops == 8 * 27 * 5 + 8 + 8 * 72 * 4 == analyze(imported.spec, batch=1).total.weight_ops
    note = [n for n in build_report(result).notes if n.startswith("WEIGHT OPS")]
    assert note and f"{8 * 27 * 5 + 8 + 8 * 72 * 4:,}" in note[0]
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, analyze(imported.spec).total.macs)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, 16, 16))


def test_a_weight_computed_another_way_is_still_refused():
    """Only the standardisation timm computes is a spec field; a weight computed otherwise is refused."""
    from scalelab.errors import ScalelabError

    class Doubled(nn.Conv2d):
        def forward(self, x):
            return nn.functional.conv2d(x, self.weight * 2, self.bias)

    with pytest.raises(ScalelabError, match=r"aten.conv2d.default x1 \(its weight is computed, not a parameter\)"):
        import_module(nn.Sequential(Doubled(3, 4, 3)).eval(), (3, 8, 8), name="doubled")


def test_the_readme_example_states_a_scaled_standardised_stem():
    """The README's spec line, analysed: the conv's parameters with its 16 gains, and its weight ops."""
    import re
    from pathlib import Path

    import yaml

    from scalelab.spec import Spec

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = re.search(r"  - \{name: stem, kind: conv, out: 16.*?\n.*?weight_standardization.*?\}\}", readme).group(0)
    blocks = yaml.safe_load(line)
    spec = Spec.model_validate({"name": "ws", "input": {"channels": 3, "resolution": 32}, "blocks": blocks})
    total = analyze(spec, batch=2).total
    assert total.params == 16 * 27 + 16 + 16
    assert total.weight_ops == 16 * 27 * 5 + 16
    assert total.macs == 2 * 16 * 16 * 16 * 27
