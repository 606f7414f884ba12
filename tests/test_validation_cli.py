"""Numbers from the command line, device profiles and search reports: refused while they are read,
with exit 2 and the option, file or field named; and a valid network stays valid at a resolution
where only its training-only head does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import assert_refused, invoke

ROOT = Path(__file__).resolve().parents[1]
A100 = (ROOT / "scalelab" / "devices" / "profiles" / "a100.yaml").read_text()
ACHIEVABLE = next(line for line in A100.splitlines() if line.startswith("achievable_compute:"))  # a fitted figure
REPORT = ROOT / "reports" / "efficientnet_b0-two-step-hard-400MFLOPs-scaling-law.json"
SEARCH = ["--budget", "400MFLOPs", "--storage", "memory", "--trials", "2", "--no-charts"]


# --------------------------------------------------------------------------------------------------
# Command-line numbers

@pytest.mark.parametrize("args,option,rule", [
    (["--phi", "nan"], "--phi", "'nan' is not a finite number"),
    (["--phi", "inf"], "--phi", "'inf' is not a finite number"),
    (["--phi", "100"], "--phi", "must be at least -20 and at most 20"),
    (["--width", "0"], "--width", "must be greater than 0"),
    (["--depth", "0"], "--depth", "must be greater than 0"),
    (["--depth", "1e9"], "--depth", "at most 10,000"),
    (["--width", "-1"], "--width", "must be greater than 0"),
    (["--resolution", "0"], "--resolution", "between 1 and 65,536"),
    (["--resolution", "224.5"], "--resolution", "'224.5' is not a whole number"),
    (["--phi", "1", "--alpha", "0.5"], "--alpha", "must be at least 1"),
    (["--phi", "1", "--divisor", "0"], "--divisor", "between 1 and 1,048,576"),
])
def test_scale_apply_options_are_checked_before_any_work(args, option, rule):
    result = invoke("scale", "efficientnet_b0", *args)
    assert_refused(result, option, rule)


@pytest.mark.parametrize("args,option,rule", [
    (["--max-depth", "inf"], "--max-depth", "not a finite number"),
    (["--min-width", "nan"], "--min-width", "not a finite number"),
    (["--product-tolerance", "-1"], "--product-tolerance", "must be at least 0"),
    (["--phi-step", "-1"], "--phi-step", "must be at least 0"),
    (["--trials", "0"], "--trials", "between 1 and"),
    (["--trials", "true"], "--trials", "not a whole number"),
    (["--seed", "-1"], "--seed", "between 0 and"),
    (["--reward-exponent", "nan"], "--reward-exponent", "not a finite number"),
    (["--batch", "0"], "--batch", "between 1 and 65,536"),
    (["--accuracy", "train", "--data", "/nonexistent"], "--data", "'/nonexistent': no such folder"),
])
def test_search_options_are_checked_before_the_report_folder_is_made(tmp_path, args, option, rule):
    report_dir = tmp_path / "r"
    result = invoke("scale", *SEARCH, "--report-dir", report_dir, *args)
    assert_refused(result, option, rule)
    assert not report_dir.exists()


def test_an_infinite_budget_is_refused(tmp_path):
    result = invoke("scale", "--budget", "1e308TFLOPs", "--storage", "memory", "--report-dir", tmp_path / "r")
    assert_refused(result, "budget '1e308TFLOPs': the limit is too large to be a number")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,option", [
    (["analyze", "resnet18", "--measure", "--measure-on", "nosuch"], "--measure-on"),
    (["analyze", "resnet18", "--batch", "1.5"], "--batch"),
    (["analyze", "resnet18", "--batch", "99999999999999999999999999999999999"], "--batch"),
    (["calibrate", "--on", "nosuch"], "--on"),
    (["calibrate", "--on", "cuda:x"], "--on"),
    (["accuracy", "efficientnet_b0", "--depth", "nan"], "--depth"),
    (["accuracy", "efficientnet_b0", "--width", "0"], "--width"),
    (["plot", "resnet18", "--breakdown", "macs", "--batch", "0"], "--batch"),
])
def test_other_commands_check_their_numbers_and_devices(args, option):
    result = invoke(*args)
    assert_refused(result, option)


def test_cuda_is_checked_where_torch_has_none():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_refused(invoke("calibrate", "--on", "cuda"), "--on", "torch finds no CUDA device on this machine")


# --------------------------------------------------------------------------------------------------
# Device profiles

@pytest.mark.parametrize("old,new,where", [
    ("fp32: 19.5e12", "fp32: .nan", ":4:20: peak_flops.fp32: device profile: Input should be a finite number"),
    ("fp32: 19.5e12", "fp32: -19.5e12", ":4:20: peak_flops.fp32: device profile: Input should be greater than or equal to 1"),
    ("memory_bandwidth: 2039.0e9", "memory_bandwidth: .inf", ":5:19: memory_bandwidth: device profile: Input should be a finite"),
    ("launch_overhead_us: 5.0", "launch_overhead_us: .nan", ":8:21: launch_overhead_us: device profile"),
    (ACHIEVABLE, "achievable_compute: true", ":6:21: achievable_compute: device profile: must be a number"),
])
@pytest.mark.parametrize("command", [
    ["analyze", "resnet18", "--device"],
    ["scale", "--budget", "2ms", "--storage", "memory", "--device"],
    ["plot", "resnet18", "--breakdown", "latency", "--device"],
])
def test_bad_device_figures_are_refused_with_file_and_field(tmp_path, monkeypatch, old, new, where, command):
    monkeypatch.chdir(tmp_path)
    profile = tmp_path / "bad.yaml"
    profile.write_text(A100.replace(old, new))
    result = invoke(*command, profile)
    assert_refused(result, f"{profile}{where}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no chart, no report folder


def test_device_json_is_strict_json():
    result = invoke("devices", "--format", "json")
    assert result.exit_code == 0

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")

    assert len(json.loads(result.stdout, parse_constant=refuse)) >= 7


# --------------------------------------------------------------------------------------------------
# Search reports read by `scalelab plot`

def _mutated(tmp_path: Path, change) -> Path:
    report = json.loads(REPORT.read_text())
    change(report)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(trials="abc"), "report.json: trials: must be a valid list (got 'abc')"),
    (lambda r: r.pop("trials"), "report.json: report: missing required field 'trials'"),
    (lambda r: r["trials"][0].pop("macs"), "report.json: trials[0]: missing required field 'macs'"),
    (lambda r: r["two_step"]["phi_trials"][1].update(accuracy=float("nan")),
     "report.json: two_step.phi_trials[1].accuracy: must be a finite number (got nan)"),
    (lambda r: r["winner"].update(pixels=True), "report.json: winner.pixels: must be a valid integer (got True)"),
    (lambda r: r.update(budgets=[]), "report.json: budgets: List should have at least 1 item"),
    (lambda r: r["curve"].update(points="x" * 10_000), "(10,000 characters)"),
])
def test_plot_validates_a_report_before_drawing(tmp_path, change, message):
    path = _mutated(tmp_path, change)
    result = invoke("plot", path, "--output-dir", tmp_path)
    assert_refused(result, message)
    assert len(result.stderr) < 500
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no chart written


def test_plot_still_draws_a_whole_report(tmp_path):
    result = invoke("plot", REPORT, "--output-dir", tmp_path, "--chart", "scaling")
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"{REPORT.stem}-scaling-curves.png").stat().st_size > 0


# --------------------------------------------------------------------------------------------------
# Valid networks stay valid: an auxiliary head that does not fit is left out, not the network

INCEPTION_LIKE = """\
name: inception_v3_like
input: {channels: 3, resolution: 299}
blocks:
  - {name: stem1, kind: conv, out: 32, kernel: 3, stride: 2, padding: valid}
  - {name: stem2, kind: conv, out: 64, kernel: 3, stride: 2, padding: valid}
  - {name: pool, kind: maxpool, kernel: 3, stride: 2}
  - {name: mixed, kind: conv, out: 128, kernel: 3, stride: 2, padding: valid}
  - {name: aux_pool, kind: avgpool, kernel: 5, stride: 3, from: mixed, training_only: true}
  - {name: aux_conv1, kind: conv, out: 128, kernel: 1, from: aux_pool, training_only: true}
  - {name: aux_conv2, kind: conv, out: 768, kernel: 5, padding: valid, from: aux_conv1, training_only: true}
  - {name: aux_flat, kind: flatten, from: aux_conv2, training_only: true}
  - {name: aux_fc, kind: linear, out: 1000, from: aux_flat, training_only: true}
  - {name: gap, kind: global_avgpool, from: mixed}
  - {name: fc, kind: linear, out: 1000}
