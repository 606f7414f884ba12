"""Accuracy estimators: the published table, the scaling law (fit and leave-one-out validation),
the synflow proxy, and the `scalelab accuracy` command."""

import json
import math
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy import estimate_accuracy
from scalelab.scaling.accuracy.published import find_published, published
from scalelab.scaling.accuracy.scaling_law import Point, ScalingLaw, fit, imbalance, leave_one_out
from scalelab.spec import load_spec, parse_spec

runner = CliRunner()


# ---------------------------------------------------------------- published


def test_every_row_has_a_source_and_every_series_its_base():
    table = published()
    assert all(row.source.strip() for row in table.rows)
    for name in table.series:
        assert table.base_of(name).series == name


def test_published_figures_match_the_papers_and_torchvision():
    table = published()
    top1 = {(r.name, r.series): r.top1 for r in table.rows}
    # Tan & Le 2019 Table 2
    assert [top1[(f"efficientnet_b{i}", "efficientnet")] for i in range(8)] == [77.1, 79.1, 80.1, 81.6, 82.9, 83.6, 84.0, 84.3]
    # Howard et al. 2017 Tables 6 and 7
    assert [top1[(n, "mobilenet_v1_width")] for n in ("mobilenet_v1", "mobilenet_v1_0.75", "mobilenet_v1_0.5", "mobilenet_v1_0.25")] == [70.6, 68.4, 63.7, 50.6]
    assert [top1[(n, "mobilenet_v1_resolution")] for n in ("mobilenet_v1", "mobilenet_v1_192", "mobilenet_v1_160", "mobilenet_v1_128")] == [70.6, 69.1, 67.2, 64.4]
    # torchvision V1 weights
    assert [top1[(f"resnet{d}", s)] for d, s in ((18, "resnet_basic_depth"), (34, "resnet_basic_depth"), (50, "resnet_bottleneck_depth"),
                                                  (101, "resnet_bottleneck_depth"), (152, "resnet_bottleneck_depth"))] == [69.758, 73.314, 76.13, 77.374, 78.312]
    assert {n: top1[(n, None)] for n in ("alexnet", "vgg16", "googlenet")} == {"alexnet": 56.522, "vgg16": 71.592, "googlenet": 69.778}


def test_published_lookup_prefers_the_series_of_the_base_accuracy():
    assert find_published("efficientnet_b0", 1.4, 1.2, 300, base_top1=77.692).top1 == 82.008  # torchvision
    assert find_published("efficientnet_b0", 1.4, 1.2, 300, base_top1=77.1).top1 == 81.6      # paper
    assert find_published("efficientnet_b0", 1.4, 1.2, 301) is None


def test_published_method():
    b0 = load_spec("efficientnet_b0")
    estimate = estimate_accuracy(b0, 1.2, 1.1, 288, method="published")
    assert (estimate.top1, estimate.method) == (80.608, "published")
    assert "EfficientNet_B2_Weights" in estimate.detail
    assert estimate_accuracy(load_spec("resnet50"), method="published").top1 == 76.13
    with pytest.raises(ScalelabError, match="no published accuracy for efficientnet_b0 at depth x1.3"):
        estimate_accuracy(b0, 1.3, 1.0, None, method="published")


# ---------------------------------------------------------------- scaling law


def test_imbalance_by_hand():
    assert imbalance(1.2, 1.1, 1.15) == pytest.approx(0, abs=1e-12)      # on the compound ray
    assert imbalance(1.2 ** 3, 1.1 ** 3, 1.15 ** 3) == pytest.approx(0, abs=1e-12)
    a, b, g = math.log(1.2), math.log(1.1), math.log(1.15)
    # width x2 alone: |l|^2 - (l . u)^2 with l = (0, ln 2, 0)
    assert imbalance(1, 2, 1) == pytest.approx(math.log(2) ** 2 * (1 - b * b / (a * a + b * b + g * g)))


def test_fit_recovers_a_known_law():
    truth = ScalingLaw(0.5, 0.3, 0.2, {})
    grid = [(m, d, w, r) for m in (0.1, 0.5, 2, 8, 30) for d, w, r in ((1, 1, 1), (2, 1, 1), (1, 1.5, 1), (1.3, 1.1, 1.2))]
    points = [Point("s", str(i), 75.0, truth.predict(75.0, m, d, w, r), m, d, w, r) for i, (m, d, w, r) in enumerate(grid)]
    law = fit(points)
    assert (law.saturation, law.exponent, law.balance_penalty) == pytest.approx((0.5, 0.3, 0.2), abs=2e-3)


def test_leave_one_out_meets_the_target_on_the_efficientnet_series():
    held = [h for h in leave_one_out() if h.series == "efficientnet"]
    assert [h.name for h in held] == [f"efficientnet_b{i}" for i in range(1, 8)]
    errors = [abs(h.predicted - h.actual) for h in held]
    assert sum(errors) / len(errors) <= 1.0
    assert max(errors) <= 1.0


