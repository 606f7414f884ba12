"""`scalelab scale` takes only the options its mode uses: one scaling applied (--phi, --depth, --width,
--resolution) refuses every search option, a search (--budget) every scaling option, each by name
(exit 2, no output file), and --alpha/--beta/--gamma need --phi. The options are classified here by
hand, and the classification is checked against the command's own parameter list, so a new option
cannot go unclassified."""

from __future__ import annotations

import json
import os

import pytest
from typer.main import get_command

from cli_helpers import assert_refused, invoke
from scalelab.cli import app
from scalelab.spec import parse_spec

# What each mode uses, by parameter name (worked out from what each option does, not read from the code)
SEARCH = {"budget", "flops_convention", "device", "dtype", "batch", "method", "objective", "constraint",
          "reward_exponent", "trials", "seed", "sampler", "storage", "study", "workers", "heartbeat", "worker_of",
          "accuracy", "extrapolation", "data", "epochs", "min_depth", "max_depth", "min_width", "max_width",
          "min_resolution", "max_resolution", "ensembles", "crops", "product_tolerance", "phi_step", "report_dir",
          "charts", "top", "progress"}
APPLY = {"phi", "depth", "width", "resolution", "alpha", "beta", "gamma"}
SHARED = {"spec", "divisor", "resolution_multiple", "output", "format"}

# A value each option parses (the refusal, not a bad value, is under test); a flag: as typed
SEARCH_ARGS = {
    "budget": ["--budget", "400MFLOPs"], "flops_convention": ["--flops-convention", "hardware"],
    "device": ["--device", "t4"], "dtype": ["--dtype", "fp16"], "batch": ["--batch", "2"],
    "method": ["--method", "direct"], "objective": ["--objective", "pareto"], "constraint": ["--constraint", "soft"],
    "reward_exponent": ["--reward-exponent", "-0.05"], "trials": ["--trials", "5"], "seed": ["--seed", "1"],
    "sampler": ["--sampler", "random"], "storage": ["--storage", "memory"], "study": ["--study", "s"],
    "workers": ["--workers", "2"], "heartbeat": ["--heartbeat", "30"], "worker_of": ["--worker-of", str(os.getppid())],
    "accuracy": ["--accuracy", "proxy"], "extrapolation": ["--extrapolation", "allow"], "data": ["--data", None],
    "epochs": ["--epochs", "1"], "min_depth": ["--min-depth", "0.5"], "max_depth": ["--max-depth", "2"],
    "min_width": ["--min-width", "0.5"], "max_width": ["--max-width", "2"], "min_resolution": ["--min-resolution", "0.5"],
    "max_resolution": ["--max-resolution", "2"], "ensembles": ["--ensembles", "1,2"], "crops": ["--crops", "1,10"],
    "product_tolerance": ["--product-tolerance", "0.2"], "phi_step": ["--phi-step", "0.5"],
    "report_dir": ["--report-dir", None], "charts": ["--no-charts"], "top": ["--top", "3"], "progress": ["--no-progress"],
}
APPLY_ARGS = {"phi": ["--phi", "1"], "depth": ["--depth", "2"], "width": ["--width", "2"],
              "resolution": ["--resolution", "64"], "alpha": ["--alpha", "1.3"], "beta": ["--beta", "1.2"],
              "gamma": ["--gamma", "1.2"]}


def _scale_parameters() -> set[str]:
    return {p.name for p in get_command(app).commands["scale"].params}  # type: ignore[attr-defined]


def _filled(args: list, tmp_path) -> list[str]:
    """The option's arguments, a folder made for those that need one (--data: an image folder)."""
    if args[1:] != [None]:
        return args
    folder = tmp_path / args[0].lstrip("-")
    if args[0] == "--data":
        for name in ("cat", "dog"):
            (folder / name).mkdir(parents=True)
            (folder / name / "a.png").write_bytes(b"")
    return [args[0], str(folder)]


def test_every_option_of_scale_is_classified_once():
    assert SEARCH.isdisjoint(APPLY) and SEARCH.isdisjoint(SHARED) and APPLY.isdisjoint(SHARED)
    assert _scale_parameters() == SEARCH | APPLY | SHARED
    assert set(SEARCH_ARGS) == SEARCH and set(APPLY_ARGS) == APPLY


@pytest.mark.parametrize("mode", [["--width", "2"], ["--phi", "1", "--alpha", "1"]], ids=["width", "phi"])
@pytest.mark.parametrize("name", sorted(SEARCH))
def test_one_scaling_refuses_each_search_option(tmp_path, mode, name):
    option = _filled(SEARCH_ARGS[name], tmp_path)
    out = tmp_path / "scaled.yaml"
    result = invoke("scale", "lenet5", *mode, *option, "-o", out)
    assert_refused(result, option[0], "search")
    if name != "budget":  # --budget chooses the search: refused as the other mode
        assert_refused(result, f"not to one scaling applied ({mode[0]})", "drop it")
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(APPLY))
def test_a_search_refuses_each_scaling_option(tmp_path, name):
    option = APPLY_ARGS[name]
    reports, out = tmp_path / "r", tmp_path / "w.yaml"
    result = invoke("scale", "lenet5", "--budget", "1MMACs", *option, "--report-dir", reports, "-o", out)
    assert_refused(result, option[0], "scaling")
    if name in ("alpha", "beta", "gamma"):  # the others choose one scaling: refused as the other mode
        assert_refused(result, "not to the search (--budget), which chooses the scaling itself")
    assert not reports.exists() and not out.exists()


