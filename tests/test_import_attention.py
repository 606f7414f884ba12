"""timm attention and hybrid models and every torchvision transformer (vit_*, swin_*, maxvit_t): each
either imports exactly (parameters equal sum(p.numel()), MACs equal conftest's reference_macs, the
YAML re-analysed without torch, the rebuilt module computing the same outputs) or is refused naming
exactly the operators in REFUSED. The importer's known defects are held the same way: a model whose
rebuilt module cannot run (NOT_REBUILT) and a model whose import crashes (CRASH, a strict expected
failure). So a change in either direction is seen. One small model runs by default; ``-m slow`` runs
them all."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze
from scalelab.errors import ScalelabError
from scalelab.importer import import_module

timm = pytest.importorskip("timm")

#: timm attention and hybrid models, each at its pretrained_cfg input size (a family -> models dict, as
#: tests/test_import_timm.py's, so benchmarks/bench_import_coverage.py reads it the same way)
FAMILIES = {"attention / hybrid": ["vit_tiny_patch16_224", "deit_tiny_patch16_224", "levit_128s", "mobilevit_xxs",
                                   "efficientformer_l1", "coatnet_nano_rw_224", "edgenext_xx_small", "fastvit_t8",
                                   "efficientvit_b0", "swin_tiny_patch4_window7_224"]}
TIMM = [m for models in FAMILIES.values() for m in models]
#: every torchvision transformer -> the image side it is built for and run at: ViT takes its image size
#: as an argument (a few patches a side keeps the slow list quick); Swin pads to its windows but is run
#: at 224 where its shifted windows are real; MaxViT's partitions need 224
TORCHVISION = {"vit_b_16": 64, "vit_b_32": 64, "vit_l_16": 64, "vit_l_32": 64, "vit_h_14": 56,
               "swin_t": 224, "swin_s": 224, "swin_b": 224, "swin_v2_t": 224, "swin_v2_s": 224, "swin_v2_b": 224,
               "maxvit_t": 224}
TRANSFORMERS = ("vit_", "swin_", "maxvit")
#: library:model -> the exact set of operators its refusal names (the reason, as the refusal gives it)
REFUSED: dict[str, set[str]] = {
    # LeViT's linear layers end in BatchNorm1d over the channels of its tokens merged with the batch
    # ((B*N, C): no block normalises the last axis with running statistics), and its attention
    # downsampling adds a bias gathered for subsampled queries (an index no source block recomputes)
    "timm:levit_128s": {"aten._native_batch_norm_legit_no_training.default", "aten.add.Tensor"},
    # EdgeNeXt's Fourier position encoding is built at run time from a mask of the input's shape
    # (full, bitwise not, cumsum, a cast and a division by a constant)
    "timm:edgenext_xx_small": {"aten.cumsum.default", "aten.div.Tensor", "aten.full.default",
                               "aten._to_copy.default", "aten.bitwise_not.default"},
}
#: models whose import ends in an exception other than ScalelabError (a defect of the importer) -> its type
CRASH: dict[str, type] = {}
#: models imported with exact figures whose module rebuilt from the YAML cannot run -> what it says
NOT_REBUILT: dict[str, str] = {}
DEFAULT_RUN = {"timm:vit_tiny_patch16_224"}


def _param(key: str):
    marks = [] if key in DEFAULT_RUN else [pytest.mark.slow]
    if key in CRASH:
        marks.append(pytest.mark.xfail(raises=CRASH[key], strict=True,
                                      reason=f"the importer raises {CRASH[key].__name__} instead of refusing"))
    return pytest.param(key, marks=marks)


PARAMS = [_param(f"timm:{m}") for m in TIMM] + [_param(f"torchvision:{m}") for m in TORCHVISION]


def _build(key: str):
    library, name = key.split(":")
    torch.manual_seed(0)
    if library == "timm":
        model = timm.create_model(name, pretrained=False).eval()
        return model, tuple(model.pretrained_cfg["input_size"])
    side = TORCHVISION[name]
    kwargs = {"image_size": side} if name.startswith("vit_") else {}
    return getattr(torchvision.models, name)(weights=None, **kwargs).eval(), (3, side, side)


def _refused_operators(message: str) -> set[str]:
    """The operators a refusal names, one per line as '  OPERATOR xCOUNT (why) at PLACES'."""
    return set(re.findall(r"^  (\S+) x\d+ \(", message, re.M))


def test_the_lists_cover_eight_timm_models_and_every_torchvision_transformer():
    from test_import_torchvision import MODELS as TORCHVISION_CNNS

    assert len(set(TIMM)) == len(TIMM) >= 8
    every = set(torchvision.models.list_models(module=torchvision.models))
    assert {m for m in every if m.startswith(TRANSFORMERS)} == set(TORCHVISION)
    assert set(TORCHVISION_CNNS) | set(TORCHVISION) == every  # every classification model is on a list
    assert set(REFUSED) | set(CRASH) | set(NOT_REBUILT) <= {f"timm:{m}" for m in TIMM} | {f"torchvision:{m}" for m in TORCHVISION}


def test_a_refusal_lists_each_operator_once():
    message = ("m: 3 operation(s) cannot be stated as spec blocks, so their cost is unknown:\n"
               "  aten.add.Tensor x2 (an operand is computed from parameters (weight-side computation)) at a, b\n"
               "  aten.matmul.default x1 (a product of a channels-last feature map) at c\n"
               "nothing was imported; --allow-unsupported imports them as opaque blocks of unknown cost")
    assert _refused_operators(message) == {"aten.add.Tensor", "aten.matmul.default"}


class _Attend(torch.nn.Module):
    """A patch stem and nn.MultiheadAttention, sequence-first (the batch on axis 1) or batch-first."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 24, 4, stride=4)
        self.attn = torch.nn.MultiheadAttention(24, 3, batch_first=batch_first)
        self.batch_first = batch_first

    def forward(self, x):
        x = self.stem(x).flatten(2)
        x = x.transpose(1, 2) if self.batch_first else x.permute(2, 0, 1)
        out = self.attn(x, x, x, need_weights=False)[0]
        return out if self.batch_first else out.transpose(0, 1)  # the spec's output holds the batch first


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_merging_the_batch_into_its_heads_imports_exactly(batch_first, reference_macs,
                                                                              run_fresh, tmp_path):
    torch.manual_seed(0)
    model = _Attend(batch_first).eval()
    imported = import_module(model, (3, 16, 16), name="attend")
    result = analyze(imported.spec)
    # by hand: the stem 24*3*4*4 per position over 16 positions; q, k, v and the output projection
    # 4 * 24 * 24 per token; the scores and the weighted sum 2 * 16 * 16 * 24
    by_hand = 16 * 24 * 3 * 16 + 16 * 4 * 24 * 24 + 2 * 16 * 16 * 24
    assert result.total.macs == by_hand == reference_macs(model, torch.zeros(1, 3, 16, 16))
    params = sum(p.numel() for p in model.parameters())
    assert result.total.params == params
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, by_hand)
    torch.manual_seed(1)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(3, 3, 16, 16))