def test_scaling_law_estimates():
    b0 = load_spec("efficientnet_b0")
    same = estimate_accuracy(b0)
    assert same.top1 == pytest.approx(77.692) and not same.extrapolated
    b3 = estimate_accuracy(b0, 1.4, 1.2, 300)
    assert b3.method == "scaling-law" and "77.692" in b3.detail and "MACs x4.74" in b3.detail
    assert 80.5 < b3.top1 < 83.5  # torchvision's B3: 82.008
    # the resolution may be a multiplier as well as pixels; passing MACs gives the same answer
    assert estimate_accuracy(b0, 1.4, 1.2, 300 / 224).top1 == pytest.approx(b3.top1)
    assert estimate_accuracy(b0, 1.4, 1.2, 300, macs=1_827_141_392).top1 == pytest.approx(b3.top1)
    smaller = estimate_accuracy(b0, 1.0, 0.5, 160)
    assert smaller.top1 < same.top1 < b3.top1


def test_extrapolation_is_flagged_with_how_far():
    b0 = load_spec("efficientnet_b0")
    far = estimate_accuracy(b0, 5.0, 3.0, 900, macs=385_814_752 * 700)
    assert far.extrapolated
    # the largest fitted MACs ratio: torchvision's B7 over its B0, 37,745,884,192 / 385,814,752
    assert f"MACs x700 is {700 / (37_745_884_192 / 385_814_752):.2f}x above the largest fitted (x97.8)" in far.detail
    assert "depth x5 is 1.60x above" in far.detail                        # 5 / 3.125
    assert not estimate_accuracy(b0, 2.0, 1.5, 400).extrapolated


def test_base_without_reference_is_a_clear_error():
    spec = parse_spec("name: nameless\ninput: {resolution: 32}\nblocks: [{kind: conv, out: 8}]")
    with pytest.raises(ScalelabError, match="spec 'nameless' has no reference accuracy"):
        estimate_accuracy(spec, 2.0, 1.0, None)
    with pytest.raises(ScalelabError, match="unknown accuracy method 'scaling_law'.*did you mean 'scaling-law'"):
        estimate_accuracy(spec, method="scaling_law")


def test_analysis_path_stays_free_of_torch():
    code = ("import sys\nfrom scalelab.spec import load_spec\nfrom scalelab.scaling.accuracy import estimate_accuracy\n"
            "from scalelab.scaling.efficientnet import efficientnet\n"
            "estimate_accuracy(load_spec('efficientnet_b0'), 1.4, 1.2, 300)\nefficientnet('b3')\n"
            "bad = [m for m in ('torch', 'torchvision', 'fvcore', 'optuna', 'matplotlib') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- proxy


def test_proxy_ranks_wider_above_narrower_and_is_deterministic():
    b0 = load_spec("efficientnet_b0")
    wide = estimate_accuracy(b0, 1.0, 2.0, None, method="proxy", resolution_px=32)
    narrow = estimate_accuracy(b0, 1.0, 0.25, None, method="proxy", resolution_px=32)
    assert wide.top1 is None and wide.method == "proxy" and "ranking only" in wide.detail
    assert wide.score > narrow.score
    again = estimate_accuracy(b0, 1.0, 2.0, None, method="proxy", resolution_px=32)
    assert again.score == wide.score


# ---------------------------------------------------------------- CLI


def test_cli_lists_published_rows():
    result = runner.invoke(app, ["accuracy", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {"name": "vgg16", "top1": 71.592}.items() <= next(r for r in rows if r["name"] == "vgg16").items()
    table = runner.invoke(app, ["accuracy"])
    assert "Tan & Le 2019, Table 2" in table.output and "Howard et al. 2017" in table.output


def test_cli_validate_reports_the_efficientnet_error():
    result = runner.invoke(app, ["accuracy", "--validate"])
    assert result.exit_code == 0, result.output
    assert "EfficientNet series (paper): mean" in result.output and "leave-one-out" in result.output
    summary = json.loads(runner.invoke(app, ["accuracy", "--validate", "-f", "json"]).output)
    assert summary["series"]["efficientnet"]["max_abs_error"] <= 1.0


def test_cli_estimate_says_how():
    result = runner.invoke(app, ["accuracy", "efficientnet_b0", "--depth", "1.4", "--width", "1.2", "--resolution", "300"])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "how: scaling-law estimate" in result.output


@pytest.mark.parametrize("args, message", [
    (["accuracy", "efficientnet_b0", "--depth", "1.3", "-m", "published"], "no published accuracy"),
    (["accuracy", "efficientnet_b0", "-m", "magic"], "unknown accuracy method 'magic'"),
    (["accuracy", "efficientnet_b0", "--width", "0"], "width multiplier must be positive"),
    (["accuracy", "no_such_spec"], "no such file or zoo spec"),
])
def test_cli_bad_input_exits_2_with_one_message(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_output_file_is_written_atomically(tmp_path):
    target = tmp_path / "published.md"
    result = runner.invoke(app, ["accuracy", "-f", "markdown", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("### published accuracy")
    missing = runner.invoke(app, ["accuracy", "-o", str(tmp_path / "nowhere" / "x.md")])
    assert missing.exit_code == 2 and not (tmp_path / "nowhere").exists()
