"""`scalelab analyze`, `schema`, `kinds` and `zoo` through the CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer
from typer.testing import CliRunner

from scalelab.cli import app

# torchvision 0.29.1 resnet50 (weights=None): parameters and _ops
RESNET50_PARAMS = 25_557_032
RESNET50_MACS = 4_089_184_256

TINY = """\
name: tiny
input: {channels: 3, resolution: 8}
blocks:
  - {name: stem, kind: conv, out: 4, kernel: 3}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


def run(*args):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.stdout


def bottleneck_params(cin: int, mid: int, out: int, project: bool) -> int:
    """1x1 cin->mid, 3x3 mid->mid, 1x1 mid->out, each + BN (2 params per channel); projection 1x1 + BN."""
    convs = cin * mid + 9 * mid * mid + mid * out
    norms = 2 * (mid + mid + out)
    return convs + norms + ((cin * out + 2 * out) if project else 0)


def bottleneck_macs(cin: int, mid: int, out: int, project: bool, hw: int) -> int:
    return hw * hw * (cin * mid + 9 * mid * mid + mid * out + (cin * out if project else 0))


def test_resnet50_json_totals_equal_torchvision():
    data = json.loads(run("analyze", "resnet50", "--format", "json"))
    assert data["total"]["params"] == RESNET50_PARAMS
    assert data["total"]["macs"] == RESNET50_MACS
    assert data["conditions"]["resolution"] == [224, 224] and data["conditions"]["batch"] == 1
    assert len(data["rows"]) == 2 + 16 + 2  # stem, pool, 3+4+6+3 bottlenecks, avgpool, fc