class _Mixes(torch.nn.Module):
    """Rows of (B*L, E) read back as (L, B, E): each new sample takes rows of several."""

    def forward(self, x):
        rows = x.flatten(2).transpose(1, 2).reshape(-1, 3)  # (B*16, 3), each sample's 16 rows together
        return rows.view(16, x.shape[0], 3).transpose(0, 1) * 2


def test_a_reshape_that_mixes_samples_after_merging_the_batch_is_refused_by_name():
    with pytest.raises(ScalelabError) as info:
        import_module(_Mixes(), (3, 4, 4), name="mixes")
    assert "aten.view.default x1 (a reshape of 16x3 to 16x3 that moves the batch axis)" in str(info.value)


@pytest.mark.parametrize("key", PARAMS)
def test_attention_model_imports_exactly_or_is_refused_by_name(key, reference_macs, run_fresh, tmp_path):
    model, size = _build(key)
    name = key.split(":")[1]
    if key in REFUSED:
        with pytest.raises(ScalelabError) as info:
            import_module(model, size, name=name)
        assert "cannot be stated as spec blocks" in str(info.value), str(info.value)
        assert _refused_operators(str(info.value)) == REFUSED[key], str(info.value)
        return
    imported = import_module(model, size, name=name)
    result = analyze(imported.spec)
    params = sum(p.numel() for p in model.parameters())
    assert result.total.params == params
    assert result.total.macs == reference_macs(model, torch.zeros(1, *size))
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, result.total.macs)
    torch.manual_seed(1)
    x = torch.randn(2, *size)
    if key in NOT_REBUILT:
        with pytest.raises(ScalelabError, match=NOT_REBUILT[key]):
            assert_rebuilt_module_computes_the_same(imported, model, x)
        return
    assert_rebuilt_module_computes_the_same(imported, model, x)


@pytest.mark.slow
def test_vit_b_16_imports_at_224_with_its_published_operations(reference_macs):
    """nn.MultiheadAttention merges the batch into its heads ((L, B*h, d)) and its rows ((L*B, E)):
    each merge and split is a reshape per sample, so the spec states the model at its own size, and
    its MACs are the reference figure, which is torchvision's published _ops for the weights."""
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    imported = import_module(model, (3, 224, 224), name="vit_b_16")
    result = analyze(imported.spec)
    assert result.total.params == sum(p.numel() for p in model.parameters())
    assert result.total.macs == reference_macs(model, torch.zeros(1, 3, 224, 224))
    assert round(result.total.macs / 1e9, 3) == torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta["_ops"]
    torch.manual_seed(1)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(1, 3, 224, 224))


def test_a_small_swin_v2_imports_exactly_with_its_weight_side_computation(reference_macs, run_fresh, tmp_path):
    """Swin V2's qkv bias with the keys' slice zeroed on every pass (given values here, so a layer
    that kept them would compute otherwise), its logit scale and its continuous position bias, whose
    MLP runs once per pass: the MACs equal the reference at batch 1 and at batch 3."""
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                            num_classes=10, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("qkv.bias"):
                torch.nn.init.normal_(p)
    imported = import_module(model, (3, 32, 32), name="swin_v2_small")
    text = imported.text
    assert text.count("kind: continuous_position_bias") == text.count("kind: logit_scale") == 4  # one per block
    # each qkv of 3 x width outputs zeroes its keys' slice, [width, 2 width)
    assert re.findall(r"out: (\d+), .*bias_zeroed: \[(\d+), (\d+)\]", text) == [("48", "16", "32")] * 2 + [("96", "32", "64")] * 2
    params = sum(p.numel() for p in model.parameters())
    one, three = analyze(imported.spec, batch=1).total, analyze(imported.spec, batch=3).total
    assert one.params == params
    assert one.macs == reference_macs(model, torch.zeros(1, 3, 32, 32))
    assert three.macs == reference_macs(model, torch.zeros(3, 3, 32, 32))
    # the MLP, Linear(2, 512) and Linear(512, heads) over (2 * 4 - 1) ** 2 coordinates, once per pass
    assert one.weight_macs == three.weight_macs == 2 * 49 * (2 * 512 + 512 * 2) + 2 * 49 * (2 * 512 + 512 * 4)
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, params, one.macs)
    torch.manual_seed(1)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, 32, 32))
