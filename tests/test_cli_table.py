"""The terminal table and the command line around it: it fits the terminal, labels its totals for
what they add up, and refuses options that would do nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli_helpers import assert_refused, invoke
from scalelab.cli import app

TINY = """\
name: tiny
input: {channels: 3, resolution: 16}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


def run(*args, columns=100, env=None):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns), **(env or {})})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("args", [
    ("resnet50",),
    ("resnet50", "--device", "t4"),
    ("resnet50", "--dtype", "fp16"),
    ("resnet50", "--mode", "train"),
    ("googlenet", "--mode", "train", "--device", "t4", "--dtype", "fp16"),
    ("efficientnet_b0", "--level", "1", "--device", "t4"),
])
def test_the_table_fits_100_columns(args):
    text = run("analyze", *args)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "Params" in text and "MACs" in text  # the most important columns always stay


def test_the_table_follows_the_width_it_is_given():
    narrow, wide = run("analyze", "resnet50", "--device", "t4", columns=80), run("analyze", "resnet50", "--device", "t4", columns=250)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "more columns with --wide" in narrow
    assert "Pred. ms" in narrow  # a column an option asked for outranks the default ones
    assert "Block peak" in wide and "Activations" in wide and "--wide" not in wide


def test_wide_and_columns_choose_what_is_shown():
    assert "Other ops" in run("analyze", "resnet50", "--wide", columns=60)
    header = run("analyze", "resnet50", "--columns", "macs,params").splitlines()[1].split()
    assert header == ["Block", "Kind", "Output", "MACs", "Params"]
    data = json.loads(run("analyze", "resnet50", "-f", "json", "--columns", "params"))
    assert set(data["total"]) == {"params"}
    assert_refused(invoke("analyze", "resnet50", "--columns", "mac"), "unknown column 'mac'", "macs")


def test_footer_is_one_short_line_and_explain_units_gives_the_long_form():
    text = run("analyze", "resnet50")
    footer = text.splitlines()[-1]
    assert footer.startswith("Input 224x224, batch 1, fp32") and "--explain-units" in footer
    assert "Convention" not in text
    explained = run("analyze", "resnet50", "--explain-units")
    assert "Convention: MACs = multiply-accumulates" in explained and "Units: Params: parameters" in explained
    assert max(len(line) for line in explained.splitlines()) <= 100  # wrapped to the width


def test_training_total_is_labelled_for_what_it_adds_up():
    with_aux = run("analyze", "googlenet", "--mode", "train", "-l", "1")
    assert "Total (main blocks)" in with_aux and "Total (inference)" not in with_aux
    assert "Total (training-only blocks)" in with_aux
    plain = run("analyze", "mobilenet_v2", "--mode", "train", "-l", "1")
    assert "\nTotal " in plain and "Total (inference)" not in plain
    assert json.loads(run("analyze", "mobilenet_v2", "--mode", "train", "-f", "json"))["total_label"] == "Total"


def test_level_is_the_rows_option_and_depth_a_hidden_alias():
    by_level = json.loads(run("analyze", "resnet50", "-f", "json", "--level", "1"))
    by_depth = json.loads(run("analyze", "resnet50", "-f", "json", "--depth", "1"))
    assert [r["name"] for r in by_level["rows"]] == [r["name"] for r in by_depth["rows"]]
    assert len(by_level["rows"]) == 8
    help_text = run("analyze", "--help", columns=80)
    assert "--level" in help_text and "--depth" not in help_text


@pytest.mark.parametrize("args,fragments", [
    (("--optimizer", "adam"), ("--optimizer applies only with --mode train",)),
    (("--freeze-until", "layer2"), ("--freeze-until applies only with --mode train",)),
    (("--measure-on", "cpu"), ("--measure-on applies only with --measure",)),
    (("--no-cache",), ("--no-cache applies only with --measure",)),
    (("--allow-noisy",), ("--allow-noisy applies only with --measure",)),
    (("--wide", "-f", "json"), ("--wide and --explain-units shape the terminal table",)),
])
def test_options_that_would_do_nothing_are_refused(args, fragments):
    assert_refused(invoke("analyze", "resnet50", *args), *fragments)


def test_device_names_match_in_any_case_and_suggest_close_names():
    assert "Pred. ms" in run("analyze", "resnet50", "--device", "T4")
    assert_refused(invoke("analyze", "resnet50", "--device", "A10"), "'a100'", "`scalelab devices`")


def test_help_is_plain_and_whole_at_80_columns():
    for command in ("analyze", "scale", "plot", "calibrate"):
        text = run(command, "--help", columns=80)
        assert "<bool>" not in text and "<list[str]>" not in text, command
        assert "…" not in text, command
    assert "--flops-convention" in run("scale", "--help", columns=80)
    assert run("--version").startswith("scalelab ")


def test_measured_table_names_both_totals_and_marks_cached_rows(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    # --allow-noisy: a busy machine's timings are kept (marked noisy) instead of refused
    first = json.loads(run("analyze", spec, "--measure", "--allow-noisy", "-f", "json", env=env))
    timings = first["measured_latency"]
    assert timings["sum_of_blocks_alone_ms"] == pytest.approx(sum(r["measured_ms"] for r in first["rows"]), abs=1e-5)
    assert not any(r["measured_cached"] for r in first["rows"]) and timings["cached_timings"] == 0
    assert first["extra_totals"][0]["label"] == "Network timed whole"
    assert first["extra_totals"][0]["measured_ms"] == pytest.approx(timings["network_median_ms"], abs=1e-6)
    second = json.loads(run("analyze", spec, "--measure", "--allow-noisy", "-f", "json", env=env))
    cached = [r["measured_cached"] for r in second["rows"]]
    if timings["noisy"]:  # a noisy timing is never served from the cache as a clean one
        assert not any(cached)
    else:
        assert all(cached) and second["measured_latency"]["cached_timings"] == len(cached) + 1
    table = run("analyze", spec, "--measure", "--allow-noisy", "--wide", env=env)
    assert "Network timed whole" in table and "Total (inference)" in table and "Cached" in table
    if all(cached):  # the cache holds clean timings: the table serves them and says so
        assert "come from the cache of an earlier run" in " ".join(table.split())  # the note, wrapped
    fresh = json.loads(run("analyze", spec, "--measure", "--allow-noisy", "--no-cache", "-f", "json", env=env))
    assert fresh["measured_latency"]["cached_timings"] == 0


def test_listings_fit_the_terminal_too():
    for command in (["zoo"], ["kinds"], ["kinds", "mbconv"], ["devices"]):
        text = run(*command, columns=100)
        assert max(len(line) for line in text.splitlines()) <= 100, command