def test_resnet50_depth_one_stage_rows_match_hand_counts():
    data = json.loads(run("analyze", "specs/resnet50.yaml", "--format", "json", "--depth", "1"))
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == ["stem", "pool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    layer1 = rows["layer1"]
    assert layer1["kind"] == "bottleneck x3" and layer1["out_shape"] == [256, 56, 56]
    assert layer1["params"] == bottleneck_params(64, 64, 256, True) + 2 * bottleneck_params(256, 64, 256, False)
    assert layer1["macs"] == bottleneck_macs(64, 64, 256, True, 56) + 2 * bottleneck_macs(256, 64, 256, False, 56)
    assert rows["fc"]["params"] == 2048 * 1000 + 1000 and rows["fc"]["macs"] == 2048 * 1000
    assert sum(r["macs_percent"] for r in data["rows"]) == pytest.approx(100.0)


def test_resnet50_table_in_human_units_with_convention():
    text = run("analyze", "resnet50")
    assert "25.6M" in text and "4.09G" in text and "Total (inference)" in text
    assert "Input 224x224, batch 1, fp32" in text and "--explain-units" in text
    explained = run("analyze", "resnet50", "--explain-units")
    assert "Convention: MACs = multiply-accumulates" in explained
    assert "Conditions: input 224x224, batch 1" in explained


def test_resolution_and_batch_overrides(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    data = json.loads(run("analyze", str(spec), "-f", "json", "--resolution", "16", "--batch", "2"))
    stem = data["rows"][0]
    assert stem["out_shape"] == [4, 16, 16]
    assert stem["macs"] == 2 * 16 * 16 * 4 * 3 * 9  # batch x H x W x out x in x k x k
    assert stem["params"] == 3 * 4 * 9 + 2 * 4  # parameters do not scale with batch
    assert data["total"]["macs"] == 2 * (16 * 16 * 4 * 27 + 4 * 10)
    assert data["conditions"]["resolution"] == [16, 16] and data["conditions"]["batch"] == 2
    rect = json.loads(run("analyze", str(spec), "-f", "json", "--resolution", "16x8"))
    assert rect["rows"][0]["out_shape"] == [4, 16, 8]


@pytest.mark.parametrize("fmt,marker", [("markdown", "| Block | Kind |"), ("csv", "row,name,kind"),
                                        ("json", '"convention"'), ("table", "Total (inference)"),
                                        ("html", "<!DOCTYPE html>")])
def test_output_file_holds_what_stdout_would(tmp_path, fmt, marker):
    out = tmp_path / f"report.{fmt}"
    printed = run("analyze", "resnet50", "--format", fmt, *(["--wide"] if fmt == "table" else []))
    assert run("analyze", "resnet50", "--format", fmt, "--output", str(out)) == ""
    assert out.read_text() == printed
    assert marker in printed
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_csv_totals_are_exact():
    text = run("analyze", "resnet50", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    total = next(r for r in rows if r["row"] == "total")
    assert int(total["params"]) == RESNET50_PARAMS and int(total["macs"]) == RESNET50_MACS


def test_analyze_does_not_import_torch(cli_fresh):
    out, heavy = cli_fresh(["analyze", "resnet50", "--format", "json"])
    assert json.loads(out)["total"]["macs"] == RESNET50_MACS
    assert heavy == []


def test_schema_is_json_schema_of_a_spec(tmp_path):
    schema = json.loads(run("schema"))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"name", "input", "blocks"} <= set(schema["required"])
    out = tmp_path / "spec.schema.json"
    run("schema", "--output", str(out))
    assert json.loads(out.read_text()) == schema


def test_kinds_lists_parameters_with_types_and_defaults():
    from scalelab.blocks import KINDS

    kinds = json.loads(run("kinds", "--format", "json"))
    assert sorted(k["kind"] for k in kinds) == sorted(KINDS)
    conv = next(k for k in kinds if k["kind"] == "conv")
    params = {p["name"]: p for p in conv["parameters"]}
    # out: required unless the conv is depthwise (the loader checks that), and scaled with width
    assert params["out"]["type"] == "int > 0 | null" and params["out"]["scales_with_width"]
    mbconv = {p["name"]: p for p in next(k for k in kinds if k["kind"] == "mbconv")["parameters"]}
    assert mbconv["out"]["required"] and mbconv["out"]["type"] == "int > 0"
    assert mbconv["se"]["type"] == "float >= 0 <= 1 | SEOptions"  # a fraction, or the options mapping
    wrap = {p["name"]: p for p in next(k for k in kinds if k["kind"] == "wrap")["parameters"]}
    assert wrap["body"]["type"] == "list[block]"
    assert params["kernel"]["type"] == "int > 0 | [int > 0, int > 0]" and params["kernel"]["default"] == [3, 3]
    assert params["padding"]["type"] == "'same' | 'valid' | int >= 0 | [int >= 0, int >= 0]"
    assert all(k["summary"] for k in kinds)
    table = run("kinds", "conv")
    assert "convolution" in table and "[int > 0, int > 0]" in table and "padding_mode" in table


def test_zoo_lists_specs_with_their_costs():
    rows = {r["name"]: r for r in json.loads(run("zoo", "--format", "json"))}
    assert rows["resnet50"]["params"] == RESNET50_PARAMS and rows["resnet50"]["macs"] == RESNET50_MACS
    assert rows["resnet50"]["top1"] == pytest.approx(76.13)
    table = run("zoo")
    assert "resnet50" in table and "25.6M" in table and "4.09G" in table


def test_every_command_and_option_has_help():
    group = typer.main.get_command(app)
    help_text = run("--help")
    assert len(group.commands) >= 4
    for name, command in group.commands.items():
        assert command.help, name
        assert name in help_text
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), f"scalelab {name}: {param.name} has no help"


def test_training_only_heads_reported_apart():
    # torchvision googlenet: 6,624,904 params without aux heads, 13,004,888 built with them
    data = json.loads(run("analyze", "googlenet", "--format", "json", "--depth", "1"))
    assert data["total"]["params"] == 6_624_904
    assert data["total"]["macs"] == 1_498_376_192
    assert data["training_only_total"]["params"] == 13_004_888 - 6_624_904
    assert all(r["training_only"] for r in data["training_only_rows"])
    assert not any(r["training_only"] for r in data["rows"])
    assert "Training-only blocks (excluded from the inference total)" in run("analyze", "googlenet")


def test_every_analyze_option_reaches_an_option_group():
    """The command hands its options on as typed groups: an option no group takes would be ignored."""
    import dataclasses
    import inspect

    from scalelab.cli import analyze as command

    groups = (command.NetworkOptions, command.ViewOptions, command.FigureOptions, command.AdviceOptions)
    taken = [f.name for group in groups for f in dataclasses.fields(group)]
    assert sorted(taken) == sorted(inspect.signature(command.analyze).parameters)
