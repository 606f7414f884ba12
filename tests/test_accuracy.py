"""Accuracy estimators: the published table, the scaling law (fit and leave-one-out validation),
the synflow proxy, and the `scalelab accuracy` command."""

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.errors import ScalelabError
from scalelab.analysis.costs import analyze
from scalelab.graph.network import resolve
from scalelab.scaling.accuracy import estimate_accuracy, repeated_blocks
from scalelab.scaling.accuracy.published import find_published, published
from scalelab.scaling.accuracy.scaling_law import Point, ScalingLaw, Term, fit, leave_one_out
from scalelab.scaling.compound import scale_spec
from scalelab.spec import load_spec, parse_spec

B0_MACS = 385_814_752  # torchvision efficientnet_b0 _ops (reference README, section 1)

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


def _repeats_by_hand(depth: float, repeats=(1, 2, 2, 3, 3, 4, 1)) -> int:
    """EfficientNet's ceil(depth x repeats) per stage of B0 (reference README §3), in exact decimals
    so that 1.1 x 3 does not round up through float noise."""
    return sum(math.ceil(Fraction(str(depth)) * r) for r in repeats)


def test_published_blocks_are_the_rounded_up_repeats():
    table = published()
    blocks = {(r.name, r.series): r.blocks for r in table.rows}
    coefficients = {0: 1.0, 1: 1.1, 2: 1.2, 3: 1.4, 4: 1.8, 5: 2.2, 6: 2.6, 7: 3.1}
    for series in ("efficientnet", "efficientnet_torchvision"):
        assert [blocks[(f"efficientnet_b{i}", series)] for i in range(8)] == [_repeats_by_hand(d) for d in coefficients.values()]
    assert _repeats_by_hand(1.1) == 23 and _repeats_by_hand(3.1) == 55
    # ResNets: basic blocks 2-2-2-2 and 3-4-6-3; bottlenecks 3-4-6-3, 3-4-23-3, 3-8-36-3 (He et al. 2016, Table 1)
    assert [blocks[(n, s)] for n, s in (("resnet18", "resnet_basic_depth"), ("resnet34", "resnet_basic_depth"))] == [8, 16]
    assert [blocks[(f"resnet{d}", "resnet_bottleneck_depth")] for d in (50, 101, 152)] == [16, 33, 50]


def test_repeated_blocks_match_the_scaled_network():
    # counted independently: the stage blocks of the resolved scaled network
    b0 = load_spec("efficientnet_b0")
    for depth in (1.0, 1.1, 1.45, 2.2):
        network = resolve(scale_spec(b0, depth, 1.0, 64))
        stage_blocks = sum(1 for name in network.blocks if name.rsplit(".", 1)[-1].isdigit())
        assert repeated_blocks(b0, depth) == (16, stage_blocks) == (16, _repeats_by_hand(depth))


def test_terms_and_prediction_by_hand():
    assert Term(0.5, 1.0).factor(2.0) == pytest.approx(0.75)       # 0.5 + 0.5 / 2
    assert Term(0.5, 1.0).factor(0.5) == pytest.approx(1.5)        # shrinking raises the error
    assert Term(0.8, 2.0).factor(1.0) == pytest.approx(1.0)        # the base itself
    law = ScalingLaw(Term(0.9, 1.0), Term(0.7, 0.5), Term(0.8, 1.5), {})
    ratio = (0.9 + 0.1 / 2) * (0.7 + 0.3 / 4 ** 0.5) * (0.8 + 0.2 / 1.5 ** 1.5)
    assert law.predict(75.0, 2.0, 4.0, 1.5) == pytest.approx(100 - 25 * ratio)


