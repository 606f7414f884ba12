"""Blocks held by another block (an inception branch, a wrap body) take the previous one's output
only: a kind or a key that cannot mean anything there is refused through the CLI with exit 2, the
YAML path and line of the key at fault, the rule and the value."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.blocks import KINDS

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: stem, kind: conv, out: 8}\n"


def _inception(inner: str) -> str:
    # the inner block is the second of branch 1, on line 9 of the file
    return HEAD + ("  - name: mix\n    kind: inception\n    branches:\n"
                   "      - [{kind: conv, out: 4, kernel: 1}]\n"
                   f"      - [{{kind: conv, out: 4, kernel: 1}}, {inner}]\n")


def _column(text: str, fragment: str) -> int:
    """The 1-based column of ``fragment`` on the file's line 9."""
    return text.splitlines()[8].index(fragment) + 1


# kinds joining several inputs (arity neither one nor zero, a source): found from the registry, so a merge
# kind added later is covered too
MERGES = sorted(kind for kind in KINDS if KINDS[kind].arity not in (0, 1))


def test_the_merge_kinds_are_the_ones_expected():
    assert MERGES == ["add", "attention", "binary", "cat", "concat", "masked_attention", "matmul", "opaque_merge", "stack"]


@pytest.mark.parametrize("kind", MERGES)
def test_a_merge_inside_a_branch_is_refused_at_its_kind(tmp_path, kind):
    inner = f"{{kind: {kind}, op: x, shape: [4]}}" if kind.startswith("opaque") else f"{{kind: {kind}}}"
    inner = f"{{kind: {kind}, op: add}}" if kind == "binary" else inner  # its one required field
    text = _inception(inner)
    spec = tmp_path / "t.yaml"
    spec.write_text(text)
    result = invoke("analyze", spec)
    where = f"t.yaml:9:{_column(text, f'kind: {kind}') + len('kind: ')}"  # the kind's value
    assert_refused(result, where, "blocks[1].branches[1][1].kind: a branch block takes the previous one's output only",
                   f"'{kind}' joins two or more inputs")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key, value, shown", [
    ("from", "stem", "(got ['stem'])"),
    ("training_only", "true", "(got true)"),
    ("training_only", "false", "(got false)"),
    ("name", "inner", "(got 'inner')"),
])
def test_a_key_that_means_nothing_inside_a_branch_is_refused_where_written(tmp_path, key, value, shown):
    text = _inception(f"{{kind: conv, out: 4, {key}: {value}}}")
    spec = tmp_path / "t.yaml"
    spec.write_text(text)
    result = invoke("analyze", spec)
    assert_refused(result, f"t.yaml:9:{_column(text, value + '}')}: blocks[1].branches[1][1].{key}: ", shown)
    assert "branch block" in result.stderr


def test_a_training_only_kind_inside_a_branch_is_refused(tmp_path):
    text = _inception("{kind: aux_classifier}")
    spec = tmp_path / "t.yaml"
    spec.write_text(text)
    assert_refused(invoke("analyze", spec), f"t.yaml:9:{_column(text, 'aux_classifier')}: blocks[1].branches[1][1].kind",
                   "'aux_classifier' is training-only")


def test_a_wrap_body_in_a_stage_follows_the_same_rule(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
                    "  - {stage: s, repeat: 2, block: {kind: wrap, body: [{kind: conv, out: 3, name: c}]}}\n")
    assert_refused(invoke("analyze", spec), "t.yaml:4:", "blocks[0].block.body[0].name: a body block has no name of its own",
                   "(got 'c')")


def test_plain_blocks_inside_a_branch_still_make_a_network(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(_inception("{kind: conv, out: 4, kernel: 3, scale_width: false}"))
    result = invoke("analyze", spec, "--format", "json")
    assert result.exit_code == 0, result.output
    mix = next(r for r in json.loads(result.stdout)["rows"] if r["name"] == "mix")
    # 8x8 positions: branch 0 a 1x1 conv 8 -> 4; branch 1 a 1x1 conv 8 -> 4, then a 3x3 conv 4 -> 4
    assert mix["out_shape"] == [4 + 4, 8, 8]
    assert mix["macs"] == 64 * (8 * 4) + 64 * (8 * 4) + 64 * (4 * 4 * 9)
