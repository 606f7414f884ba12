"""Numbers and YAML from a spec file: every bad value is refused through the CLI with exit 2, one
located line, a short quote of the value and no output file; nothing hangs or blows memory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import invoke
from scalelab.limits import MAX_BLOCKS, MAX_CHANNELS, MAX_REPEAT, MAX_SPEC_BYTES, MAX_YAML_NODES

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
ROOT = Path(__file__).resolve().parents[1]


def refused(tmp_path: Path, text: "str | bytes", *fragments: str) -> str:
    """Analyze ``text`` as t.yaml through the CLI; assert one located error line and no output file."""
    spec = tmp_path / "t.yaml"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out.json"
    result = invoke("analyze", spec, "--format", "json", "--output", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}"), result.stderr[:2000]
    assert "Traceback" not in result.output
    assert not out.exists()
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("field,text", [
    ("out", HEAD + "  - {kind: conv, out: true}\n"),
    ("stride", HEAD + "  - {kind: conv, out: 8, stride: true}\n"),
    ("repeat", HEAD + "  - {stage: s, repeat: true, block: {kind: conv, out: 8}}\n"),
    ("channels", "name: t\ninput: {channels: true, resolution: 8}\nblocks:\n  - {kind: conv, out: 8}\n"),
    ("norm_eps", HEAD + "  - {kind: conv, out: 8, norm_eps: true}\n"),
    ("p", HEAD + "  - {kind: conv, out: 8}\n  - {kind: dropout, p: false}\n"),
])
def test_true_is_never_read_as_one(tmp_path, field, text):
    refused(tmp_path, text, f"{field}: ", "true and false are not numbers")


@pytest.mark.parametrize("value", ["8.0", "'8'", "8.5"])
def test_integers_are_written_as_integers(tmp_path, value):
    refused(tmp_path, HEAD + f"  - {{kind: conv, out: {value}}}\n", "t.yaml:4:23: blocks[0].out: must be")


@pytest.mark.parametrize("field,text", [
    ("expand", HEAD + "  - {kind: mbconv, out: 8, expand: '6.0'}\n"),
    ("p", HEAD + "  - {kind: conv, out: 8}\n  - {kind: dropout, p: \"0.2\"}\n"),
    ("se", HEAD + "  - {kind: mbconv, out: 8, se: '0.25'}\n"),
])
def test_real_numbers_are_written_as_numbers(tmp_path, field, text):
    refused(tmp_path, text, f".{field}: must be a number written as one")


def test_exponent_form_is_a_number_as_in_yaml_1_2(tmp_path):
    # YAML 1.1 (PyYAML) would read 1e-3 as text; the spec loader reads it as 0.001
    spec = tmp_path / "t.yaml"
    spec.write_text(HEAD + "  - {kind: conv, out: 8, norm_eps: 1e-3}\n  - {kind: conv, out: 8, norm_eps: 2.5E-4}\n")
    result = invoke("analyze", spec, "--format", "json")
    assert result.exit_code == 0, result.output
    from scalelab.spec import load_spec

    assert [b.norm_eps for b in load_spec(spec).blocks] == [0.001, 0.00025]


def test_empty_from_is_refused(tmp_path):
    refused(tmp_path, HEAD + "  - {kind: conv, out: 8}\n  - {kind: conv, out: 8, from: []}\n",
            "t.yaml:5:32: blocks[1].from: must name at least one block")


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    refused(tmp_path, HEAD + "  - {kind: conv, out: 8, out: 16}\n", "t.yaml:4:26: duplicate key 'out' (first at line 4)")
    refused(tmp_path, HEAD + "  - kind: conv\n    out: 8\n    stride: 2\n    out: 16\n",
            "t.yaml:7:5: duplicate key 'out' (first at line 5)")
    refused(tmp_path, "name: a\nname: b\ninput: {channels: 3, resolution: 8}\nblocks: [{kind: conv, out: 8}]\n",
            "t.yaml:2:1: duplicate key 'name' (first at line 1)")


@pytest.mark.parametrize("value,rule", [(".inf", "finite"), ("-.inf", "finite"), (".nan", "finite"), ("0", "greater than 0")])
def test_norm_eps_is_finite_and_positive(tmp_path, value, rule):
    refused(tmp_path, HEAD + f"  - {{kind: conv, out: 8, norm_eps: {value}}}\n", "blocks[0].norm_eps: must be", rule)


def test_an_expand_ratio_of_infinity_is_refused(tmp_path):
    refused(tmp_path, HEAD + "  - {kind: conv, out: 8}\n  - {kind: mbconv, out: 8, expand: .inf}\n",
            "blocks[1].expand: must be a finite number")


@pytest.mark.parametrize("digits", [400, 5000, 100_000])
def test_huge_integers_give_a_clean_message(tmp_path, digits):
    line = refused(tmp_path, HEAD + f"  - {{kind: conv, out: {'9' * digits}}}\n")
    assert len(line) < 300, line
    assert "beyond every bound" in line or "at most 1,048,576" in line


def test_sizes_have_bounds(tmp_path):
    refused(tmp_path, HEAD + "  - {kind: conv, out: 99999999999999999999999}\n",
            "blocks[0].out: must be at most 1,048,576")
    refused(tmp_path, HEAD + f"  - {{kind: conv, out: {MAX_CHANNELS + 1}}}\n", "must be at most 1,048,576")
    refused(tmp_path, HEAD.replace("resolution: 8", "resolution: 65537") + "  - {kind: conv, out: 8}\n",
            "t.yaml:2:34: input.resolution: must be at most 65,536")
    refused(tmp_path, HEAD + "  - {kind: conv, out: 8, kernel: 70000}\n", "blocks[0].kernel: must be at most 65,536")


def test_a_repeat_beyond_the_bound_is_refused_at_once(tmp_path):
    start = time.perf_counter()
    refused(tmp_path, HEAD + "  - {stage: s, repeat: 1000000000000000000000000000000, block: {kind: conv, out: 8}}\n",
            "blocks[0].repeat: must be at most 10,000")
    assert time.perf_counter() - start < 60  # it spun until killed before


def test_the_stages_together_have_a_block_bound(tmp_path):
    half = MAX_BLOCKS // 2 + 1
    text = HEAD + "".join(f"  - {{stage: s{i}, repeat: {half}, block: {{kind: conv, out: 8}}}}\n" for i in range(2))
    refused(tmp_path, text, f"the stages repeat to {2 * half:,} blocks; a network may have at most {MAX_BLOCKS:,}")
    assert half <= MAX_REPEAT


def test_a_feature_map_beyond_any_tensor_is_refused(tmp_path):
    # 2^20 channels x 2048 x 2048 = 2^42 elements
    text = "name: t\ninput: {channels: 3, resolution: 2048}\nblocks:\n  - {kind: conv, out: 1048576, kernel: 1}\n"
    refused(tmp_path, text, "block 'conv1' (conv) outputs 1048576x2048x2048 = 4,398,046,511,104 elements", "2^40")


def test_weights_beyond_any_tensor_are_refused(tmp_path):
    # a linear layer 2^20 -> 2^20 holds 2^40 weights and 2^20 biases
    text = ("name: t\ninput: {channels: 1048576, resolution: 1}\nblocks:\n  - {kind: flatten}\n"
            "  - {kind: linear, out: 1048576}\n")
    refused(tmp_path, text, f"block 'linear1' (linear) holds {2**40 + 2**20:,} parameters")


def test_an_add_fed_by_a_training_only_block_is_refused(tmp_path):
    text = HEAD + ("  - {name: a, kind: conv, out: 8}\n  - {name: aux, kind: conv, out: 8, training_only: true}\n"
                   "  - {name: s, kind: add, from: [a, aux]}\n")
    refused(tmp_path, text, "t.yaml:6:32: blocks[2].from: block 's' takes input from training-only block 'aux'")


def test_a_huge_kind_name_is_quoted_short(tmp_path):
    line = refused(tmp_path, HEAD + "  - {kind: " + "x" * 1_000_000 + "}\n", "unknown kind 'xxx", "(1,000,000 characters)")
    assert len(line) < 400


def test_a_huge_unknown_key_is_quoted_short(tmp_path):
    # YAML allows a key over 1024 characters only as an explicit key ('? key')
    line = refused(tmp_path, HEAD + "  - kind: conv\n    out: 8\n    ? " + "k" * 100_000 + "\n    : 1\n", "unknown field")
    assert len(line) < 600


def test_a_file_with_nul_bytes_gets_one_line(tmp_path):
    refused(tmp_path, (HEAD + "  - {kind: conv, out: 8}\n").encode() + b"\x00\x00garbage\n",
            "t.yaml:5:1: the file holds a NUL byte")


def test_control_characters_give_one_line(tmp_path):
    refused(tmp_path, HEAD + "  - {kind: conv, out: 8\x07}\n", "YAML syntax error")


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    text = HEAD + "  - {kind: conv, out: 8}\n" + "#" * MAX_SPEC_BYTES + "\n"
    refused(tmp_path, text, "bytes, more than the 2,097,152 a file may have")


def test_a_recursive_alias_is_refused(tmp_path):
    refused(tmp_path, HEAD + "  - &a [*a]\n", "a YAML alias refers to a node that contains it")


def _alias_bomb(levels: int, where: str) -> str:
    lines = ["name: t", "input: {channels: 3, resolution: 8}", "x0: &x0 [{kind: conv, out: 8}, {kind: conv, out: 8}]"]
    lines += [f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}]" for i in range(1, levels)]
    if where == "description":
        lines += [f"description: *x{levels - 1}", "blocks: [{kind: conv, out: 8}]"]
    else:
        lines += [f"blocks: *x{levels - 1}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["description", "blocks"])
def test_alias_bombs_are_refused_quickly_in_a_real_process(tmp_path, where):
    # 2^25 aliased blocks: expanded, they would take minutes and gigabytes
    spec = tmp_path / "bomb.yaml"
    spec.write_text(_alias_bomb(25, where))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scalelab", "analyze", str(spec)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert re.fullmatch(rf"error: {re.escape(str(spec))}:\d+:\d+: this YAML node expands to more than "
                        rf"{MAX_YAML_NODES:,} nodes .*\n", proc.stderr), proc.stderr[:2000]
    assert time.perf_counter() - start < 120


def test_aliases_under_the_budget_still_work(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(HEAD + "  - &c {kind: conv, out: 8, kernel: 1}\n  - *c\n  - *c\n")
    result = invoke("analyze", spec, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    # 3 -> 8 channels, then 8 -> 8 twice: 1x1 conv weights plus batchnorm's two per channel
    assert [r["params"] for r in rows] == [3 * 8 + 16, 8 * 8 + 16, 8 * 8 + 16]


def test_scaling_past_the_bounds_is_refused_cleanly():
    result = invoke("scale", "efficientnet_b0", "--width", "1000")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "block 'head' at width x1000: out: must be at most 1,048,576 (README, 'Bounds') (got 1280000)" in result.stderr
