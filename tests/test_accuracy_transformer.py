"""Accuracy estimates for transformers: the sourced DeiT, ViT and Swin rows, the family a spec is
estimated as, the law fitted within one protocol on transformer series only, its leave-one-series-out
errors and intervals, and the refusals where no family data exists."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy import estimate_accuracy, law_of
from scalelab.scaling.accuracy.family import network_family
from scalelab.scaling.accuracy.published import find_published, published
from scalelab.scaling.accuracy.scaling_law import fit, fitted_law, series_points
from scalelab.scaling.accuracy.transformer_law import FamilyLaw
from scalelab.spec import load_spec, parse_spec

NO_EXTRA = "{crops: 1, resolution: 32, pretraining: none, distillation: none}"


def tiny_vit(protocol: str = NO_EXTRA, first: str = "") -> str:
    """A two-block ViT at 32 px: 64 wide in heads of 16, patches of 8 (16 tokens and a class token)."""
    return f"""name: tiny_vit
input: {{channels: 3, resolution: 32}}
reference: {{top1: 72.2, source: "a test figure", protocol: {protocol}}}
blocks:{first}
  - {{kind: patch_embed, out: 64, patch: 8}}
  - {{stage: encoder, repeat: 2, block: {{kind: transformer, head_dim: 16}}}}
  - {{kind: token_pool, mode: class, norm: before}}
  - {{kind: linear, out: 10}}
