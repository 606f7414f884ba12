"""Inputs the fuzz tests of tests/test_fuzz_commands.py found, each once a traceback or a message
naming no place: each refused now with exit 2, the place and the rule, or taken as it should be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import invoke
from fuzz_inputs import REPORT, check


def test_a_two_step_search_whose_width_reaches_the_range_edge_records_its_trials(tmp_path):
    # lenet5 under 400MFLOPs: step 2 runs phi to the end of --max-width 3, where beta^phi came out as
    # 3.0000000000000004 and the companion study refused the trial (ValueError, exit 1)
    reports = tmp_path / "r"
    result = invoke("scale", "lenet5", "--budget", "400MFLOPs", "--storage", "memory", "--trials", "2",
                    "--no-charts", "--report-dir", reports, "--format", "json")
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    widths = [t["width"] for t in report["two_step"]["phi_trials"]]
    assert max(widths) == 3.0 and min(widths) >= 0.25  # --max-width and --min-width, the defaults


@pytest.mark.parametrize("command", [["analyze", "resnet18"], ["compare", "resnet18", "lenet5"],
                                     ["scale", "lenet5", "--width", "2"],
                                     ["plot", "resnet18", "--breakdown", "latency"]])
def test_a_device_that_is_neither_a_file_nor_a_profile_is_refused_naming_the_option(tmp_path, command):
    # `--device 0` once read "error: 0: no such device profile file or name", naming no option
    out = tmp_path / "out.svg"
    result = invoke(*command, "--device", "0", "-o", out)
    check(result, ("--device",), (out,))
    assert result.exit_code == 2
    assert "Invalid value for '--device': '0': no such device profile file or name" in result.stderr


def test_a_device_name_close_to_a_profile_is_refused_with_the_close_names():
    result = invoke("devices", "tt4")
    assert result.exit_code == 2
    assert "'tt4': no such device profile file or name (did you mean 't4'?)" in result.stderr


@pytest.mark.parametrize("value,rule", [("2.5", "'2.5' is not a whole number"),
                                        ("resnet34,nosuch", "'nosuch': no such file or zoo spec")])
def test_an_ensemble_member_that_names_nothing_is_refused_naming_the_option(tmp_path, value, rule):
    # `--ensemble 2.5` once read "error: 2.5: no such file or zoo spec", naming no option
    out = tmp_path / "out.json"
    result = invoke("analyze", "resnet18", "--ensemble", value, "-o", out)
    assert result.exit_code == 2 and not out.exists()
    assert f"Invalid value for '--ensemble': {rule}" in result.stderr


def _report_with(tmp_path, change) -> Path:
    document = json.loads(REPORT.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "study.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("change,rule", [
    # a null end of an error bar once failed in matplotlib (TypeError, exit 1)
    (lambda d: d["two_step"]["phi_trials"][4].update(high=None), "two_step.phi_trials[4]: an 80% interval needs "
                                                                  "both 'low' and 'high', got low=76.23"),
    (lambda d: d["winner"].update(low=90.0), "winner: the 80% interval [90.0, "),
    (lambda d: d["budgets"][0].pop("text"), "budgets[0]: missing required field 'text'"),
    (lambda d: d.update(latency_error="10%"), "latency_error: must be a valid number"),
])
def test_a_report_field_the_charts_read_is_checked_before_drawing(tmp_path, change, rule):
    report, out = _report_with(tmp_path, change), tmp_path / "chart.png"
    result = invoke("plot", report, "-o", out)
    assert result.exit_code == 2 and not out.exists(), result.output[-2000:]
    assert result.stderr.startswith(f"error: {report}: {rule}"), result.stderr


TABLE_HEADER = "model,infer_img_size,infer_samples_per_sec,infer_batch_size\n"


@pytest.mark.parametrize("rows,rule", [
    ("resnet18,inf,1000,256\n", "bench.csv:2: column 'infer_img_size' (img_size) must be a positive whole number, "
                                "got 'inf'"),  # once OverflowError from int(inf)
    ("resnet18,224,1e400,256\n", "bench.csv:2: column 'infer_samples_per_sec' (throughput) must be a positive "
                                 "number, got '1e400'"),
    ("resnet18,224,1000,256\n\n", None),
])
def test_a_table_value_that_is_not_a_finite_positive_number_is_refused_with_its_line(tmp_path, rows, rule):
    table = tmp_path / "bench.csv"
    table.write_text(TABLE_HEADER + rows, encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090", "-o", tmp_path / "fitted.yaml")
    assert result.exit_code == 2 and not (tmp_path / "fitted.yaml").exists()
    # a single network cannot be fitted with one held out: the table is read, then refused for that
    assert (rule or "bench.csv: 1 model(s) resolved; a fit with one network held out needs at least 2") \
        in result.stderr, result.stderr


def test_a_short_table_row_without_a_model_is_refused_with_its_line(tmp_path):
    # a row cut before its model column once failed on None.strip() (AttributeError, exit 1)
    table = tmp_path / "bench.csv"
    table.write_text("infer_img_size,infer_samples_per_sec,infer_batch_size,model\n224,1000,256\n", encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
    assert result.exit_code == 2
    assert f"error: {table}:2: column 'model' (model) is empty" in result.stderr, result.stderr


def test_a_table_saved_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    # a spreadsheet's UTF-8 export starts with a BOM, which once made the first column '\ufeffmodel'
    table = tmp_path / "bench.csv"
    table.write_text("\ufeff" + TABLE_HEADER + "resnet18,224,1000,256\n", encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
    assert result.exit_code == 2
    assert "1 model(s) resolved; a fit with one network held out needs at least 2" in result.stderr, result.stderr
