"""The budgeted search: objectives by hand, budgets honoured (checked by an independent analysis of
every feasible trial), the 400 MFLOPs search from EfficientNet-B0, the two-step method, resume."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from scalelab.analysis.costs import analyze
from scalelab.errors import ScalelabError
from scalelab.scaling.budget import parse_budgets
from scalelab.scaling.candidates import Evaluator
from scalelab.scaling.compound import depth_levels, nearest_level, scale_spec
from scalelab.scaling.objectives import Objective, Point, mnas_reward, pareto_front
from scalelab.scaling.search import SearchSettings, SearchSpace, run_search
from scalelab.spec import load_spec

from cli_helpers import invoke

B0_MACS = 385_814_752  # torchvision efficientnet_b0 _ops (reference README, section 1)


@pytest.fixture(scope="module")
def b0():
    return load_spec("efficientnet_b0")


def settings_for(budgets, **kw):
    return SearchSettings(tuple(budgets), **kw)


# -- objectives, by hand ------------------------------------------------------------------------


def test_mnas_reward_soft_and_hard():
    # MnasNet eq. 2: ACC x (cost/T)^w
    assert mnas_reward(80.0, [2.0], "soft") == pytest.approx(80.0 * 2.0 ** -0.07)  # 76.23
    assert mnas_reward(80.0, [0.5], "soft") == pytest.approx(80.0 * 0.5 ** -0.07)  # 83.96
    assert mnas_reward(80.0, [0.5], "hard") == pytest.approx(80.0)  # alpha = 0 within the budget
    assert mnas_reward(80.0, [2.0], "hard") == pytest.approx(40.0)  # beta = -1 above it
    assert mnas_reward(80.0, [0.5, 2.0], "hard") == pytest.approx(40.0)  # one factor per budget


def test_pareto_front_by_hand():
    pts = [Point(1, 70, "a"), Point(2, 69, "dominated"), Point(2, 75, "b"), Point(3, 75, "same acc, dearer"),
           Point(4, 80, "c"), Point(0.5, 60, "d")]
    assert [p.key for p in pareto_front(pts)] == ["d", "a", "b", "c"]


def test_each_objective_owns_its_directions_value_and_ranking():
    budgets = tuple(parse_budgets(["400MFLOPs", "5Mparams"]))
    c = {"macs": 800_000_000, "params": 4_000_000, "accuracy": 80.0}
    c = type("C", (), {**c, "metrics": {"macs": c["macs"], "params": c["params"]}})()
    reward = Objective("reward", budgets, "hard")
    assert reward.directions == ["maximize"] and reward.prunable and reward.constrained
    assert reward.value(c) == reward.score(c) == pytest.approx(40.0)  # twice the MACs budget: halved
    assert reward.key(c) == (reward.score(c), -800_000_000)
    assert not Objective("reward", budgets, "soft").constrained
    pareto = Objective("pareto", budgets, "soft")
    assert pareto.directions == ["maximize", "minimize"] and not pareto.prunable and pareto.constrained
    assert pareto.value(c) == (80.0, 800_000_000.0) and pareto.score(c) == 80.0
    assert pareto.key(c) == (80.0, -800_000_000)
    assert (reward.default_method, pareto.default_method) == ("two-step", "direct")
    with pytest.raises(ScalelabError, match="Pareto objective applies to the direct search"):
        pareto.check_method("two-step")


# -- the search --------------------------------------------------------------------------------


def test_every_feasible_trial_honours_its_budgets(b0):
    budgets = parse_budgets(["400MFLOPs", "6Mparams"])
    ev = Evaluator(b0, budgets)
    result = run_search(ev, settings_for(budgets, trials=40, extrapolation="allow"))
    feasible = [t for t in result.trials if t.feasible]
    assert len(feasible) >= 5
    for t in feasible:
        # re-derive the network from the trial's sampled parameters and price it afresh
        level = depth_levels(b0, 0.25, 4.0)[t.params["depth_level"]]
        w, r = t.params["width"], t.params["resolution"]
        size = int(round(224 * r))
        total = analyze(scale_spec(b0, level.multiplier, w, size)).total
        assert t.candidate.depth == level.blocks / 16
        assert total.macs == t.candidate.macs <= 400_000_000
        assert total.params == t.candidate.params <= 6_000_000
    # the winner is the best trial, refined: as accurate at least, and within the budgets too
    best = max(t.value for t in feasible)
    w = result.winner.candidate
    assert result.winner.feasible and result.winner.value >= best
    total = analyze(scale_spec(b0, w.depth_multiplier, w.width, w.pixels)).total
    assert (total.macs, total.params) == (w.macs, w.params) and w.macs <= 400_000_000 and w.params <= 6_000_000


@pytest.mark.parametrize("method", ["direct", "two-step"])
def test_400_mflops_from_b0_lands_within_10_percent(b0, method):
    budgets = parse_budgets("400MFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, method=method, trials=50))
    macs = result.winner.candidate.macs
    assert 360_000_000 <= macs <= 400_000_000
    # cross-check the winner by an independent analysis of the spec it stands for
    w = result.winner.candidate
    assert analyze(scale_spec(b0, w.depth_multiplier, w.width, w.pixels)).total.macs == macs


def test_two_step_meets_the_coefficient_constraint_takes_the_largest_phi_and_refines(b0):
    budgets = parse_budgets("1GFLOPs")
    s = settings_for(budgets, method="two-step", trials=40, product_tolerance=0.1)
    ev = Evaluator(b0, budgets)
    result = run_search(ev, s)
    a, b, g = result.coefficients
    assert a >= 1 and b >= 1 and g >= 1
    assert abs(a * b * b * g * g - 2.0) <= 0.1
    # alpha is a depth B0 can build (blocks / 16), not a multiplier that rounds up to another
    assert a * 16 == pytest.approx(round(a * 16))
    w = result.winner.candidate
    levels = depth_levels(b0, 0.25, 4.0)
    assert w.depth == nearest_level(levels, a ** result.phi).ratio
    # the refinement only grows width and resolution from phi's network
    assert w.width >= b ** result.phi - 1e-12 and w.pixels >= round(224 * g ** result.phi)
    assert w.macs <= 1_000_000_000
    # 8 more pixels, or a slightly wider network, break the budget: nothing is left to spend
    refinement = result.refinement
    assert refinement["to"] == {"width": w.width, "pixels": w.pixels}
    assert ev.evaluate(w.depth_multiplier, w.width, (w.pixels + 8) / 224).macs > 1_000_000_000
    assert ev.evaluate(w.depth_multiplier, w.width + 0.002, w.pixels / 224).macs > 1_000_000_000


def test_stepped_phi_is_a_multiple_of_the_step(b0):
    budgets = parse_budgets("1GFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, method="two-step", trials=30, phi_step=0.5))
    assert result.phi / 0.5 == pytest.approx(round(result.phi / 0.5))


def test_pareto_mode_front_is_non_dominated(b0):
    budgets = parse_budgets("600MFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, objective="pareto", trials=30,
                                                             extrapolation="allow"))
    front = result.pareto
    assert front and all(t.feasible for t in front)
    for t in front:
        for other in result.trials:
            if other.feasible:
                assert not (other.candidate.macs < t.candidate.macs and other.candidate.accuracy > t.candidate.accuracy)
    # the most accurate feasible trial, refined to spend what it left of the budget
    assert result.winner.candidate.accuracy >= max(t.candidate.accuracy for t in result.trials if t.feasible)
    assert result.winner.feasible and result.winner.candidate.macs <= 600_000_000


def test_extrapolation_avoided_by_default(b0):
    budgets = parse_budgets("400MFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, trials=40))
    assert not result.winner.candidate.extrapolated
    assert all(not t.candidate.extrapolated for t in result.trials if t.feasible)


def test_avoid_holds_depth_at_the_fitted_range_below_the_base(b0, tmp_path):
    """300 MFLOPs is below B0 (385.8 M MACs): the two-step ray shrinks all three dimensions, but depth
    x1 (16 blocks) is the shallowest the scaling law was fitted on, so avoid holds it there and
    spends the budget on width and resolution instead."""
    res = invoke("scale", "--budget", "300MFLOPs", "--trials", 20, "--storage", "memory", "--report-dir", tmp_path,
                 "--no-charts", "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    w = report["winner"]
    assert not w["extrapolated"] and "EXTRAPOLATED" not in w["accuracy_detail"]
    assert w["blocks"] == 16 and w["depth"] == 1.0
    assert 0.85 < w["width"] < 0.95 and 270_000_000 < w["macs"] <= 300_000_000
    again = analyze(scale_spec(b0, 1.0, w["width"], (w["pixels"], w["pixels"])))
    assert again.total.macs == w["macs"]
    assert all(not t["extrapolated"] for t in report["two_step"]["phi_trials"] if t["feasible"])
    assert report["extrapolation"].startswith("--extrapolation avoid: every candidate searched lies inside")


def test_avoid_that_cannot_be_met_says_so(b0, tmp_path):
    """15 MFLOPs is below the smallest network of the fitted range (16 blocks, width x0.25, 128 px):
    the search goes outside it, and the output and the report say why."""
    floor = analyze(scale_spec(b0, 1.0, 0.25, (128, 128))).total.macs
    assert 15_000_000 < floor
    args = ("scale", "--budget", "15MFLOPs", "--method", "direct", "--trials", 30, "--storage", "memory",
            "--report-dir", tmp_path, "--no-charts")
    text = invoke(*args)
    assert text.exit_code == 0, text.output
    said = "--extrapolation avoid cannot be met: the smallest network inside the range the accuracy estimator was fitted on"
    flat = " ".join(text.stdout.split())
    assert said in flat and f"needs {floor:,} MACs, over 15MFLOPs" in flat
    report = json.loads((tmp_path / "efficientnet_b0-direct-hard-15MFLOPs-scaling-law.json").read_text())
    assert report["extrapolation"].startswith(said) and report["winner"]["extrapolated"]
    assert said in " ".join((tmp_path / "efficientnet_b0-direct-hard-15MFLOPs-scaling-law.md").read_text().split())


def test_impossible_budget_is_refused(b0):
    budgets = parse_budgets("1MFLOPs")
    with pytest.raises(ScalelabError, match="impossible.*smallest scaling allowed"):
        run_search(Evaluator(b0, budgets), settings_for(budgets, trials=5))


def test_latency_budget_needs_a_device(b0):
    with pytest.raises(ScalelabError, match="--device"):
        Evaluator(b0, parse_budgets("2ms"))


def test_latency_and_memory_budgets_are_honoured(b0):
    from scalelab.analysis.latency import predict_latency
    from scalelab.analysis.memory import inference_memory
    from scalelab.graph import resolve

    budgets = parse_budgets(["8ms", "80MB"])  # batch 1 on the t4: host-bound, ~50 us an op (the base: 12 ms)
    ev = Evaluator(b0, budgets, device="t4")
    result = run_search(ev, settings_for(budgets, trials=15, extrapolation="allow"))
    for t in (t for t in result.trials if t.feasible):
        c = t.candidate
        net = resolve(scale_spec(b0, c.depth_multiplier, c.width, c.pixels))
        assert predict_latency(net, "t4").total_ms == pytest.approx(c.latency_ms) and c.latency_ms <= 8.0
        mem = inference_memory(net, "fp32", 1)
        assert mem.weight_bytes + mem.peak_bytes == c.memory_bytes <= 80_000_000


def test_bad_storage_url_is_a_clear_error(b0):
    budgets = parse_budgets("400MFLOPs")
    with pytest.raises(ScalelabError, match="storage 'nosuchdb://x'.*Optuna storage"):
        run_search(Evaluator(b0, budgets), settings_for(budgets, trials=2), storage="nosuchdb://x")


# -- resume ------------------------------------------------------------------------------------


class Interrupt:
    """Raise KeyboardInterrupt (what Ctrl-C raises) after ``after`` finished trials."""

    def __init__(self, after: int):
        self.after = after

    def __call__(self, study, trial):
        if len([t for t in study.trials if t.state.is_finished()]) >= self.after:
            raise KeyboardInterrupt


def _complete(storage: str, name: str):
    study = optuna.load_study(study_name=name, storage=storage)
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_resume_after_interrupt_neither_loses_nor_duplicates(b0, tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    budgets = parse_budgets("400MFLOPs")
    s = settings_for(budgets, trials=14)
    with pytest.raises(KeyboardInterrupt):
        run_search(Evaluator(b0, budgets), s, storage=storage, study_name="r", callbacks=[Interrupt(6)])
    before = _complete(storage, "r")
    assert len(before) == 6
    result = run_search(Evaluator(b0, budgets), s, storage=storage, study_name="r")
    after = _complete(storage, "r")
    assert result.new_trials == 8 and len(after) == 14 and len(result.trials) == 14
    assert sorted(t.number for t in after) == list(range(14))  # continued numbering, no gaps
    kept = {t.number: t.params for t in after}
    assert all(kept[t.number] == t.params for t in before)  # the first six are untouched
    points = {tuple(sorted(t.params.items())) for t in after}
    assert len(points) == 14  # a resumed sampler does not propose the same points again
    # running again with the same total does nothing more
    again = run_search(Evaluator(b0, budgets), s, storage=storage, study_name="r")
    assert again.new_trials == 0 and len(_complete(storage, "r")) == 14


def test_interrupt_inside_a_trial_marks_it_failed_and_it_is_not_counted(b0, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    budgets = parse_budgets("400MFLOPs")
    s = settings_for(budgets, trials=8, extrapolation="allow")
    ev = Evaluator(b0, budgets)
    calls = {"n": 0}
    real = Evaluator.evaluate

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # trials 0, 1, 2 finish; Ctrl-C in trial 3
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Evaluator, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_search(ev, s, storage=storage, study_name="f")
    monkeypatch.setattr(Evaluator, "evaluate", real)
    study = optuna.load_study(study_name="f", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 + ["FAIL"]
    result = run_search(ev, s, storage=storage, study_name="f")
    assert len(result.trials) == 8 and result.new_trials == 5


def test_same_study_name_with_other_settings_is_refused(b0, tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    b1 = parse_budgets("20GFLOPs")
    run_search(Evaluator(b0, b1), settings_for(b1, trials=3, extrapolation="allow"), storage=storage, study_name="x")
    b2 = parse_budgets("500MFLOPs")
    with pytest.raises(ScalelabError, match="study 'x' already exists.*budgets"):
        run_search(Evaluator(b0, b2), settings_for(b2, trials=3, extrapolation="allow"), storage=storage, study_name="x")


def test_search_space_must_be_ordered(b0):
    budgets = parse_budgets("400MFLOPs")
    bad = settings_for(budgets, space=SearchSpace(depth=(2.0, 1.0)))
    with pytest.raises(ScalelabError, match="depth range"):
        run_search(Evaluator(b0, budgets), bad)


def test_soft_reward_is_recorded_as_mnasnet_defines_it(b0):
    budgets = parse_budgets("400MFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, constraint="soft", trials=10,
                                                             extrapolation="allow"))
    for t in result.trials:
        expected = t.candidate.accuracy * (t.candidate.macs / 400_000_000) ** -0.07
        assert math.isclose(t.value, expected, rel_tol=1e-12)


def test_step_one_samples_on_the_constraint_surface():
    from scalelab.scaling.two_step import coefficients

    # corners worked by hand: all of log 2 to alpha, or the rest split evenly between beta and gamma
    assert coefficients(2.0, 0.3, 2.0) == pytest.approx((2.0, 1.0, 1.0))
    assert coefficients(1.0, 0.5, 2.0) == pytest.approx((1.0, 2 ** 0.25, 2 ** 0.25))
    for alpha in (1.0, 1.4375, 1.8125):  # depths B0 builds: 16, 23 and 29 blocks
        for split in (0.0, 0.4, 1.0):
            for product in (1.9, 2.0, 2.1):
                a, b, g = coefficients(alpha, split, product)
                assert min(a, b, g) >= 1.0 and a * b * b * g * g == pytest.approx(product)


def test_depth_levels_are_the_distinct_networks_worked_by_hand(b0):
    # B0's stage repeats 1, 2, 2, 3, 3, 4, 1 (16 blocks); each rounds up, so the depth multiplier
    # changes the network only where it crosses k / repeats
    levels = depth_levels(b0, 0.25, 1.5)
    assert [(lv.multiplier, lv.blocks) for lv in levels] == [
        (0.25, 7), (1 / 3, 8), (0.5, 10), (2 / 3, 13), (0.75, 15), (1.0, 16), (1.25, 23), (4 / 3, 24), (1.5, 26)]
    assert [lv.ratio for lv in levels][-1] == 26 / 16
    assert nearest_level(levels, 1.1).blocks == 16 and nearest_level(levels, 1.3).blocks == 23


def test_two_step_spends_no_trial_off_the_constraint(b0):
    budgets = parse_budgets("1GFLOPs")
    result = run_search(Evaluator(b0, budgets), settings_for(budgets, method="two-step", trials=12))
    assert len(result.trials) == 12 and all(t.feasible for t in result.trials)
