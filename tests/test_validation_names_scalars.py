"""Property-based: any text given as a block name, a stage name or a from: entry, and any plain
scalar written where a spec expects a count or a name, either loads with the meaning README ('The
spec', 'Bounds') gives it, or is refused through the CLI with exit 2 and one located message; never
a traceback. The expected outcome is worked out here from the documented rules, not by the loader."""

from __future__ import annotations

import json
import re

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cli_helpers import invoke, time_bound

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RULE = "a name is 1 to 128 characters: letters, digits, '_', '-' and '.'"

# --------------------------------------------------------------------------------------------------
# The documented rules, written out independently of scalelab's code


def name_is_valid(name: str) -> bool:
    """README 'The spec': 1 to 128 characters of ASCII letters, digits, _ - ., not starting with - or ."""
    return 1 <= len(name) <= 128 and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) is not None


def plain_scalar(text: str):
    """What a plain scalar is under README 'Bounds' (YAML 1.2 core schema, and a leading zero is
    text): ('int', n), ('float', x), ('bool', b), ('null', None) or ('text', text)."""
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
        return "int", int(text)
    if re.fullmatch(r"[-+]?0[0-9]+", text):  # YAML 1.2 would read 0100 as 100, YAML 1.1 as 64
        return "text", text
    if re.fullmatch(r"0o[0-7]+", text):
        return "int", int(text[2:], 8)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return "int", int(text[2:], 16)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)", text):
        return "float", text
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return "bool", text.lower() == "true"
    if text in ("", "~", "null", "Null", "NULL"):
        return "null", None
    return "text", text


def _one_located_refusal(result, spec, path: str) -> str:
    assert result.exit_code == 2, result.output[-2000:]
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}:"), lines
    assert f": {path}" in lines[0] and len(lines[0]) < 800, lines
    return lines[0]


def _rows(result) -> dict:
    assert result.exit_code == 0, result.output[-2000:]
    return {r["name"]: r for r in json.loads(result.stdout)["rows"]}


# --------------------------------------------------------------------------------------------------
# Names

