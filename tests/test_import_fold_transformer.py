"""Imported transformers fold into the token kinds: timm's deit_tiny_patch16_224 (and vit_tiny, the
same network under ``-m slow``) reads as the zoo spec does, a patch embedding, one stage of twelve
encoder blocks, a token pool and the head, with the zoo spec's ``--level 1`` rows (kinds, shapes,
parameters, MACs). The folded spec states the module exactly: the flat spec's totals, the module's
sum of p.numel() and reference MACs, the YAML re-analysed without torch, and the module rebuilt from
it with the source's weights computing the source's outputs (so the state follows the folded
layers' order). Expected settings are read off the models' constructors. timm's layer scale folds
into the transformer's field, DeiT III whole (its position embedding on the patches before the
class token, patch_embed's ``position_on: patches``), and torchvision's ViT (nn.MultiheadAttention, its qkv copied whole)
into transformer blocks with ``qkv: packed_copy``, as the zoo's vit_b_16 states it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from import_checks import assert_rebuilt_module_computes_the_same, assert_reanalysed_without_torch
from scalelab import analyze, load_spec, parse_spec
from scalelab.importer import import_module
from scalelab.report import build_report
from scalelab.spec.model import Stage

timm = pytest.importorskip("timm")
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _rows(spec) -> list[tuple]:
    """The ``--level 1`` rows: kind with repeats, output shape, parameters, MACs."""
    return [(r.kind, tuple(r.out_shape), r.values["params"], r.values["macs"])
            for r in build_report(analyze(spec), depth=1).rows]


def _totals(spec) -> tuple:
    total = analyze(spec).total
    return total.params, total.macs, total.ops, total.weight_ops


def _lines(spec) -> list[tuple]:
    """(kind, repeat) of each line of a spec: a stage by its block's kind."""
    return [(e.block.kind, e.repeat) if isinstance(e, Stage) else (e.kind, 1) for e in spec.blocks]


def _assert_exact(model, size, name, run_fresh, tmp_path, reference_macs):
    torch.manual_seed(0)
    folded = import_module(model, size, name=name)
    flat = import_module(model, size, name=name, fold=False)
    params = sum(p.numel() for p in model.parameters())
    macs = reference_macs(model, torch.zeros(1, *size))
    assert _totals(folded.spec) == _totals(flat.spec)
    assert (analyze(folded.spec).total.params, analyze(folded.spec).total.macs) == (params, macs)
    assert_reanalysed_without_torch(folded, tmp_path, run_fresh, params, macs)
    assert_rebuilt_module_computes_the_same(folded, model, torch.randn(2, *size))
    return folded


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224",
                                  pytest.param("vit_tiny_patch16_224", marks=pytest.mark.slow)])
def test_timm_vit_folds_into_the_zoo_specs_lines(name, run_fresh, tmp_path, reference_macs):
    model = timm.create_model(name, pretrained=False).eval()
    folded = _assert_exact(model, (3, 224, 224), name, run_fresh, tmp_path, reference_macs)
    zoo = load_spec(ROOT / "specs" / "deit_tiny_patch16_224.yaml")
    assert _lines(folded.spec) == [("patch_embed", 1), ("transformer", len(model.blocks)), ("token_pool", 1),
                                   ("linear", 1)]
    assert _rows(folded.spec) == _rows(zoo)
    stage = folded.spec.blocks[1]
    assert stage.block.heads_of(model.embed_dim) == (model.blocks[0].attn.num_heads, model.blocks[0].attn.head_dim)


def test_a_mean_pooled_vit_without_class_token_folds_with_its_settings(run_fresh, tmp_path, reference_macs):
    """Settings other than DeiT's: no class token, heads of 32, no qkv bias, an MLP 3 wide, the mean
    of the tokens with the norm after it (timm's fc_norm)."""
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=2, mlp_ratio=3,
                              qkv_bias=False, class_token=False, global_pool="avg", num_classes=10).eval()
    folded = _assert_exact(model, (3, 32, 32), "small", run_fresh, tmp_path, reference_macs)
    embed, stage, pool, head = folded.spec.blocks
    assert (embed.kind, embed.out, embed.patch, embed.class_token, embed.position) == \
        ("patch_embed", 64, (8, 8), False, "learned")
    assert (stage.repeat, stage.block.kind, stage.block.heads_of(64), stage.block.qkv_bias, stage.block.mlp_ratio) == \
        (3, "transformer", (2, 32), False, 3.0)
    assert (pool.kind, pool.mode, pool.skip, pool.norm) == ("token_pool", "mean", 0, "after")
    assert (head.kind, head.out) == ("linear", 10)