"""


# ---------------------------------------------------------------- the table


def _top1(series: str) -> list[float]:
    return [r.top1 for r in published().members(series)]


def test_transformer_rows_are_the_published_figures():
    # Touvron et al. 2021 (DeiT) Table 5: Ti, S, B, B at 384; the same distilled
    assert _top1("deit") == [72.2, 79.8, 81.8, 83.1]
    assert _top1("deit_distilled") == [74.5, 81.2, 83.4, 84.5]
    # Liu et al. 2021 (Swin) Table 1(a) and (b); torchvision's Swin_*_Weights.IMAGENET1K_V1
    assert _top1("swin") == [81.3, 83.0, 83.5, 84.5]
    assert _top1("swin_torchvision") == [81.474, 83.196, 83.582]
    assert _top1("swin_in21k") == [85.2, 86.4, 87.3]
    # ViT-B/16 and L/16 at 384 pre-trained on ImageNet-21k, as Swin's Table 1(b) quotes them
    assert _top1("vit_in21k") == [84.0, 85.2]
    # ViT trained on ImageNet-1k alone stands outside any series: the larger is worse
    alone = {(r.name, r.resolution): r.top1 for r in published().rows
             if r.series is None and published().family_of(r) == "transformer"}
    assert alone == {("vit_base_patch16_384", 384): 77.9, ("vit_large_patch16_384", 384): 76.5,
                     ("vit_b_16", 224): 81.072, ("vit_l_16", 224): 79.662}


def test_transformer_series_state_family_protocol_and_multipliers():
    table = published()
    transformer = table.in_family("transformer")
    assert set(transformer) == {"deit", "deit_distilled", "swin", "swin_torchvision", "swin_in21k", "vit_in21k"}
    assert {(s.protocol.pretraining, s.protocol.distillation) for s in transformer.values()} == {
        ("none", "none"), ("none", "RegNetY-16GF"), ("ImageNet-21k", "none")}
    multipliers = {(r.name, r.series): table.multipliers(r) for n in transformer for r in table.members(n)}
    # embedding widths 192 / 384 / 768 (3, 6, 12 heads of 64); Swin 96 / 128 / 192; ViT 768 / 1024
    assert multipliers["deit_small_patch16_224", "deit"] == (1.0, 384 / 192, 1.0)
    assert multipliers["deit_base_patch16_384", "deit"] == (1.0, 768 / 192, 384 / 224)
    assert multipliers["swin_b", "swin"] == (2.0, 128 / 96, 1.0)  # 2-2-18-2 blocks against 2-2-6-2
    assert multipliers["swin_large_patch4_window12_384", "swin_in21k"] == (1.0, 192 / 128, 384 / 224)
    assert multipliers["vit_large_patch16_384", "vit_in21k"] == (2.0, 1024 / 768, 1.0)
    assert {r.blocks for n in transformer for r in table.members(n)} == {12, 24}


def _module(name: str):
    import timm
    import torchvision

    if hasattr(torchvision.models, name):
        return getattr(torchvision.models, name)()
    return timm.create_model(name, pretrained=False)


@pytest.mark.slow
def test_transformer_rows_figures_are_the_modules(reference_macs):
    """Every transformer row's parameters and MACs are those of the torchvision or timm module of
    its name (on the meta device: shapes only, nothing computed)."""
    import torch

    rows = {(r.name, r.resolution): r for r in published().rows
            if r.series in published().in_family("transformer") or (r.series is None and r.name.startswith("vit"))}
    for (name, size), row in rows.items():
        with torch.device("meta"):
            module = _module(name).eval()
            params = sum(p.numel() for p in module.parameters())
            macs = reference_macs(module, torch.randn(1, 3, size, size))
        assert (params, macs) == (row.params, row.macs), name


def test_torchvision_vit_and_swin_rows_are_the_modules(reference_macs):
    import torch
    import torchvision

    table = {r.name: r for r in published().rows if r.name in ("vit_b_16", "swin_t")}
    for name in ("vit_b_16", "swin_t"):
        with torch.device("meta"):
            module = getattr(torchvision.models, name)().eval()
            params = sum(p.numel() for p in module.parameters())
            macs = reference_macs(module, torch.randn(1, 3, 224, 224))
        assert (params, macs) == (table[name].params, table[name].macs)
    assert table["vit_b_16"].macs == 17_563_828_224  # torchvision's published _ops


def test_published_method_finds_a_deit_scaling():
    row = find_published("deit_tiny_patch16_224", 1.0, 2.0, 224, base_top1=72.2)
    assert (row.name, row.top1) == ("deit_small_patch16_224", 79.8)
    assert find_published("deit_tiny_distilled_patch16_224", 1.0, 4.0, 384).top1 == 84.5


# ---------------------------------------------------------------- family


@pytest.mark.parametrize("first, family", [
    ("", "transformer"),
    ("\n  - {kind: conv, out: 3, kernel: 3, padding: 1}", "hybrid"),  # a conv stem before the patches
    ("\n  - {kind: conv, out: 3, kernel: 1, stride: 1}", "transformer"),  # kernel = stride: patches of 1
])
def test_family_is_read_from_the_block_kinds(first, family):
    assert network_family(parse_spec(tiny_vit(first=first))) == family


def test_the_zoos_transformers_and_hybrids():
    assert {n: network_family(load_spec(n)) for n in ("vit_b_16", "deit_tiny_patch16_224", "swin_t", "mobilevit_xxs")} == {
        "vit_b_16": "transformer", "deit_tiny_patch16_224": "transformer", "swin_t": "transformer",
        "mobilevit_xxs": "hybrid"}  # MobileViT: mbconv blocks beside its transformers


def test_cnns_stay_cnns():
    for name in ("resnet50", "efficientnet_b0", "convnext_tiny"):
        assert network_family(load_spec(name)) == "cnn"
        assert law_of(load_spec(name)) is fitted_law()


def test_the_cnn_law_never_sees_a_transformer_series():
    table = published()
    assert {p.series for p in series_points(table)} == set(table.in_family("cnn"))
    transformer = series_points(table, series=["deit"])
    assert [p.name for p in transformer] == ["deit_small_patch16_224", "deit_base_patch16_224", "deit_base_patch16_384"]


# ---------------------------------------------------------------- the transformer law


def _law() -> FamilyLaw:
    law = law_of(parse_spec(tiny_vit()))
    assert isinstance(law, FamilyLaw)
    return law


def test_the_law_is_fitted_within_the_reference_protocol():
    law = _law()
    assert law.series == ("deit", "swin", "swin_torchvision")  # no distilled, no ImageNet-21k series
    assert {p.series for p in law.points} == set(law.series)
    fresh = fit(list(law.points))
    for mine, theirs in zip(law.law.terms().values(), fresh.terms().values()):
        assert mine.floor == pytest.approx(theirs.floor, abs=1e-6)
        assert mine.exponent == pytest.approx(theirs.exponent, abs=1e-6)
    pre = parse_spec(tiny_vit("{crops: 1, resolution: 32, pretraining: ImageNet-21k, distillation: none}"))
    assert law_of(pre).series == ("swin_in21k", "vit_in21k")


def test_held_out_errors_come_from_fits_without_the_series():
    law = _law()
    points = list(law.points)
    for series in law.series:
        names = {p.name for p in points if p.series == series}
        rest = fit([p for p in points if p.name not in names])  # every row of its networks leaves too
        expected = [rest.predict(p.base_top1, p.depth, p.width, p.resolution) - p.top1 for p in points if p.series == series]
        held = [r.error for r in law.held if r.series == series]
        assert held == pytest.approx(expected, abs=1e-6)


def test_estimate_by_hand_reads_the_built_multipliers():
    spec = parse_spec(tiny_vit())
    law = _law()
    # depth x1.5: 2 -> 3 blocks; width x2: 64 -> 128 (heads of 16); 48 px: x1.5
    d, w, r = 3 / 2, 128 / 64, 48 / 32
    ratio = 1.0
    for term, m in zip(law.law.terms().values(), (d, w, r)):
        ratio *= term.floor + (1 - term.floor) * m ** -term.exponent
    e = estimate_accuracy(spec, 1.5, 2.0, 48)
    assert e.top1 == pytest.approx(100 - (100 - 72.2) * ratio, abs=1e-9)
    # width x1.1 of 64 rounds to 64 (a multiple of lcm(8, 16)): the law reads width x1, not x1.1
    assert estimate_accuracy(spec, 1.0, 1.1).top1 == pytest.approx(estimate_accuracy(spec).top1)
    assert "embedding width 64 -> 64 in whole heads" in estimate_accuracy(spec, 1.0, 1.1).detail


def test_the_interval_spans_the_largest_held_out_error_and_claims_no_coverage():
    spec = parse_spec(tiny_vit())
    law = _law()
    largest = max(abs(r.error) for r in law.held)
    inside = estimate_accuracy(spec, 1.0, 2.0, 32)  # width x2 lies in the fitted range (DeiT x1-x4)
    assert not inside.extrapolated
    assert inside.high - inside.top1 == pytest.approx(largest)
    far = estimate_accuracy(spec, 1.0, 8.0, 32)
    assert far.extrapolated and far.high - far.top1 > largest
    for series in law.series:
        assert series in inside.detail
    assert "leave-one-series-out errors" in inside.detail and "80%" not in inside.detail
    assert "none is claimed" in inside.detail


def test_the_shipped_transformer_cache_matches_a_fresh_fit():
    import json

    from scalelab.scaling.accuracy.cache import cache_path, published_digest
    from scalelab.scaling.accuracy.transformer_law import _compute, _groups

    stored = json.loads(cache_path("transformer_law").read_text())
    assert stored["published_sha256"] == published_digest()
    for key, names in _groups("transformer").items():
        fresh = _compute(series_points(published(), series=names))
        assert stored["result"][key]["raw"] == pytest.approx(fresh["raw"], abs=1e-9)
        assert stored["result"][key]["q"] == pytest.approx(fresh["q"], abs=1e-9)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("protocol, message", [
    ("{crops: 1, resolution: 32, pretraining: none, distillation: RegNetY-16GF}", "holds 1: deit_distilled; at least 2"),
    ("{crops: 1, resolution: 32, pretraining: JFT-300M, distillation: none}", "holds none; at least 2"),
])
def test_too_few_series_under_the_protocol_is_refused(protocol, message):
    with pytest.raises(ScalelabError, match=message) as info:
        estimate_accuracy(parse_spec(tiny_vit(protocol)), 1.0, 2.0)
    assert "The CNN law does not stand in" in str(info.value)


def test_a_reference_without_protocol_and_a_hybrid_are_refused():
    bare = tiny_vit().replace(f", protocol: {NO_EXTRA}", "")
    with pytest.raises(ScalelabError, match="must state its protocol"):
        estimate_accuracy(parse_spec(bare), 1.0, 2.0)
    hybrid = tiny_vit(first="\n  - {kind: conv, out: 3, kernel: 3, padding: 1}")
    with pytest.raises(ScalelabError, match="hybrid network .* neither the CNN nor the transformer law"):
        estimate_accuracy(parse_spec(hybrid), 1.0, 2.0)


def test_cli_refusal_is_one_message_exit_2(tmp_path):
    path = tmp_path / "distilled.yaml"
    path.write_text(tiny_vit("{crops: 1, resolution: 32, pretraining: none, distillation: RegNetY-16GF}"))
    result = CliRunner().invoke(app, ["accuracy", str(path), "--width", "2"])
    assert result.exit_code == 2
    assert "no estimate for scalings of tiny_vit" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- the README's figures


def said(text: str) -> bool:
    """Whether the README says ``text`` (whitespace, line breaks included, as one space)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return " ".join(text.split()) in " ".join(readme.split())