def test_fit_recovers_a_known_law():
    truth = ScalingLaw(Term(0.85, 1.2), Term(0.7, 0.9), Term(0.8, 1.5), {})
    grid = [(d, 1, 1) for d in (1.5, 2, 3)] + [(1, w, 1) for w in (0.25, 0.5, 0.75, 1.4)] + \
           [(1, 1, r) for r in (0.6, 0.8, 1.3)] + [(1.2 ** p, 1.1 ** p, 1.15 ** p) for p in (1, 2, 4, 6)]
    points = [Point("s", str(i), 75.0, truth.predict(75.0, d, w, r), d, w, r) for i, (d, w, r) in enumerate(grid)]
    law = fit(points)
    found = [(t.floor, t.exponent) for t in law.terms().values()]
    assert found == [pytest.approx((0.85, 1.2), abs=0.02), pytest.approx((0.7, 0.9), abs=0.02), pytest.approx((0.8, 1.5), abs=0.02)]


def test_leave_one_out_meets_the_target_on_the_efficientnet_series():
    held = [h for h in leave_one_out() if h.series == "efficientnet"]
    assert [h.name for h in held] == [f"efficientnet_b{i}" for i in range(1, 8)]
    errors = [abs(h.predicted - h.actual) for h in held]
    assert sum(errors) / len(errors) <= 1.0
    assert max(errors) <= 1.0
    # every published CNN series is held out, point by point (the transformer series feed a law of their own)
    assert {h.series for h in leave_one_out()} == set(published().in_family("cnn"))


def test_scaling_law_estimates():
    b0 = load_spec("efficientnet_b0")
    same = estimate_accuracy(b0)
    assert same.top1 == pytest.approx(77.692) and not same.extrapolated
    b3 = estimate_accuracy(b0, 1.4, 1.2, 300)
    assert b3.method == "scaling-law" and "77.692" in b3.detail and "16 -> 26 blocks" in b3.detail
    assert 80.5 < b3.top1 < 83.5  # torchvision's B3: 82.008
    # depth x1.01 and x1.1 build the same network (repeats round up), so they estimate the same
    assert estimate_accuracy(b0, 1.01, 1.0, 240).top1 == estimate_accuracy(b0, 1.1, 1.0, 240).top1
    smaller = estimate_accuracy(b0, 1.0, 0.5, 160)
    assert smaller.top1 < same.top1 < b3.top1


@pytest.mark.parametrize("resolution", [1.2, 300.0, 0, -224, True, "300"])
def test_resolution_is_pixels_only(resolution):
    with pytest.raises(ScalelabError, match="resolution is the input size in pixels, a positive integer"):
        estimate_accuracy(load_spec("efficientnet_b0"), 1.0, 1.0, resolution)


def _macs(spec, depth, width, pixels):
    return analyze(scale_spec(spec, depth, width, pixels)).total.macs


@pytest.mark.parametrize("phi", [1, 3])
def test_balanced_scaling_beats_single_dimension_scaling_at_equal_macs(phi):
    """Tan & Le 2019 §3.2 / Fig. 3: at the same cost, compound scaling beats scaling one dimension.
    Each single-dimension scaling here gets at least the balanced scaling's MACs, and still loses."""
    b0 = load_spec("efficientnet_b0")
    d, w, r = 1.2 ** phi, 1.1 ** phi, 1.15 ** phi
    pixels = round(224 * r)
    balanced_macs = _macs(b0, d, w, pixels)
    balanced = estimate_accuracy(b0, d, w, pixels).top1
    for dimension in ("depth", "width", "resolution"):
        m = 1.0
        while True:  # grow the one dimension until it costs at least as much
            m *= 1.01
            args = {"depth": (m, 1.0, 224), "width": (1.0, m, 224), "resolution": (1.0, 1.0, round(224 * m))}[dimension]
            if _macs(b0, *args) >= balanced_macs:
                break
        single = estimate_accuracy(b0, *args).top1
        assert single < balanced, (dimension, m, single, balanced)


