"""Block and stage names follow one rule (README, 'The spec'): 1 to MAX_NAME_CHARS characters of
letters, digits, '_', '-' and '.', starting with a letter, digit or '_', and unique across blocks and
stages ('input' is the network's input). A name that breaks it is refused through the CLI with exit
2, the line and YAML path of the name, the rule and the name quoted short."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.limits import MAX_NAME_CHARS

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
RULE = f"a name is 1 to {MAX_NAME_CHARS} characters: letters, digits, '_', '-' and '.'"


def _analyze(tmp_path, blocks: str, *options):
    spec = tmp_path / "t.yaml"
    spec.write_text(HEAD + blocks)
    return invoke("analyze", spec, *options)


def test_the_bound_is_the_documented_one():
    assert MAX_NAME_CHARS == 128


@pytest.mark.parametrize("blocks, where, shown", [
    ("  - {stage: '', block: {kind: conv, out: 4}}\n", "t.yaml:4:13: blocks[0].stage", "(got '')"),
    ("  - {name: '', kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got '')"),
    ("  - {name: 'a b', kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got 'a b')"),
    ("  - {name: '-k', kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got '-k')"),
    ("  - {name: .a, kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got '.a')"),
    ("  - {name: 'a|b', kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got 'a|b')"),
    ("  - {name: 'caf\u00e9', kind: conv, out: 4}\n", "t.yaml:4:12: blocks[0].name", "(got 'caf\u00e9')"),
    ("  - {name: a, kind: conv, out: 4, from: [input, 'x y']}\n", "t.yaml:4:49: blocks[0].from[1]", "(got 'x y')"),
    ("  - {name: a, kind: conv, out: 4, from: ''}\n", "t.yaml:4:41: blocks[0].from", "(got '')"),
])
def test_a_name_outside_the_rule_is_refused_where_written(tmp_path, blocks, where, shown):
    result = _analyze(tmp_path, blocks)
    assert_refused(result, f"{where}: {RULE}", shown)
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_name_of_a_megabyte_is_refused_and_quoted_short(tmp_path):
    result = _analyze(tmp_path, f"  - {{stage: {'s' * 2**20}, block: {{kind: conv, out: 4}}}}\n")
    assert_refused(result, f"t.yaml:4:13: blocks[0].stage: {RULE}", f"'{'s' * 200}'... ({2**20:,} characters)")
    assert len(result.output) < 1000


def test_a_name_at_the_bound_is_accepted_and_one_past_it_is_not(tmp_path):
    longest = "b" * MAX_NAME_CHARS
    ok = _analyze(tmp_path, f"  - {{name: {longest}, kind: conv, out: 4}}\n", "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert [r["name"] for r in json.loads(ok.stdout)["rows"]] == [longest]
    assert_refused(_analyze(tmp_path, f"  - {{name: {longest}b, kind: conv, out: 4}}\n"), "blocks[0].name", RULE)


def test_the_names_the_importer_and_the_zoo_write_are_accepted(tmp_path):
    result = _analyze(tmp_path, "  - {name: layer1.0.conv1, kind: conv, out: 4}\n"
                                "  - {name: features.denseblock1-x_2, kind: conv, out: 4}\n"
                                "  - {name: '0', kind: conv, out: 4, from: layer1.0.conv1}\n",
                      "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["name"] for r in rows] == ["layer1.0.conv1", "features.denseblock1-x_2", "0"]


@pytest.mark.parametrize("blocks, where, message", [
    # a block, then a stage of its name: from: s would have meant either
    ("  - {name: s, kind: conv, out: 4}\n  - {stage: s, repeat: 2, block: {kind: conv, out: 4}}\n"
     "  - {kind: conv, out: 4, from: s}\n",
     "t.yaml:5:13: blocks[1].stage", "stage name 's' is used twice: the block at blocks[0] has it too"),
    ("  - {stage: s, repeat: 2, block: {kind: conv, out: 4}}\n  - {name: s, kind: conv, out: 4}\n",
     "t.yaml:5:12: blocks[1].name", "block name 's' is used twice: the stage at blocks[0] has it too"),
    ("  - {stage: s, block: {kind: conv, out: 4}}\n  - {stage: s, block: {kind: conv, out: 4}}\n",
     "t.yaml:5:13: blocks[1].stage", "stage name 's' is used twice: the stage at blocks[0] has it too"),
    ("  - {stage: s, repeat: 2, block: {kind: conv, out: 4}}\n  - {name: s.1, kind: conv, out: 4}\n",
     "t.yaml:5:12: blocks[1].name", "block name 's.1' is used twice: the block at blocks[0] has it too"),
    # a default name (kind and count) counts too
    ("  - {stage: conv2, block: {kind: conv, out: 4}}\n  - {kind: conv, out: 4}\n  - {kind: conv, out: 4}\n",
     "t.yaml:6:5: blocks[2]", "block name 'conv2' (its default: kind and count) is used twice"),
    ("  - {stage: input, block: {kind: conv, out: 4}}\n",
     "t.yaml:4:13: blocks[0].stage", "stage name 'input' is used twice: it names the network's input"),
])
def test_a_name_used_twice_across_blocks_and_stages_is_refused(tmp_path, blocks, where, message):
    result = _analyze(tmp_path, blocks)
    assert_refused(result, f"{where}: {message}", "names are unique across blocks and stages")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_stage_name_still_means_its_last_block_in_from(tmp_path):
    result = _analyze(tmp_path, "  - {stage: s, repeat: 2, block: {kind: conv, out: 4}}\n"
                                "  - {name: c, kind: conv, out: 6, from: s}\n", "--format", "json")
    assert result.exit_code == 0, result.output
    # c takes s.1's 4 channels: a 3x3 conv 4 -> 6 at 8x8, with its batchnorm's 2 x 6 parameters
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["c"]["params"] == 4 * 6 * 9 + 2 * 6
