"""Bad input through the CLI: exit code 2, one located message on stderr, no traceback, no output file."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from scalelab.cli import app

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"

# (file name, text, regex the single error line must match: file:line:col, YAML path, rule, value)
CASES = [
    ("unknown_kind.yaml", HEAD + "  - {name: a, kind: botleneck, out: 8}\n",
     r"unknown_kind\.yaml:4:5: blocks\[0\]: unknown kind 'botleneck' \(did you mean 'bottleneck'\?\)"),
    ("missing_field.yaml", HEAD + "  - {name: a, kind: conv}\n",
     r"missing_field\.yaml:4:5: blocks\[0\]: missing required field 'out'"),
    ("negative_stride.yaml", HEAD + "  - {name: a, kind: conv, out: 8, stride: -2}\n",
     r"negative_stride\.yaml:4:43: blocks\[0\]\.stride: must be greater than 0 \(got -2\)$"),
    ("zero_channels.yaml", HEAD + "  - {name: a, kind: conv, out: 0}\n",
     r"zero_channels\.yaml:4:32: blocks\[0\]\.out: must be greater than 0 \(got 0\)"),
    ("valid_5x5_on_3x3.yaml",
     "name: t\ninput: {channels: 3, resolution: 3}\nblocks:\n  - {name: big, kind: conv, out: 8, kernel: 5, padding: valid}\n",
     r"valid_5x5_on_3x3\.yaml:4:5: blocks\[0\]: block 'big' \(conv\) cannot take input 3x3x3: a 5x5 conv .*does not fit a 3x3 map"),
    ("add_mismatch.yaml",
     HEAD + "  - {name: a, kind: conv, out: 8}\n  - {name: b, kind: conv, out: 16, from: input}\n"
            "  - {name: s, kind: add, from: [a, b]}\n",
     r"add_mismatch\.yaml:6:5: blocks\[2\]: block 's' \(add\) cannot take input 8x8x8 and 16x8x8"),
    ("cycle.yaml",
     HEAD + "  - {name: a, kind: conv, out: 8, from: c}\n  - {name: b, kind: conv, out: 8, from: a}\n"
            "  - {name: c, kind: conv, out: 8, from: b}\n",
     r"cycle\.yaml:4:5: blocks\[0\]: from: makes a cycle: a -> b -> c -> a"),
    ("unknown_from.yaml", HEAD + "  - {name: a, kind: conv, out: 8}\n  - {name: b, kind: conv, out: 8, from: aa}\n",
     r"unknown_from\.yaml:5:41: blocks\[1\]\.from: block 'b' takes input from unknown block or stage 'aa' \(did you mean 'a'\?\)"),
    ("syntax.yaml", "name: t\ninput: {channels: 3, resolution: 8\nblocks: [\n",
     r"syntax\.yaml:3:7: YAML syntax error: (did not find )?expected ',' or '\}'"),
    ("empty.yaml", "", r"empty\.yaml: the spec is empty"),
    ("comments_only.yaml", "# nothing here\n", r"comments_only\.yaml: the spec is empty"),
    ("list.yaml", "- a\n- b\n", r"list\.yaml:1:1: a spec must be a mapping .*got a list"),
    ("unknown_field.yaml", HEAD + "  - {name: a, kind: conv, out: 8, strid: 2}\n",
     r"unknown_field\.yaml:4:42: blocks\[0\]\.strid: unknown field 'strid' for kind 'conv' \(did you mean 'stride'\?\)"),
    ("bad_stage.yaml", HEAD + "  - {stage: s, repeat: 0, block: {kind: conv, out: 8}}\n",
     r"bad_stage\.yaml:4:24: blocks\[0\]\.repeat: must be greater than 0 \(got 0\)"),
]


def run(args, cwd=None):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def assert_one_clear_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert re.search(pattern, lines[0]), lines[0]
    assert lines[0].startswith("error: ")


@pytest.mark.parametrize("name,text,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_gives_one_located_message_and_no_output(tmp_path, monkeypatch, name, text, pattern):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    out = tmp_path / "report.json"
    result = run(["analyze", name, "--format", "json", "--output", str(out)])
    assert_one_clear_error(result, pattern)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind either


def test_unknown_zoo_name_suggests_the_closest():
    result = run(["analyze", "resnet-50"])
    assert_one_clear_error(result, r"resnet-50: no such file or zoo spec \(did you mean 'resnet50'\?\)")


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    result = run(["analyze", str(missing)])
    assert_one_clear_error(result, re.escape(str(missing)) + r": no such file or zoo spec")


def test_output_into_missing_folder(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "r.json"
    result = run(["analyze", "resnet50", "--format", "json", "--output", str(target)])
    assert_one_clear_error(result, r"folder .* does not exist")
    assert not target.parent.exists()


@pytest.mark.parametrize("value", ["abc", "224x", "0", "-3"])
def test_bad_resolution_option(value):
    result = run(["analyze", "resnet50", "--resolution", value])
    assert_one_clear_error(result, r"--resolution: ")


@pytest.mark.parametrize("args", [["--batch", "0"], ["--depth", "3"], ["--format", "pdf"]])
def test_out_of_range_options_exit_2_without_traceback(args):
    result = run(["analyze", "resnet50", *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_unknown_kind_in_kinds_command():
    result = run(["kinds", "botleneck"])
    assert_one_clear_error(result, r"unknown kind 'botleneck' \(did you mean 'bottleneck'\?\)")


def test_failure_keeps_an_existing_output_file_intact(tmp_path):
    out = tmp_path / "report.csv"
    out.write_text("previous report\n")
    (tmp_path / "bad.yaml").write_text(HEAD + "  - {name: a, kind: conv, out: 0}\n")
    result = run(["analyze", str(tmp_path / "bad.yaml"), "--format", "csv", "--output", str(out)])
    assert result.exit_code == 2
    assert out.read_text() == "previous report\n"