def test_thin_high_resolution_scaling_is_penalised():
    """The network a MACs-only law let a 400 MFLOPs direct search pick: B0 at depth x1.19, width
    x0.31 and 506 px, about B0's MACs. Width x0.31 throws most channels away: MobileNet v1 loses 6.9
    points at width x0.5 and 20 at x0.25 (Howard et al. 2017, Table 6)."""
    b0 = load_spec("efficientnet_b0")
    assert abs(_macs(b0, 1.19, 0.31, 506) / B0_MACS - 1) < 0.05  # the same cost as B0
    thin = estimate_accuracy(b0, 1.19, 0.31, 506)
    assert thin.top1 < 77.692 - 4
    # width x0.31 alone: its error ratio lies between MobileNet v1's at x0.5 and at x0.25
    narrow = estimate_accuracy(b0, 1.0, 0.31, 224).top1
    ratio = (100 - narrow) / (100 - 77.692)
    assert (100 - 63.7) / (100 - 70.6) < ratio < (100 - 50.6) / (100 - 70.6)


def test_direct_search_at_400_mflops_keeps_a_sane_width():
    """A sanity bound, not a claim of optimality: no published network under 400 MFLOPs gets its
    accuracy from dropping below ~0.6 of its width at a high resolution (MobileNet v1 at x0.5 already
    loses 6.9 points, EfficientNet-B0 is the paper's best at this budget with width x1.0), so a search
    whose estimator penalises lopsided scaling must not pick such a network."""
    from scalelab.scaling.budget import parse_budgets
    from scalelab.scaling.candidates import Evaluator
    from scalelab.scaling.search import SearchSettings, run_search

    b0 = load_spec("efficientnet_b0")
    budgets = parse_budgets("400MFLOPs")
    result = run_search(Evaluator(b0, budgets), SearchSettings(tuple(budgets), method="direct", trials=60, seed=0),
                        storage="memory")
    winner = result.winner.candidate
    assert winner.macs <= 400_000_000
    assert winner.width >= 0.6, winner


def test_extrapolation_is_flagged_per_dimension_with_how_far():
    b0 = load_spec("efficientnet_b0")
    far = estimate_accuracy(b0, 5.0, 3.0, 900)
    assert far.extrapolated
    # fitted ranges: depth up to B7's 55 / 16 blocks, width up to B7's x2, resolution up to 600 / 224
    assert f"depth x5 is {5 / (55 / 16):.2f}x above the largest fitted (x3.44)" in far.detail   # 80 blocks / 16
    assert "width x3 is 1.50x above the largest fitted (x2)" in far.detail
    assert f"resolution x{900 / 224:.3g} is {900 / 600:.2f}x above the largest fitted (x2.68)" in far.detail
    shallow = estimate_accuracy(b0, 0.5, 1.0, 100)
    # ceil(0.5 x (1, 2, 2, 3, 3, 4, 1)) = 10 blocks; the smallest fitted resolution is MobileNet's 128 / 224
    assert "depth x0.625 is 1.60x below the smallest fitted (x1)" in shallow.detail
    assert f"resolution x{100 / 224:.3g} is {(128 / 224) / (100 / 224):.2f}x below the smallest fitted (x0.571)" in shallow.detail
    assert not estimate_accuracy(b0, 2.0, 1.5, 400).extrapolated


def test_an_estimate_analyses_and_builds_nothing(monkeypatch):
    # a search calls the estimator on every trial: it reads the base's repeats and the fitted law only
    import scalelab.analysis.costs as costs
    import scalelab.build as build
    import scalelab.graph.network as network
    import scalelab.scaling.compound as compound

    def forbidden(*args, **kwargs):
        raise AssertionError("the estimator analysed, scaled or built a network")

    b0 = load_spec("efficientnet_b0")
    before = estimate_accuracy(b0, 1.3, 0.9, 250)
    for module, name in ((costs, "analyze"), (build, "build_module"), (compound, "scale_spec"), (network, "resolve")):
        monkeypatch.setattr(module, name, forbidden)
    assert estimate_accuracy(b0, 1.3, 0.9, 250) == before


def test_base_without_reference_is_a_clear_error():
    spec = parse_spec("name: nameless\ninput: {resolution: 32}\nblocks: [{kind: conv, out: 8}]")
    with pytest.raises(ScalelabError, match="spec 'nameless' has no reference accuracy"):
        estimate_accuracy(spec, 2.0, 1.0, None)
    with pytest.raises(ScalelabError, match="unknown accuracy method 'scaling_law'.*did you mean 'scaling-law'"):
        estimate_accuracy(spec, method="scaling_law")


