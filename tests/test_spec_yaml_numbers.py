"""Numbers in a spec read as YAML 1.2 reads them (README, 'Bounds'): decimal, 0o octal, 0x hex, and
floats with a dot or an exponent. YAML 1.1's other forms (6_4, 1:04, 0b1000000) are text, and so is
a whole number with a leading zero (0100: octal 64 in YAML 1.1, 100 in YAML 1.2); in a number field
they are refused through the CLI with exit 2, the line and YAML path, and what to write instead."""

from __future__ import annotations

import json

import pytest
import yaml

from cli_helpers import assert_refused, invoke

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
LEADING_ZERO = "a leading zero makes a number octal in YAML 1.1 and decimal in YAML 1.2"


def _write(tmp_path, blocks: str):
    spec = tmp_path / "t.yaml"
    spec.write_text(HEAD + blocks)
    return spec


def _params(result) -> dict[str, int]:
    assert result.exit_code == 0, result.output
    return {r["name"]: r["params"] for r in json.loads(result.stdout)["rows"]}


def test_pyyaml_itself_reads_the_yaml_11_forms_as_numbers():
    # what the loader departs from: PyYAML's YAML 1.1 reading of each form refused below
    assert yaml.safe_load("[0100, 6_4, '1:04', 1:04, 0b1000000, 0.2_5, 0o100]") == [64, 64, "1:04", 64, 64, 0.25, "0o100"]


# column 23 is where the value starts: "  - {kind: conv, out: " is 22 characters
@pytest.mark.parametrize("value, column, hint", [
    ("0100", 23, f"(got '0100'); {LEADING_ZERO}: write 100 for decimal, or 0o100 for octal 64"),
    ("064", 23, f"(got '064'); {LEADING_ZERO}: write 64 for decimal, or 0o64 for octal 52"),
    ("6_4", 23, "(got '6_4'); YAML 1.2, which specs follow, reads 6_4 as text (YAML 1.1 as 64): write 64"),
    ("1:04", 23, "(got '1:04'); YAML 1.2, which specs follow, reads 1:04 as text (YAML 1.1 as 64): write 64"),
    ("0b1000000", 23, "(got '0b1000000'); YAML 1.2, which specs follow, reads 0b1000000 as text (YAML 1.1 as 64)"),
])
def test_a_yaml_11_integer_form_is_refused_with_what_to_write(tmp_path, value, column, hint):
    result = invoke("analyze", _write(tmp_path, f"  - {{kind: conv, out: {value}}}\n"))
    assert_refused(result, f"t.yaml:4:{column}: blocks[0].out: must be a whole number written as one", hint)
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_yaml_11_float_form_is_refused_with_what_to_write(tmp_path):
    result = invoke("analyze", _write(tmp_path, "  - {kind: conv, out: 4}\n  - {kind: dropout, p: 0.2_5}\n"))
    assert_refused(result, "t.yaml:5:24: blocks[1].p: must be a number written as one",
                   "(got '0.2_5'); YAML 1.2, which specs follow, reads 0.2_5 as text (YAML 1.1 as 0.25): write 0.25")


def test_an_explicit_int_tag_on_a_yaml_11_form_is_refused_where_written(tmp_path):
    result = invoke("analyze", _write(tmp_path, "  - {kind: conv, out: !!int 0100}\n"))
    assert_refused(result, "t.yaml:4:23: '0100' is not an integer as YAML 1.2 writes one", "write 100 for decimal")


@pytest.mark.parametrize("value", ["64", "+64", "0o100", "0x40", "0x0040"])
def test_yaml_12_integer_forms_read_as_their_numbers(tmp_path, value):
    params = _params(invoke("analyze", _write(tmp_path, f"  - {{name: c, kind: conv, out: {value}}}\n"),
                            "--format", "json"))
    assert params == {"c": 3 * 64 * 9 + 2 * 64}  # a 3x3 conv 3 -> 64 and its batchnorm


def test_a_leading_zero_where_text_is_expected_is_that_text(tmp_path):
    # a stage named 0100 keeps its four characters: its blocks are 0100.0 and 0100.1
    result = invoke("analyze", _write(tmp_path, "  - {stage: 0100, repeat: 2, block: {kind: conv, out: 4}}\n"),
                    "--format", "json", "--depth", "2")
    assert list(_params(result)) == ["0100.0", "0100.1"]


def test_a_name_that_reads_as_a_number_survives_being_written_and_read_again(tmp_path):
    # the scaled spec is written with such names quoted, or reading it back would make them numbers
    spec = _write(tmp_path, "  - {stage: '1e3', block: {kind: conv, out: 0x10}}\n"
                            "  - {name: '0x10', kind: conv, out: 8, from: '1e3'}\n  - {name: '0100', kind: conv, out: 8}\n")
    out = tmp_path / "scaled.yaml"
    assert invoke("scale", spec, "--width", "2", "--output", out).exit_code == 0
    params = _params(invoke("analyze", out, "--format", "json", "--depth", "2"))
    # widths x2: 16 -> 32 (3x3 from 3), then 8 -> 16 twice (3x3 from 32, then from 16), each with batchnorm
    assert params == {"1e3.0": 3 * 32 * 9 + 64, "0x10": 32 * 16 * 9 + 32, "0100": 16 * 16 * 9 + 32}


def test_yes_and_off_are_text_that_a_flag_still_reads(tmp_path):
    # YAML 1.2: 'on' is text, so it is a stage name; a flag field reads 'yes' as true
    spec = _write(tmp_path, "  - {stage: on, block: {kind: conv, out: 4}}\n"
                            "  - {name: head, kind: linear, out: 2, training_only: yes, from: on}\n"
                            "  - {name: pool, kind: global_avgpool, from: on}\n")
    result = invoke("analyze", spec, "--format", "json", "--depth", "2")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["rows"]] == ["on.0", "pool"]
    assert [r["name"] for r in report["training_only_rows"]] == ["head"]