def test_a_block_no_kind_states_stays_primitive_and_exact(run_fresh, tmp_path, reference_macs):
    """timm's q and k norms (a layer norm of each head's q and k before the product) are layers the
    transformer kind does not state: exactness refuses it, so each block stays as imported, exactly."""
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10,
                              qk_norm=True).eval()
    folded = _assert_exact(model, (3, 32, 32), "qk_norm", run_fresh, tmp_path, reference_macs)
    kinds = [kind for kind, _ in _lines(folded.spec)]
    assert "transformer" not in kinds and "attention" in kinds


def _scale_fields(spec) -> list[tuple]:
    """(repeat, kind, layer_scale) of each stage of transformer blocks."""
    return [(e.repeat, e.block.kind, e.block.layer_scale) for e in spec.blocks
            if isinstance(e, Stage) and e.block.kind == "transformer"]


def test_timms_layer_scale_folds_into_the_transformers_field(run_fresh, tmp_path, reference_macs):
    """timm's LayerScale (``x * gamma``: a parameter of the features' size and a product, on each
    branch) reads as the transformer's layer_scale, one scale layer of the same parameters and ops;
    the rebuilt module, timm's gammas loaded (given values here, so that a scale left out would
    compute otherwise), computes timm's outputs."""
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10,
                              init_values=1e-5).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.ls1.gamma.uniform_(0.5, 1.5), block.ls2.gamma.uniform_(0.5, 1.5)
    folded = _assert_exact(model, (3, 32, 32), "scaled", run_fresh, tmp_path, reference_macs)
    assert _lines(folded.spec) == [("patch_embed", 1), ("transformer", 2), ("token_pool", 1), ("linear", 1)]
    # the gammas' values are the module's state; the field's initial value is the kind's default
    assert _scale_fields(folded.spec) == [(2, "transformer", 1e-6)]


def test_timms_deit3_folds_whole(run_fresh, tmp_path, reference_macs):
    """DeiT III (timm's deit3, Touvron et al. 2022), small: layer scale on both branches of every
    block, and the position embedding added to the patches before the class token is put in front
    (timm's no_embed_class), which reads as patch_embed's ``position_on: patches``. The import folds
    into a patch embedding, a stage, a token pool and the head, exactly (the flat import's totals,
    the module's parameters and MACs, its outputs rebuilt with its weights, given values here so that
    a position row placed on the wrong token would compute otherwise)."""
    model = timm.create_model("deit3_small_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=64,
                              depth=3, num_heads=2, num_classes=10).eval()
    assert model.blocks[0].ls1.gamma.shape == (64,) and model.no_embed_class
    with torch.no_grad():
        model.pos_embed.normal_(), model.cls_token.normal_()
    folded = _assert_exact(model, (3, 32, 32), "deit3", run_fresh, tmp_path, reference_macs)
    assert _lines(folded.spec) == [("patch_embed", 1), ("transformer", 3), ("token_pool", 1), ("linear", 1)]
    assert _scale_fields(folded.spec) == [(3, "transformer", 1e-6)]
    embed = folded.spec.blocks[0]
    assert (embed.out, embed.patch, embed.class_token, embed.distill_token, embed.position, embed.position_on) == \
        (model.embed_dim, model.patch_embed.patch_size, True, False, "learned", "patches")


def test_a_vit_with_position_on_every_token_keeps_the_default():
    """timm's ViT adds its position embedding after the class token: the fold writes the default
    (position_on: all_tokens), as the zoo's deit_tiny states it."""
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=2, num_classes=10).eval()
    embed = import_module(model, (3, 32, 32), name="vit").spec.blocks[0]
    assert not model.no_embed_class
    assert (embed.kind, embed.class_token, embed.position, embed.position_on) == \
        ("patch_embed", True, "learned", "all_tokens")


TV_AS_KINDS = """
name: tv_as_kinds
input: {{channels: 3, resolution: 32}}
blocks:
  - {{name: patch_embed, kind: patch_embed, out: {dim}, patch: 8}}
  - {{stage: encoder, repeat: {layers}, block: {{kind: transformer, heads: 2, mlp_hidden: 128{qkv}}}}}
  - {{name: pool, kind: token_pool, mode: class, norm: before}}
  - {{name: head, kind: linear, out: 10}}
"""