def test_analysis_path_stays_free_of_torch(run_fresh):
    _, heavy = run_fresh("from scalelab.spec import load_spec\nfrom scalelab.scaling.accuracy import estimate_accuracy\n"
                         "from scalelab.scaling.efficientnet import efficientnet\n"
                         "estimate_accuracy(load_spec('efficientnet_b0'), 1.4, 1.2, 300)\nefficientnet('b3')\n")
    assert heavy == []


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
    table = runner.invoke(app, ["accuracy"], env={"COLUMNS": "200"})  # wide enough for each source on one line
    assert "Tan & Le 2019, Table 2" in table.output and "Howard et al. 2017" in table.output


def test_cli_validate_reports_the_efficientnet_error():
    result = runner.invoke(app, ["accuracy", "--validate"])
    assert result.exit_code == 0, result.output
    assert "EfficientNet series (paper): mean" in result.output and "leave-one-out" in result.output
    summary = json.loads(runner.invoke(app, ["accuracy", "--validate", "-f", "json"]).output)
    assert summary["series"]["efficientnet"]["max_abs_error"] <= 1.0
    # 80% intervals: near 80% of held-out networks covered, and not by covering everything
    iv = summary["intervals"]
    assert 0.75 <= iv["coverage_series_held_out"] <= 0.92 and iv["held_out_networks"] == 24
    assert iv["mean_width_series_held_out"] < 6.0 and "80% prediction intervals" in result.output


def test_cli_estimate_says_how():
    result = runner.invoke(app, ["accuracy", "efficientnet_b0", "--depth", "1.4", "--width", "1.2", "--resolution", "300"])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "how: scaling-law estimate" in result.output
    low, high = (float(v) for v in result.output.split("[", 1)[1].split("]", 1)[0].split(","))
    estimate = json.loads(runner.invoke(app, ["accuracy", "efficientnet_b0", "--depth", "1.4", "--width", "1.2",
                                              "--resolution", "300", "-f", "json"]).output)
    assert (estimate["low"], estimate["high"]) == pytest.approx((low, high), abs=0.006)


