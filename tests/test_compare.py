"""`scalelab compare`: networks side by side in every format, ratios to the first, and the chart."""

import csv
import io
import json
from pathlib import Path

import pytest

from scalelab import analyze
from tests.cli_helpers import assert_refused, invoke

EXAMPLES = Path(__file__).resolve().parents[1] / "specs" / "examples"


def compared(*args) -> str:
    result = invoke("compare", *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_plain34_resnet34_resnet18_in_json_match_analyze_and_ratios():
    data = json.loads(compared("plain34", "resnet34", "resnet18", "-f", "json"))
    names = [n["name"] for n in data["networks"]]
    assert names == ["plain34", "resnet34", "resnet18"]
    for n in data["networks"]:
        total = analyze(n["name"]).total
        assert (n["params"], n["macs"], n["other_ops"]) == (total.params, total.macs, total.ops)
    plain, res34, res18 = data["networks"]
    # the residual version costs what the plain one does, plus the shortcut adds and projections
    assert res34["ratio_to_first"]["macs"] == pytest.approx(res34["macs"] / plain["macs"])
    # plain34's reference is the paper's 10-crop figure, resnet34's torchvision's single crop: the points
    # come from the paper's 10-crop figures of both (He et al. 2016: plain-34 28.54% error, Table 2;
    # ResNet-34 B, projection shortcuts as the zoo's, 24.52%, Table 3)
    assert res34["ratio_to_first"]["top1"] == pytest.approx((100 - 24.52) - (100 - 28.54), abs=1e-9)
    assert res34["top1_like_for_like"] and res34["top1"] == pytest.approx(73.314)  # the figure shown is its own
    assert res18["ratio_to_first"]["params"] == pytest.approx(11_689_512 / plain["params"])  # torchvision's count
    assert plain["top1_source"] and res18["top1"] == pytest.approx(69.758)
    # no 10-crop figure of the zoo's ResNet-18 (the paper's is option A): shown, but marked not like-for-like
    assert res18["ratio_to_first"]["top1"] == pytest.approx(69.758 - 71.46) and not res18["top1_like_for_like"]
    assert plain["top1_protocol"] == {"crops": 10, "resolution": 224, "pretraining": "none", "distillation": "none"}
    assert res18["top1_protocol"]["crops"] == 1
    unlike = [n for n in data["notes"] if n.startswith("Top-1 of resnet18 against plain34")]
    assert len(unlike) == 1 and "not like-for-like" in unlike[0]
    assert "plain34: ImageNet-1k, 10 crops at 224 px" in unlike[0] and "resnet18: ImageNet-1k, 1 crop at 224 px" in unlike[0]


def test_the_table_marks_each_top1_difference():
    text = " ".join(compared("plain34", "resnet34", "resnet18").split())
    assert "+4.02 (like-for-like, published)" in text and "-1.70 (not like-for-like)" in text
    # networks measured alike compare as they are, unmarked
    same = " ".join(compared("resnet18", "resnet34").split())
    assert f"{73.314 - 69.758:+.2f} │" in same and "like-for-like" not in same.split("Conditions")[0]


def test_a_reference_without_protocol_is_never_like_for_like(tmp_path):
    spec = (Path(__file__).resolve().parents[1] / "specs" / "resnet18.yaml").read_text()
    start = spec.index("reference:")
    end = spec.index("\n", spec.index("protocol:")) + 1
    bare = spec[:start] + "reference: {top1: 70.0, source: a test}\n" + spec[end:]
    (tmp_path / "bare.yaml").write_text(bare.replace("name: resnet18", "name: bare18"))
    data = json.loads(compared("resnet18", tmp_path / "bare.yaml", "-f", "json"))
    bare18 = data["networks"][1]
    assert bare18["top1_protocol"] is None and not bare18["top1_like_for_like"]
    assert bare18["ratio_to_first"]["top1"] == pytest.approx(70.0 - 69.758)
    assert any("bare18: ImageNet-1k, protocol not stated" in n for n in data["notes"])


def test_the_5x5_conv_against_its_bottleneck_version():
    data = json.loads(compared(EXAMPLES / "inception_5x5.yaml", EXAMPLES / "inception_5x5_bottleneck.yaml", "-f", "json"))
    direct, bottleneck = data["networks"]
    assert (direct["macs"], bottleneck["macs"]) == (120_422_400, 12_443_648)
    assert bottleneck["ratio_to_first"]["macs"] == pytest.approx(12_443_648 / 120_422_400)
    assert (direct["params"], bottleneck["params"]) == (5 * 5 * 192 * 32, 192 * 16 + 5 * 5 * 16 * 32)
    assert direct["top1"] is None and direct["ratio_to_first"]["top1"] is None


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "html"])
def test_every_format_carries_both_networks_and_the_ratios(fmt):
    text = compared("resnet18", "resnet34", "-f", fmt, "--device", "t4")
    assert "resnet18" in text and "resnet34" in text
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO("".join(l + "\n" for l in text.splitlines() if not l.startswith("#")))))
        assert int(rows[1]["macs"]) == analyze("resnet34").total.macs
        assert float(rows[1]["macs_ratio"]) == pytest.approx(analyze("resnet34").total.macs / analyze("resnet18").total.macs)
        assert float(rows[0]["predicted_ms_ratio"]) == 1.0
    else:
        assert "Ratios to resnet18" in text and "Pred. ms" in text
    if fmt == "html":
        assert text.lstrip().lower().startswith("<!doctype html")