def test_torchvisions_vit_folds_with_its_packed_qkv_copy(run_fresh, tmp_path, reference_macs):
    """torchvision's encoder (nn.MultiheadAttention) copies the whole qkv projection before it splits
    q, k and v: 3 x tokens x features elements a block, which ``qkv: packed_copy`` states. The import
    folds into the zoo's lines, exactly; written by hand, the kinds' spec with the copy has the
    module's parameters, MACs and the import's other ops, and without it exactly those copies fewer."""
    TorchvisionViT = pytest.importorskip("torchvision.models.vision_transformer").VisionTransformer

    layers, tokens, dim = 2, (32 // 8) ** 2 + 1, 64
    model = TorchvisionViT(image_size=32, patch_size=8, num_layers=layers, num_heads=2, hidden_dim=dim,
                           mlp_dim=128, num_classes=10).eval()
    folded = _assert_exact(model, (3, 32, 32), "tv", run_fresh, tmp_path, reference_macs)
    assert _lines(folded.spec) == [("patch_embed", 1), ("transformer", layers), ("token_pool", 1), ("linear", 1)]
    stage = folded.spec.blocks[1].block
    assert (stage.qkv, stage.heads_of(dim), stage.norm_position) == ("packed_copy", (2, 32), "pre")
    packed = parse_spec(TV_AS_KINDS.format(dim=dim, layers=layers, qkv=", qkv: packed_copy"), "<kinds>")
    views = parse_spec(TV_AS_KINDS.format(dim=dim, layers=layers, qkv=""), "<kinds>")
    params, macs = sum(p.numel() for p in model.parameters()), reference_macs(model, torch.zeros(1, 3, 32, 32))
    assert _totals(packed) == _totals(folded.spec) and _totals(packed)[:2] == (params, macs)
    assert analyze(packed).total.ops - analyze(views).total.ops == layers * 3 * tokens * dim


@pytest.mark.parametrize("size", [32, pytest.param(224, marks=pytest.mark.slow)])
def test_the_vit_b_16_zoo_spec_is_the_import_of_torchvisions(size, reference_macs):
    """specs/vit_b_16.yaml states torchvision's qkv copy: at its resolution (and at 32 px, two by two
    patches, where the import is quick) its parameters, MACs, other ops and weight ops are the
    import's, which are the module's; the import folds into the zoo spec's lines."""
    import torchvision

    from scalelab.scaling import scale_spec

    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, image_size=size).eval()
    imported = import_module(model, (3, size, size), name="vit_b_16")
    zoo = load_spec(ROOT / "specs" / "vit_b_16.yaml")
    zoo = zoo if size == 224 else scale_spec(zoo, 1.0, 1.0, size)
    assert _totals(zoo) == _totals(imported.spec)
    assert analyze(zoo).total.params == sum(p.numel() for p in model.parameters())
    assert analyze(zoo).total.macs == reference_macs(model, torch.zeros(1, 3, size, size))
    assert _lines(imported.spec) == _lines(zoo)
    assert imported.spec.blocks[1].block.qkv == zoo.blocks[1].block.qkv == "packed_copy"


def test_the_imported_deit_scales_as_the_zoo_spec_does():
    """Folded into a stage of transformer blocks, the import depth-scales (repeats), width-scales in
    whole heads and takes another resolution as the zoo spec does: the same rows after scaling."""
    from scalelab.scaling import scale_spec

    model = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    imported = import_module(model, (3, 224, 224), name="deit_tiny_patch16_224").spec
    zoo = load_spec(ROOT / "specs" / "deit_tiny_patch16_224.yaml")
    scaled = [scale_spec(spec, depth=1.2, width=1.5, resolution=288) for spec in (imported, zoo)]
    assert _rows(scaled[0]) == _rows(scaled[1])
    assert _lines(scaled[0])[1] == ("transformer", 15)  # 12 x 1.2 rounded up: 15, as the zoo's


def _kinds_within(value) -> list[str]:
    """Every block kind in a spec's lines, a wrap's body and a stage's block included."""
    if isinstance(value, dict):
        return ([value["kind"]] if "kind" in value else []) + [k for v in value.values() for k in _kinds_within(v)]
    return [k for v in value for k in _kinds_within(v)] if isinstance(value, list) else []


@pytest.mark.slow
def test_mobilevits_transformers_fold_inside_its_unfold_and_fold(run_fresh, tmp_path, reference_macs):
    """MobileViT's encoder blocks (timm's vision_transformer Block over patches) become transformer
    blocks in the wrap around its unfold, transformers and fold, one per Block of the module."""
    import yaml

    from timm.models.vision_transformer import Block

    model = timm.create_model("mobilevit_xxs", pretrained=False).eval()
    folded = _assert_exact(model, (3, 256, 256), "mobilevit_xxs", run_fresh, tmp_path, reference_macs)
    blocks = sum(isinstance(m, Block) for m in model.modules())
    assert blocks == 2 + 4 + 3  # MobileViT-XXS: transformer depths 2, 4 and 3 (Mehta and Rastegari 2022)
    assert _kinds_within(yaml.safe_load(folded.text)["blocks"]).count("transformer") == blocks