def _errors(law: FamilyLaw, series: str) -> str:
    return ", ".join(f"{r.error:+.2f}" for r in law.held if r.series == series)


def test_the_readme_states_the_transformer_laws_errors_and_estimates():
    deit = load_spec("deit_tiny_patch16_224")
    law = law_of(deit)
    assert isinstance(law, FamilyLaw)
    for series, label in (("deit", "DeiT-S, B, B at 384 (from DeiT-Ti)"), ("swin", "Swin-S, B, B at 384 (paper)"),
                          ("swin_torchvision", "Swin-S, B (torchvision weights)")):
        assert said(f"| {label} | {_errors(law, series)} |"), series
    assert said(f"spans at least ±{law.largest:.2f} points")
    small = estimate_accuracy(deit, 1.0, 2.0)
    row = find_published("deit_tiny_patch16_224", 1.0, 2.0, 224, base_top1=72.2)
    assert said(f"DeiT-Ti at width x2 estimates {small.text()} (DeiT-S: {row.top1:g})")
    pre = law_of(parse_spec(tiny_vit("{crops: 1, resolution: 32, pretraining: ImageNet-21k, distillation: none}")))
    assert said(f"the errors are {_errors(pre, 'swin_in21k')} (Swin) and {_errors(pre, 'vit_in21k')} (ViT)")
    large = estimate_accuracy(load_spec("vit_b_16"), 2.0, 1024 / 768)
    measured = next(r.top1 for r in published().rows if r.name == "vit_l_16")
    assert said(f"estimates {large.top1:.2f}, where torchvision's ViT-L/16 measures {measured:g}")


@pytest.mark.slow  # the validation refits the CNN law per held-out network (20 s)
def test_validate_reports_each_transformer_laws_held_out_errors():
    import json

    result = CliRunner().invoke(app, ["accuracy", "--validate", "-f", "json"])
    assert result.exit_code == 0, result.output
    laws = {tuple(t["series"]): t for t in json.loads(result.stdout)["transformer"]}
    assert set(laws) == {("deit", "swin", "swin_torchvision"), ("swin_in21k", "vit_in21k")}
    mine = _law()
    plain = laws["deit", "swin", "swin_torchvision"]
    assert plain["protocol"] == "1 crop, no pre-training, no distillation"
    assert [h["error"] for h in plain["holdouts"]] == pytest.approx([r.error for r in mine.held])
    assert plain["largest_abs_error"] == pytest.approx(max(abs(r.error) for r in mine.held))
    text = CliRunner().invoke(app, ["accuracy", "--validate"]).output
    assert f"leave-one-series-out errors, predicted minus published: {mine.errors()}" in " ".join(text.split())
    assert "no coverage claimed" in text
