"""timm CNNs across the usual families, each at its pretrained_cfg input size: those in EXACT import
with parameters equal to sum(p.numel()) and MACs equal to the reference figure (conftest's
reference_macs), their YAML re-analysed without torch and their rebuilt module computing the same
outputs; every other one is refused naming the operators no block states (never a crash, never a
figure counted as zero). A handful run by default and the rest are marked slow, so the default run
and ``-m slow`` together cover the list; ``-m "slow or not slow"`` runs all of it at once."""

from __future__ import annotations

import pytest
import torch

from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze
from scalelab.errors import ScalelabError
from scalelab.importer import import_module

timm = pytest.importorskip("timm")

#: family -> models; covers ResNet-D/T stems, SE/ECA/SK/ResNeSt/Res2Net, RegNet, EfficientNet (tf_ too),
#: MobileNet v2/v3/v4, MixNet, GhostNet, ReXNet, LCNet, DenseNet, Inception, Xception, DLA, DPN,
#: HRNet, CSPNet/Darknet, VoVNet, TResNet, NFNet, RepVGG, MobileOne, ConvNeXt v1/v2, GENet, SelecSLS, VGG
FAMILIES = {
    "resnet": ["resnet18", "resnet10t", "resnet26t", "resnet50d", "wide_resnet50_2"],
    "attention in resnets": ["seresnet50", "ecaresnet50d", "skresnet18", "resnest14d", "res2net50_26w_4s"],
    "regnet": ["regnetx_002", "regnety_002", "regnetz_b16"],
    "efficientnet": ["efficientnet_b0", "tf_efficientnet_b0"],
    "mobile": ["mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv4_conv_small", "mixnet_s", "ghostnet_100",
               "rexnet_100", "lcnet_050"],
    "densenet and inception": ["densenet121", "inception_v3", "inception_v4", "xception41"],
    "aggregation": ["dla34", "dpn68", "hrnet_w18_small", "cspresnet50", "cspdarknet53", "darknet53",
                    "ese_vovnet19b_dw", "tresnet_m"],
    "normaliser-free": ["dm_nfnet_f0", "nf_resnet26"],
    "reparameterised": ["repvgg_a0", "mobileone_s0"],
    "convnext": ["convnext_atto", "convnextv2_atto"],
    "others": ["gernet_s", "selecsls42b", "vgg11"],
}
#: the models this scalelab imports exactly (parameters and MACs measured against the module)
EXACT = {"resnet18", "resnet10t", "resnet26t", "resnet50d", "wide_resnet50_2", "seresnet50", "ecaresnet50d",
         "skresnet18", "resnest14d", "res2net50_26w_4s", "regnetx_002", "regnety_002", "regnetz_b16",
         "efficientnet_b0", "tf_efficientnet_b0", "mobilenetv2_100", "mobilenetv3_small_100",
         "mobilenetv4_conv_small", "mixnet_s", "ghostnet_100", "rexnet_100", "lcnet_050", "densenet121",
         "inception_v3", "inception_v4", "xception41", "dla34", "dpn68", "hrnet_w18_small", "cspresnet50",
         "cspdarknet53", "darknet53", "ese_vovnet19b_dw", "dm_nfnet_f0", "nf_resnet26", "repvgg_a0", "mobileone_s0", "convnext_atto",
         "convnextv2_atto", "gernet_s", "selecsls42b", "vgg11"}
#: models no spec states, each with the reason its refusal names: TResNet's anti-aliased downsampling
#: convolves with a fixed blur filter held as a buffer, and a spec's conv learns its weight
REFUSED = {"tresnet_m": "its weight is a buffer (a fixed filter), not a parameter"}
DEFAULT_RUN = {"resnet10t", "regnetx_002", "ecaresnet50d"}
MODELS = [m for models in FAMILIES.values() for m in models]
PARAMS = [pytest.param(m, marks=() if m in DEFAULT_RUN else pytest.mark.slow) for m in MODELS]


def test_the_list_covers_forty_cnns():
    assert len(set(MODELS)) == len(MODELS) >= 40 and EXACT | set(REFUSED) <= set(MODELS)
    assert not EXACT & set(REFUSED)


@pytest.mark.parametrize("name", PARAMS)
def test_timm_cnn_imports_exactly_or_is_refused_by_name(name, reference_macs, run_fresh, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    if name not in EXACT:
        with pytest.raises(ScalelabError) as info:
            import_module(model, size, name=name)
        assert "cannot be stated as spec blocks" in str(info.value) and " x" in str(info.value)
        assert REFUSED.get(name, "") in str(info.value), str(info.value)
        return
    imported = import_module(model, size, name=name)
    result = analyze(imported.spec)
    params = sum(p.numel() for p in model.parameters())
    assert result.total.params == params
    assert result.total.macs == reference_macs(model, torch.zeros(1, *size))
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, result.total.macs)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, *size))
