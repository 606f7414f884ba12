"""Spec validation messages through the API: the location points at the offending YAML node,
and no input, however malformed, escapes as anything but a ScalelabError."""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalelab import ScalelabError, parse_spec
from scalelab.analysis import analyze
from scalelab.blocks import KINDS

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"


def error_of(text: str) -> str:
    with pytest.raises(ScalelabError) as info:
        analyze(parse_spec(text, "t.yaml"))
    return str(info.value)


def test_error_inside_a_stage_block_points_at_the_field():
    text = HEAD + "  - stage: s\n    repeat: 2\n    block: {kind: conv, out: 8, stride: 0}\n"
    # line 6, column 41 is the 0 after 'stride: '
    assert error_of(text) == "t.yaml:6:41: blocks[0].block.stride: must be greater than 0 (got 0)"


def test_stage_field_error_is_not_mistaken_for_the_stage_name():
    # pydantic tags a stage entry 'stage' in its error location; the document also has a 'stage:' key
    text = HEAD + "  - {stage: s, repeat: -1, block: {kind: conv, out: 8}}\n"
    assert error_of(text) == "t.yaml:4:24: blocks[0].repeat: must be greater than 0 (got -1)"


def test_unknown_field_in_a_stage_suggests_stage_fields():
    text = HEAD + "  - {stage: s, repaet: 2, block: {kind: conv, out: 8}}\n"
    assert error_of(text) == ("t.yaml:4:24: blocks[0].repaet: unknown field 'repaet' (did you mean 'repeat'?)")


def test_error_inside_an_inception_branch_is_located():
    text = HEAD + ("  - name: mix\n    kind: inception\n    branches:\n"
                   "      - [{kind: conv, out: 4, kernel: 1}]\n"
                   "      - [{kind: conv, out: 4, kernel: 1}, {kind: conv, out: -4}]\n")
    message = error_of(text)
    assert message.startswith("t.yaml:8:61: blocks[0].branches[1][1].out: must be greater than 0 (got -4)"), message


def test_a_bad_default_is_named_in_each_block_it_reaches():
    # norm_eps is not written in the blocks: the line is the block's, the path names the key
    text = ("name: t\ninput: {channels: 3, resolution: 8}\ndefaults: {norm_eps: -1.0}\nblocks:\n"
            "  - {kind: conv, out: 8}\n  - {kind: inception, branches: [[{kind: conv, out: 4}]]}\n")
    assert error_of(text).splitlines() == [
        "t.yaml:3:22: defaults.norm_eps: must be greater than 0 (got -1.0)",
        "t.yaml:5:5: blocks[0].norm_eps: must be greater than 0 (got -1.0)",
        "t.yaml:6:35: blocks[1].branches[0][0].norm_eps: must be greater than 0 (got -1.0)",
    ]


def test_unknown_and_missing_kinds_are_named():
    assert error_of(HEAD + "  - {kind: convv, out: 8}\n").startswith(
        "t.yaml:4:5: blocks[0]: unknown kind 'convv' (did you mean 'conv'?)")
    assert error_of(HEAD + "  - {out: 8}\n") == (
        "t.yaml:4:5: blocks[0]: a block needs a 'kind' (or 'stage' with 'block' for a repeated block)")
    assert error_of(HEAD + "  - conv\n") == (
        "t.yaml:4:5: blocks[0]: must be a mapping with a 'kind', such as {kind: conv, out: 64} (got 'conv')")
    assert error_of(HEAD + "  - {stage: s, block: {kind: wrap, body: [{kind: nope}]}}\n").startswith(
        "t.yaml:4:43: blocks[0].block.body[0]: unknown kind 'nope'")


def test_shape_error_inside_a_stage_names_the_repeat():
    text = ("name: t\ninput: {channels: 3, resolution: 4}\nblocks:\n"
            "  - {stage: down, repeat: 3, stride: 2, block: {kind: conv, out: 8, kernel: 3, padding: valid}}\n")
    # 4x4 -> valid 3x3 stride 2 -> 1x1; the second repeat's 3x3 valid conv cannot fit a 1x1 map
    message = error_of(text)
    assert re.match(r"t\.yaml:4:5: blocks\[0\]: block 'down\.1' \(conv\) cannot take input 8x1x1", message), message


def test_enum_value_lists_the_choices():
    text = HEAD + "  - {name: a, kind: conv, out: 8, activation: relu7}\n"
    message = error_of(text)
    assert message.startswith("t.yaml:4:47: blocks[0].activation: must be one of"), message
    assert "'relu6'" in message and "(got 'relu7')" in message


def test_missing_input_section():
    message = error_of("name: t\nblocks:\n  - {kind: conv, out: 8}\n")
    assert message == "t.yaml:1:1: missing required field 'input'"


def test_problems_are_counted_once_per_place():
    # 'stride: 0' stands for (0, 0): pydantic reports each element, but it is one place in the file
    text = HEAD + "  - {name: a, kind: conv, out: 0, stride: 0}\n"
    assert error_of(text).splitlines() == ["t.yaml:4:32: blocks[0].out: must be greater than 0 (got 0)",
                                           "t.yaml:4:43: blocks[0].stride: must be greater than 0 (got 0)"]
    text = HEAD + "  - {name: a, kind: conv, out: 0, stride: [0, 0]}\n"
    assert len(error_of(text).splitlines()) == 3  # out, and each element of the written pair


def test_every_problem_is_shown_located_up_to_ten():
    blocks = "".join(f"  - {{name: b{i}, kind: conv, out: -{i + 1}}}\n" for i in range(12))
    lines = error_of(HEAD + blocks).splitlines()
    assert len(lines) == 11 and lines[-1] == "(and 2 more problems)"
    for i, line in enumerate(lines[:10]):
        assert line.startswith(f"t.yaml:{4 + i}:") and f"blocks[{i}].out: must be greater than 0 (got -{i + 1})" in line


def test_activation_choices_match_the_kinds_listing():
    from scalelab.blocks.layers import ACTIVATIONS

    message = error_of(HEAD + "  - {name: a, kind: conv, out: 8, activation: swishh}\n")
    choices = message.partition("must be one of ")[2].partition(" (got")[0]
    assert set(choices.replace(" or ", ", ").split(", ")) == {f"'{a}'" for a in (*ACTIVATIONS, "swish", "none")}
    assert choices.endswith("'swish' or 'none'") and "did you mean 'swish'?" in message


# --------------------------------------------------------------------------------------------------
# Robustness: any document is either a valid spec or a ScalelabError, never another exception

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=False, width=16),
                    st.sampled_from(["same", "valid", "relu", "a", "input", "", "conv"]))
_block_key = st.sampled_from(["kind", "name", "from", "out", "mid", "kernel", "stride", "padding", "groups",
                              "expand", "se", "branches", "stage", "repeat", "block", "activation", "norm",
                              "training_only", "bogus"])
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_block_key, inner, max_size=4)), max_leaves=8)
_block = st.dictionaries(_block_key, st.one_of(_value, st.sampled_from(sorted(KINDS))), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=st.lists(_block, max_size=4), channels=_value, resolution=_value)
def test_malformed_documents_only_raise_scalelab_errors(blocks, channels, resolution):
    text = yaml.safe_dump({"name": "t", "input": {"channels": channels, "resolution": resolution}, "blocks": blocks})
    try:
        analyze(parse_spec(text, "t.yaml"))
    except ScalelabError as exc:
        lines = str(exc).splitlines()
        assert all(line.startswith("t.yaml") for line in lines[:10]), str(exc)  # one located line per problem
        assert len(lines) <= 10 or (len(lines) == 11 and lines[-1].startswith("(and "))