@pytest.mark.parametrize("args, message", [
    (["accuracy", "efficientnet_b0", "--depth", "1.3", "-m", "published"], "no published accuracy"),
    (["accuracy", "efficientnet_b0", "-m", "magic"], "'magic' is not one of 'published', 'scaling-law', 'proxy'"),
    (["accuracy", "efficientnet_b0", "--width", "0"], "must be greater than 0"),
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


def test_intervals_cover_a_held_out_series():
    """The EfficientNet networks (paper and torchvision rows) left out of everything, law and
    interval calibration alike: their 80% intervals must cover most of them, and not by being huge."""
    from scalelab.scaling.accuracy.intervals import calibrate
    from scalelab.scaling.accuracy.published import published
    from scalelab.scaling.accuracy.scaling_law import series_points

    points = series_points(published())
    held = [p for p in points if p.series.startswith("efficientnet")]
    rest = [p for p in points if p.name not in {p.name for p in held}]
    cal = calibrate(rest)
    inside, widths = 0, []
    for p in held:
        estimate = cal.law.predict(p.base_top1, p.depth, p.width, p.resolution)
        low, high = cal.interval(estimate, p.depth, p.width, p.resolution)
        inside += low <= p.top1 <= high
        widths.append(high - low)
    assert inside / len(held) >= 0.7
    assert max(widths) < 12.0


def test_estimates_carry_an_interval_that_widens_away_from_the_data():
    from scalelab.scaling.accuracy import estimate_accuracy

    b0 = load_spec("efficientnet_b0")
    near = estimate_accuracy(b0, 1.2, 1.1, 240)
    far = estimate_accuracy(b0, 4.0, 3.0, 672)
    for e in (near, far):
        assert e.low < e.top1 < e.high
    assert far.high - far.low > near.high - near.low
    assert f"[{near.low:.2f}, {near.high:.2f}]" in near.text() and "80% prediction interval" in near.detail


def test_the_shipped_caches_match_a_fresh_fit():
    """The fitted law and the interval calibration are stored beside published.yaml; recomputed from
    the table, they come out the same."""
    from scalelab.scaling.accuracy.cache import cache_path, published_digest
    from scalelab.scaling.accuracy.intervals import calibrate, calibration
    from scalelab.scaling.accuracy.published import published
    from scalelab.scaling.accuracy.scaling_law import fit, fitted_law, series_points

    for name in ("scaling_law", "intervals"):
        assert json.loads(cache_path(name).read_text())["published_sha256"] == published_digest()
    points = series_points(published())
    fresh = fit(points)
    for (_, a), (_, b) in zip(fresh.terms().items(), fitted_law().terms().items()):
        assert (a.floor, a.exponent) == pytest.approx((b.floor, b.exponent), abs=1e-6)
    again = calibrate(points, fresh)
    assert (again.q, again.scale) == pytest.approx((calibration().q, calibration().scale), abs=1e-6)


# ---------------------------------------------------------------- protocols


def test_every_zoo_reference_states_its_protocol():
    from scalelab.spec import zoo_names

    for name in zoo_names():
        ref = load_spec(name).reference
        if ref is None:
            continue
        assert ref.protocol is not None, name
        # torchvision evaluates one centre crop of the network's input size, trained on ImageNet-1k alone
        if ref.source.startswith("torchvision"):
            p = ref.protocol
            assert (p.crops, p.resolution, p.pretraining, p.distillation) == (
                1, load_spec(name).input.resolution[0], "none", "none"), name
    # the papers' ten-crop figures say so in their sources, and so does their protocol
    assert load_spec("plain34").reference.protocol.crops == 10 and "10-crop" in load_spec("plain34").reference.source
    assert load_spec("alexnet").reference.protocol.crops == 10


def test_a_bad_protocol_is_refused_with_its_path(tmp_path):
    from cli_helpers import assert_refused, invoke

    for bad, rule in (("crops: 0", "greater than or equal to 1"), ("crops: 10.0", "whole number"),
                      ("pretraining: ''", "at least 1 character")):
        protocol = ", ".join([bad] + [f for f in ("crops: 1", "resolution: 224", "pretraining: none", "distillation: none")
                                      if f.split(":")[0] != bad.split(":")[0]])
        path = tmp_path / "net.yaml"
        path.write_text("name: net\ninput: {resolution: 32}\n"
                        f"reference: {{top1: 50.0, source: a test, protocol: {{{protocol}}}}}\n"
                        "blocks: [{kind: conv, out: 8}]\n")
        assert_refused(invoke("analyze", path), "net.yaml:3", "reference.protocol", rule)
    path.write_text("name: net\ninput: {resolution: 32}\nreference: {top1: 50.0, source: a test, protocol: {crops: 1}}\n"
                    "blocks: [{kind: conv, out: 8}]\n")
    assert_refused(invoke("analyze", path), "reference.protocol", "resolution")


def test_estimates_say_the_protocol_they_inherit():
    plain = load_spec("plain34")
    detail = estimate_accuracy(plain, 1.0, 1.0, 192).detail
    assert detail.endswith("measured as the base's reference is: ImageNet-1k, 10 crops at 192 px, no pre-training, "
                           "no distillation")
    b1 = estimate_accuracy(load_spec("efficientnet_b0"), 1.1, 1.0, 240, method="published")
    assert b1.top1 == 78.642 and "ImageNet-1k, 1 crop at 240 px" in b1.detail


def test_published_figures_measured_otherwise_are_refused():
    from pathlib import Path

    spec = (Path(__file__).resolve().parents[1] / "specs" / "efficientnet_b0.yaml").read_text()
    ten = spec.replace("protocol: {crops: 1,", "protocol: {crops: 10,")
    assert ten != spec
    b0_ten = parse_spec(ten)
    with pytest.raises(ScalelabError, match=r"not measured like efficientnet_b0's reference \(ImageNet-1k, 10 crops"):
        estimate_accuracy(b0_ten, 1.1, 1.0, 240, method="published")


def test_crops_gain_counts_from_the_reference_crops():
    from scalelab.scaling.accuracy.ensemble_gain import estimate_top1

    # a ten-crop figure on ten crops is itself; two models on ten crops gain what two models gain on one
    assert estimate_top1(71.46, 1, 10, base_crops=10).top1 == pytest.approx(71.46)
    assert estimate_top1(71.46, 2, 10, base_crops=10).top1 == pytest.approx(estimate_top1(71.46, 2, 1).top1)
    one = estimate_top1(71.46, 1, 1, base_crops=10)  # one crop of a ten-crop figure loses what ten crops gained
    assert 100 - one.top1 == pytest.approx((100 - 71.46) ** 2 / (100 - estimate_top1(71.46, 1, 10).top1))
    assert one.low <= one.top1 <= one.high


def test_cli_lists_each_rows_protocol():
    rows = json.loads(runner.invoke(app, ["accuracy", "--format", "json"]).output)
    ten = [r for r in rows if r["protocol"]["crops"] == 10]
    assert [(r["name"], r["top1"]) for r in ten] == [("resnet34", 75.48)]  # He et al. 2016 Table 3: 24.52% error
    assert all(r["protocol"]["resolution"] == r["resolution"] for r in rows)
    table = " ".join(runner.invoke(app, ["accuracy", "-f", "markdown"]).output.split())
    assert "| 224 | 10 crops | He et al. 2016 Table 3" in table and "| 224 | 1 crop | Tan & Le 2019, Table 2 |" in table


def test_the_no_reference_hint_names_each_commands_option():
    spec = parse_spec("name: nameless\ninput: {resolution: 32}\nblocks: [{kind: conv, out: 8}]")
    with pytest.raises(ScalelabError) as info:
        estimate_accuracy(spec)
    assert "`scalelab scale --accuracy proxy`, `scalelab accuracy -m proxy`" in str(info.value)


_VALUES = {  # YAML text of a value, and whether the field takes it
    "crops": [("1", True), ("10", True), ("10000", True), ("0", False), ("-3", False), ("10001", False),
              ("10.0", False), ("true", False), ("'10'", False), ("null", False)],
    "resolution": [("224", True), ("1", True), ("0", False), ("224.5", False), ("[224, 224]", False), ("''", False)],
    "pretraining": [("none", True), ("ImageNet-21k", True), ("JFT-300M", True), ("''", False), ("' '", False),
                    ("'" + "x" * 101 + "'", False), ("[a]", False)],
    "distillation": [("none", True), ("RegNetY-16GF", True), ("''", False), ("{teacher: x}", False)],
}


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_protocol_loads_or_is_refused_naming_its_field(data):
    chosen = {field: data.draw(st.sampled_from(values), label=field) for field, values in _VALUES.items()}
    dropped = data.draw(st.sets(st.sampled_from(sorted(_VALUES)), max_size=1), label="left out")
    body = ", ".join(f"{f}: {v}" for f, (v, _) in chosen.items() if f not in dropped)
    text = (f"name: net\ninput: {{resolution: 32}}\nreference: {{top1: 50.0, source: a test, protocol: {{{body}}}}}\n"
            "blocks: [{kind: conv, out: 8}]\n")
    bad = sorted(f for f, (_, ok) in chosen.items() if not ok or f in dropped)
    if not bad:
        p = parse_spec(text).reference.protocol
        assert p.crops == int(chosen["crops"][0]) and p.describe().startswith("1 crop" if p.crops == 1 else f"{p.crops} crops")
        return
    with pytest.raises(ScalelabError) as info:
        parse_spec(text)
    assert any(f"reference.protocol.{f}" in str(info.value) or (f in dropped and f in str(info.value)) for f in bad), \
        str(info.value)