def test_every_ignored_option_is_named_in_one_message(tmp_path):
    result = invoke("scale", "lenet5", "--depth", "1", "--width", "2", "--device", "t4", "--no-charts", "--top", "3")
    assert_refused(result, "--device, --no-charts, --top apply to the search (--budget), not to one scaling "
                           "applied (--depth and --width), which would ignore them")
    assert result.output.count("error") == 1


def test_an_option_typed_with_its_default_value_is_given(tmp_path):
    # --trials 100 is the default: typed, it is still an option the scaling would ignore
    assert_refused(invoke("scale", "lenet5", "--width", "2", "--trials", "100"), "--trials applies to the search")
    assert_refused(invoke("scale", "lenet5", "--budget", "1MMACs", "--alpha", "1.2", "--report-dir", tmp_path / "r"),
                   "--alpha applies to one scaling applied")


@pytest.mark.parametrize("name", ["alpha", "beta", "gamma"])
def test_coefficients_need_phi(tmp_path, name):
    out = tmp_path / "scaled.yaml"
    result = invoke("scale", "lenet5", "--width", "2", *APPLY_ARGS[name], "-o", out)
    assert_refused(result, f"--{name} applies only with --phi", "not with --width")
    assert not out.exists()


def test_one_scaling_takes_the_options_it_shares(tmp_path):
    out = tmp_path / "scaled.yaml"
    result = invoke("scale", "lenet5", "--width", "2", "--resolution", "38", "--divisor", "4",
                    "--resolution-multiple", "8", "--format", "json", "-o", out)
    assert result.exit_code == 0, result.output
    spec = parse_spec(out.read_text(), str(out))
    # c1: 6 x 2 = 12, a multiple of 4 (the default divisor 8 would make it 16); 38 px to a multiple of 8: 40
    assert spec.blocks[0].out == 12 and spec.input.resolution == (40, 40)
    assert json.loads(result.stdout)["output"] == str(out)


def test_phi_takes_its_coefficients(tmp_path):
    # phi 1 with alpha = beta = gamma = 1 scales nothing: lenet5's own 61,706 parameters (its spec says so)
    result = invoke("scale", "lenet5", "--phi", "1", "--alpha", "1", "--beta", "1", "--gamma", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["params"], summary["resolution"], summary["depth"], summary["width"]) == (61_706, 32, 1.0, 1.0)


def test_a_search_takes_its_options_and_the_shared_ones(tmp_path):
    reports, out = tmp_path / "r", tmp_path / "w.yaml"
    result = invoke("scale", "lenet5", "--budget", "1MMACs", "--trials", "3", "--storage", "memory", "--no-charts",
                    "--report-dir", reports, "--format", "json", "-o", out, "--divisor", "4", "--seed", "1",
                    "--sampler", "random", "--method", "direct", "--top", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["method"], report["sampler"], report["seed"], report["charts"]) == ("direct", "random", 1, {})
    assert len(report["ranked"]) <= 2 and report["winner_spec"] == str(out)
    convs = [b.out for b in parse_spec(out.read_text(), str(out)).blocks if b.kind == "conv"]
    assert convs and all(c % 4 == 0 for c in convs)


@pytest.mark.parametrize("args, named", [
    (["--epochs", "2"], "--epochs applies only with --accuracy train"),
    (["--epochs", "3", "--accuracy", "proxy"], "--epochs applies only with --accuracy train"),
    (["--method", "direct", "--phi-step", "0.5"], "--phi-step applies to the two-step method"),
    (["--method", "direct", "--product-tolerance", "0.2", "--phi-step", "0.5"],
     "--product-tolerance, --phi-step apply to the two-step method"),
    (["--objective", "pareto", "--product-tolerance", "0.2"],
     "not to the direct search the Pareto objective runs"),
])
def test_a_search_refuses_what_its_method_or_accuracy_estimate_would_ignore(tmp_path, args, named):
    """--epochs trains candidates only under --accuracy train; --product-tolerance and --phi-step shape the
    two-step method's phi, which a direct search (asked for, or the Pareto objective's default) never has."""
    report = tmp_path / "r"
    res = invoke("scale", "lenet5", "--budget", "1MFLOPs", "--trials", "2", "--report-dir", report, *args)
    assert_refused(res, named)
    assert not report.exists()


def test_the_two_step_options_still_apply_to_a_two_step_search(tmp_path):
    res = invoke("scale", "lenet5", "--budget", "1MFLOPs", "--trials", "3", "--method", "two-step",
                 "--phi-step", "0.5", "--product-tolerance", "0.2", "--storage", "memory", "--no-charts",
                 "--report-dir", tmp_path / "r", "--format", "json")
    assert res.exit_code == 0, res.output
    two_step = json.loads(res.stdout)["two_step"]
    assert (two_step["product_tolerance"], two_step["phi_step"]) == (0.2, 0.5)
    assert all(t["sampled"]["phi"] in (0.0, 0.5, 1.0, 1.5, 2.0) for t in two_step["phi_trials"])  # phi in steps of 0.5