"""
AUX = ("aux_pool", "aux_conv1", "aux_conv2", "aux_flat", "aux_fc")


def _analyze(tmp_path: Path, text: str, *args) -> dict:
    spec = tmp_path / "net.yaml"
    spec.write_text(text)
    result = invoke("analyze", spec, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_aux_head_that_does_not_fit_is_left_out_and_named(tmp_path):
    # at 160: 160 -> 79 -> 39 -> 19 -> 9; the head pools 9x9 (5x5 window, stride 3) to 2x2,
    # where its valid 5x5 conv cannot go
    report = _analyze(tmp_path, INCEPTION_LIKE, "--resolution", "160")
    assert report["training_only_rows"] == [] and report["training_only_total"] is None
    left_out = {e["block"]: e["reason"] for e in report["not_applicable"]}
    assert sorted(left_out) == sorted(AUX)
    assert left_out["aux_conv2"] == "it cannot take input 128x2x2: a 5x5 conv (padding 0, dilation 1) does not fit a 2x2 map"
    # the inference network is exactly the one without the head
    alone = _analyze(tmp_path, "".join(line + "\n" for line in INCEPTION_LIKE.splitlines() if "aux_" not in line),
                     "--resolution", "160")
    assert report["total"] == alone["total"] and report["rows"] == alone["rows"]
    # fc: 128 x 1000 weights + 1000 biases
    assert report["rows"][-1]["params"] == 129_000


def test_the_text_report_says_why_the_head_is_left_out(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(INCEPTION_LIKE)
    result = invoke("analyze", spec, "--resolution", "160")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # notes are wrapped to the terminal's width
    assert ("Training-only block 'aux_conv2' is not applicable at 160x160 and is left out: it cannot take input "
            "128x2x2") in text


def test_the_head_counts_where_it_fits(tmp_path):
    report = _analyze(tmp_path, INCEPTION_LIKE)
    assert "not_applicable" not in report
    rows = {r["name"]: r for r in report["training_only_rows"]}
    assert list(rows) == list(AUX)
    # 299 -> 149 -> 74 -> 36 -> 17; pool 5/3 -> 5x5; conv 5x5 valid -> 1x1 with 128 x 768 x 25 weights
    # and batchnorm's 2 x 768 (no bias before a norm)
    assert rows["aux_conv2"]["out_shape"] == [768, 1, 1]
    assert rows["aux_conv2"]["params"] == 128 * 768 * 25 + 2 * 768


def test_the_built_module_leaves_the_head_out():
    torch = pytest.importorskip("torch")
    from scalelab import build_module, parse_spec

    net = build_module(parse_spec(INCEPTION_LIKE, "net.yaml"), 160).train()
    out = net(torch.zeros(2, 3, 160, 160))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)  # no auxiliary output
    full = build_module(parse_spec(INCEPTION_LIKE, "net.yaml")).train()
    assert [o.shape[-1] for o in full(torch.zeros(2, 3, 299, 299))] == [1000, 5, 5, 1, 768, 1000]
