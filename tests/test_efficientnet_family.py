"""EfficientNet B1-B7 from the B0 spec equal torchvision's efficientnet_b1..b7 exactly."""

import pytest

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.scaling.efficientnet import VARIANTS, efficientnet

# torchvision 0.29: sum of parameters of efficientnet_bN(weights=None), and the weights' `_ops`
# (GFLOPS = multiply-adds) as exact integers (torch.utils.flop_counter / 2), at torchvision's sizes
TORCHVISION = {
    "b1": (240, 7_794_184, 686_802_832),
    "b2": (288, 9_109_994, 1_087_529_456),
    "b3": (300, 12_233_232, 1_827_141_392),
    "b4": (380, 19_341_616, 4_393_771_024),
    "b5": (456, 30_389_784, 10_266_384_752),
    "b6": (528, 43_040_704, 19_067_593_536),
    "b7": (600, 66_347_960, 37_745_884_192),
}


@pytest.mark.parametrize("variant", sorted(TORCHVISION))
def test_params_and_macs_equal_torchvision(variant):
    resolution, params, macs = TORCHVISION[variant]
    spec = efficientnet(variant)
    assert spec.input.resolution == (resolution, resolution)
    total = analyze(spec).total
    assert total.params == params
    assert total.macs == macs


@pytest.mark.parametrize("variant", sorted(TORCHVISION))
def test_params_equal_torchvision_built_models(variant, torchvision_model, count_params):
    assert analyze(efficientnet(variant)).total.params == count_params(torchvision_model(f"efficientnet_{variant}"))


def test_b1_macs_equal_flop_counter(torchvision_model, flop_counter_macs):
    import torch

    from scalelab.build import build_module

    spec = efficientnet("b1")
    x = torch.zeros(1, 3, 240, 240)
    reference = flop_counter_macs(torchvision_model("efficientnet_b1"), x)
    assert analyze(spec).total.macs == reference
    assert flop_counter_macs(build_module(spec).eval(), x) == reference


def test_b0_is_the_base():
    total = analyze(efficientnet("b0")).total
    assert (total.params, total.macs) == (5_288_548, 385_814_752)


def test_variants_table():
    # Tan & Le 2019, Table 2 and the official efficientnet_params: (width, depth, resolution, dropout)
    official = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
                "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
                "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}
    assert {k: (v.width, v.depth, v.paper_resolution, v.dropout) for k, v in VARIANTS.items()} == official
    paper_top1 = [77.1, 79.1, 80.1, 81.6, 82.9, 83.6, 84.0, 84.3]
    assert [v.paper_top1 for v in VARIANTS.values()] == paper_top1
    # torchvision evaluates B2 at 288, every other variant at the paper's size
    assert [k for k, v in VARIANTS.items() if v.resolution != v.paper_resolution] == ["b2"]


def test_variant_details():
    b4 = efficientnet("EfficientNet-B4")
    assert b4.name == "efficientnet_b4"
    assert next(e for e in b4.blocks if getattr(e, "kind", None) == "dropout").p == 0.4
    assert b4.reference.top1 == 83.384 and "torchvision" in b4.reference.source
    b2 = efficientnet("b2", paper_resolution=True)
    assert b2.input.resolution == (260, 260)
    assert b2.reference.top1 == 80.1 and "Table 2" in b2.reference.source
    assert "288" in efficientnet("b2").description  # says which resolution it uses


def test_unknown_variant():
    with pytest.raises(ScalelabError, match="unknown EfficientNet variant 'b8'"):
        efficientnet("b8")