def test_format_from_the_output_extension_and_the_chart(tmp_path):
    md = tmp_path / "cmp.md"
    assert invoke("compare", "resnet18", "resnet34", "-o", md).exit_code == 0
    assert md.read_text().startswith("# scalelab comparison of resnet18, resnet34")
    png = tmp_path / "cmp.png"
    result = invoke("compare", "plain34", "resnet34", "resnet18", "-o", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_data_are_the_ratios():
    from scalelab.analysis.figures import network_figures
    from scalelab.graph import resolve
    from scalelab.report.compare import comparison
    from scalelab.report.compare_plot import accuracy_points, bar_groups
    from scalelab.spec import load_spec

    c = comparison([network_figures(resolve(load_spec(n))) for n in ("resnet18", "resnet50")])
    headers, groups = bar_groups(c)
    assert headers[:2] == ["Params", "MACs"]
    assert groups["resnet18"][:2] == [1.0, 1.0]
    assert groups["resnet50"][1] == pytest.approx(4_089_184_256 / 1_814_073_344)  # torchvision's _ops x 1e9
    assert [p[0] for p in accuracy_points(c)] == ["resnet18", "resnet50"]


def test_bad_input_is_refused(tmp_path):
    assert_refused(invoke("compare", "resnet18"), "at least two")
    assert_refused(invoke("compare", "resnet18", "resnet99"), "resnet99")
    out = tmp_path / "x.weird"
    assert_refused(invoke("compare", "resnet18", "resnet34", "-o", out), "x.weird", "--format")
    assert not out.exists()
    assert_refused(invoke("compare", "resnet18", "resnet34", "--device", "nodevice"), "nodevice")


def test_ensemble_and_crop_variants_are_exact_multiples_with_estimated_top1():
    data = json.loads(compared("resnet18", "resnet50", "--ensembles", "1,3", "--crops", "1,10", "-f", "json"))
    variants = {(v["network"], v["models"], v["crops"]): v for v in data["variants"]}
    assert len(variants) == 2 * 2 * 2
    r18 = analyze("resnet18").total
    assert variants[("resnet18", 3, 10)]["macs"] == 3 * 10 * r18.macs
    assert variants[("resnet18", 3, 10)]["params"] == 3 * r18.params
    assert variants[("resnet18", 1, 10)]["params"] == r18.params
    single = variants[("resnet50", 1, 1)]
    assert single["top1"] == single["low"] == single["high"] == pytest.approx(76.13)
    three = variants[("resnet18", 3, 1)]
    assert three["low"] < three["top1"] < three["high"] and three["top1"] > 69.758
    # the notes' point, in numbers: one ResNet-50 beats three ResNet-18s at fewer MACs
    assert single["macs"] < three["macs"] and single["top1"] > three["high"]


def test_variants_in_markdown_and_the_frontier_chart(tmp_path):
    text = compared("resnet18", "resnet50", "--ensembles", "1,2", "-f", "markdown")
    assert "## Ensembles and crops" in text and "resnet18 x2" in text and "Pareto front" in text
    png = tmp_path / "variants.png"
    assert invoke("compare", "resnet18", "resnet50", "--ensembles", "1,2", "--crops", "1,10", "-o", png).exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert_refused(invoke("compare", "resnet18", "resnet50", "--ensembles", "1,x"), "--ensembles")
    assert_refused(invoke("compare", "resnet18", "resnet50", "--crops", "0"), "--crops")


def test_pareto_front_by_hand():
    from scalelab.scaling.ensembles import Variant, pareto

    def v(name, macs, top1):
        return Variant(name, 1, 1, macs, 1, top1, top1, top1, "by hand")

    points = [v("a", 1, 70.0), v("b", 2, 69.0), v("c", 3, 75.0), v("d", 3, 74.0), v("e", 5, 75.0)]
    assert [p.network for p in pareto(points)] == ["a", "c"]