HEAD = "name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
_NAME_CHARS = st.sampled_from("abcXYZ019_.-")
NAMES = st.one_of(
    st.text(_NAME_CHARS, min_size=0, max_size=8),                      # mostly valid, some start with - or .
    st.text(min_size=0, max_size=12),                                  # any character: spaces, quotes, unicode, controls
    st.integers(120, 140).map(lambda n: "n" * n),                      # around the length bound
    st.sampled_from(["input", "a", "layer1.0.conv1", "s.0", "conv1", "1e3", "0x10", "yes", "a\n", " a", "caf\u00e9"]),
)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar holding exactly ``text``: printable ASCII as is, the rest escaped."""
    return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08x}" for c in text) + '"'


@SETTINGS
@given(name=NAMES, place=st.sampled_from(["name", "stage", "from"]))
@example(name="", place="stage").via("the issue's stage named ''")
@example(name="s" * 2**20, place="stage").via("a name of 1 MB")
def test_any_name_loads_as_itself_or_is_refused_with_the_rule(tmp_path_factory, name, place):
    q = _quoted(name)
    blocks, path = {
        "name": (f"  - {{name: {q}, kind: conv, out: 4}}\n", "blocks[0].name"),
        "stage": (f"  - {{stage: {q}, repeat: 2, block: {{kind: conv, out: 4}}}}\n", "blocks[0].stage"),
        "from": (f"  - {{name: a, kind: conv, out: 4}}\n  - {{name: b, kind: conv, out: 5, from: {q}}}\n",
                 "blocks[1].from"),
    }[place]
    spec = tmp_path_factory.mktemp("names") / "t.yaml"
    spec.write_text(HEAD + blocks)
    with time_bound():
        result = invoke("analyze", spec, "--format", "json", "--depth", "2")
    if not name_is_valid(name):
        assert RULE in _one_located_refusal(result, spec, path)
    elif place == "from":
        _from_outcome(result, spec, name)
    elif name == "input":  # the network's input has that name
        assert "is used twice: it names the network's input" in _one_located_refusal(result, spec, path)
    else:
        assert list(_rows(result)) == ([name] if place == "name" else [f"{name}.0", f"{name}.1"])


def _from_outcome(result, spec, name: str) -> None:
    """from: names the input, block a (4 channels), block b itself, or nothing."""
    if name in ("input", "a"):
        channels = 3 if name == "input" else 4
        assert _rows(result)["b"]["params"] == channels * 5 * 9 + 2 * 5  # a 3x3 conv to 5 and a batchnorm
    elif name == "b":
        assert "from: makes a cycle: b -> b" in _one_located_refusal(result, spec, "blocks[1]")
    else:
        assert f"takes input from unknown block or stage '{name}'" in _one_located_refusal(result, spec, "blocks[1].from")


# --------------------------------------------------------------------------------------------------
# Plain scalars

_DIGITS = st.text("0123456789", min_size=1, max_size=7)
_SIGN = st.sampled_from(["", "", "+", "-"])
SCALARS = st.one_of(
    st.builds(lambda s, d: s + d, _SIGN, _DIGITS),                                    # 64, 0100, -0, +5
    st.builds(lambda d, i: d[:i] + "_" + d[i:], _DIGITS, st.integers(0, 7)),         # 6_4
    st.builds(lambda a, b: f"{a}:{b:02d}", st.integers(0, 99), st.integers(0, 59)),  # 1:04
    st.builds(lambda p, h: p + h, st.sampled_from(["0o", "0O", "0x", "0X", "0b", "-0x", "+0o"]),
              st.text("0123456789abcdefABCDEF_", min_size=0, max_size=5)),          # 0o100, 0x40, 0b11
    st.builds(lambda s, a, b, e: f"{s}{a}.{b}{e}", _SIGN, st.text("0123456789_", max_size=3),
              st.text("0123456789_", max_size=3), st.sampled_from(["", "e3", "E-2", "e+1"])),  # 1.5, 0.2_5, .5e1
    st.builds(lambda d, e: f"{d}{e}", _DIGITS, st.sampled_from(["e3", "E-2", "e+1", "e"])),  # 1e3
    st.sampled_from([".inf", "-.inf", ".nan", ".NaN", "true", "False", "yes", "no", "on", "off", "y", "~",
                     "null", "2024-01-01", "0", "00", "abc", "1.0"]),
)


@SETTINGS
@given(text=SCALARS)
@example(text="0100").via("octal 64 in YAML 1.1")
@example(text="6_4").via("64 in YAML 1.1")
@example(text="1:04").via("64 in YAML 1.1 (base 60)")
def test_any_plain_scalar_as_a_count_reads_as_yaml_12_or_is_refused(tmp_path_factory, text):
    spec = tmp_path_factory.mktemp("count") / "t.yaml"
    spec.write_text(HEAD + f"  - name: c\n    kind: conv\n    out: {text}\n")
    with time_bound():
        result = invoke("analyze", spec, "--format", "json")
    kind, value = plain_scalar(text)
    if kind == "int" and 1 <= value <= 2**20:  # README 'Bounds': channels 1 to 2^20
        assert _rows(result)["c"]["params"] == 3 * value * 9 + 2 * value  # a 3x3 conv 3 -> out, a batchnorm
        return
    if kind == "null":  # null is "not given", as YAML reads it, and a conv needs its out
        assert "missing required field 'out'" in _one_located_refusal(result, spec, "blocks[0]")
        return
    line = _one_located_refusal(result, spec, "blocks[0].out")
    assert line.startswith(f"error: {spec}:6:10: ")  # where the value is written
    if kind == "text":
        reading = yaml.safe_load(f"x: {text}")["x"]  # PyYAML's YAML 1.1 reading
        if re.fullmatch(r"[-+]?0[0-9]+", text):
            assert f"(got '{text}'); a leading zero makes a number octal in YAML 1.1" in line
        elif isinstance(reading, (int, float)) and not isinstance(reading, bool):
            assert f"(got '{text}'); YAML 1.2, which specs follow, reads {text} as text (YAML 1.1 as" in line


@SETTINGS
@given(text=SCALARS)
def test_any_plain_scalar_as_a_stage_name_is_text_or_refused(tmp_path_factory, text):
    spec = tmp_path_factory.mktemp("stage") / "t.yaml"
    spec.write_text(HEAD + f"  - stage: {text}\n    block: {{kind: conv, out: 4}}\n")
    with time_bound():
        result = invoke("analyze", spec, "--format", "json", "--depth", "2")
    kind, value = plain_scalar(text)
    if kind == "text" and name_is_valid(value):
        assert list(_rows(result)) == [f"{value}.0"]
    elif kind == "text":
        assert RULE in _one_located_refusal(result, spec, "blocks[0].stage")
    else:  # a number, a boolean or null is not a name
        assert "must be a valid string" in _one_located_refusal(result, spec, "blocks[0].stage")
