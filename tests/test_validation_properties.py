"""Property-based: any out-of-bounds, non-finite, boolean or mistyped number put into a zoo spec, and
any bad value given to a numeric option, is refused through the CLI with exit 2, one located
message and no output file, within a time bound (a SIGALRM fails the example that runs too long)."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cli_helpers import invoke, time_bound
from scalelab.cli import options as O
from scalelab.errors import ScalelabError
from scalelab.limits import MAX_CHANNELS
from scalelab.spec.load import parse_spec, zoo_path

ZOO = ("lenet5", "resnet18", "mobilenet_v2", "efficientnet_b0", "googlenet", "alexnet")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _numeric_leaves(data, path=()):
    """Paths of every number written in a document (booleans are flags, not numbers)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _numeric_leaves(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _numeric_leaves(value, path + (i,))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield path, data


def _set(data, path, value):
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _optional(name: str, path: tuple) -> bool:
    """Whether a number of a zoo spec may be left out (then null means "not given", as YAML reads it)."""
    document = yaml.safe_load(zoo_path(name).read_text())
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    try:
        parse_spec(yaml.safe_dump(document), "probe.yaml")
    except ScalelabError:
        return False
    return True


def _takes_fractions(name: str, path: tuple, value) -> bool:
    """Whether a number of a zoo spec is a float field (an expansion ratio written 6 is one)."""
    document = yaml.safe_load(zoo_path(name).read_text())
    _set(document, path, value + 0.5)
    try:
        parse_spec(yaml.safe_dump(document), "probe.yaml")
    except ScalelabError:
        return False
    return True


DOCUMENTS = {name: yaml.safe_load(zoo_path(name).read_text()) for name in ZOO}
LEAVES = [(name, path, value, isinstance(value, float) or _takes_fractions(name, path, value))
          for name, doc in DOCUMENTS.items() for path, value in _numeric_leaves(doc)]

_NOT_A_NUMBER = st.sampled_from([True, False, float("nan"), float("inf"), float("-inf"), "abc", None, [], {}])
# every integer a spec holds is at least 0 and at most 2^20 (README, 'Bounds')
_BAD_INT = st.one_of(
    _NOT_A_NUMBER,
    st.integers(max_value=-1),
    st.integers(min_value=MAX_CHANNELS + 1, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not float(x).is_integer()),
    st.integers(1, 64).map(str),  # "8" is a string, not a count
)


@SETTINGS
@given(leaf=st.sampled_from(LEAVES), data=st.data())
def test_a_bad_number_anywhere_in_a_zoo_spec_is_refused(tmp_path_factory, leaf, data):
    name, path, original, is_float = leaf
    value = data.draw(_NOT_A_NUMBER if is_float else _BAD_INT, label="value")
    assume(value is not None or not _optional(name, path))
    document = yaml.safe_load(zoo_path(name).read_text())
    _set(document, path, value)
    folder = tmp_path_factory.mktemp("spec")
    spec, out = folder / f"{name}.yaml", folder / "out.json"
    spec.write_text(yaml.safe_dump(document, sort_keys=False))
    with time_bound():
        result = invoke("analyze", spec, "--format", "json", "--output", out)
    assert result.exit_code == 2, (path, value, result.output[-1000:])
    # one located line per problem (a bad default reaches every block that takes it), at most 10 and a count
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), (path, value, lines)
    more = lines[-1].startswith("error: (and ")  # "(and N more problems)" closes a list cut at ten
    problems = lines[:-1] if more else lines
    assert len(problems) <= 10 and all(line.startswith(f"error: {spec}:") for line in problems), (path, value, lines)
    assert "Traceback" not in result.output and all(len(line) < 800 for line in lines)
    assert not out.exists()


_YAML_BREAKS = st.sampled_from([
    "duplicate", "nul", "alias_bomb", "recursive_alias", "huge_int", "control_char",
])


def _broken(text: str, how: str, where: int) -> str:
    lines = text.splitlines()
    i = max(1, min(where, len(lines) - 1))
    if how == "duplicate":
        return "name: again\n" + text
    if how == "nul":
        lines[i] += "\x00"
    elif how == "alias_bomb":
        bomb = ["b0: &b0 [1, 1, 1, 1, 1, 1, 1, 1]"] + [f"b{k}: &b{k} [*b{k-1}, *b{k-1}, *b{k-1}, *b{k-1}, "
                                                       f"*b{k-1}, *b{k-1}, *b{k-1}, *b{k-1}]" for k in range(1, 9)]
        return "\n".join(bomb) + "\ndescription: *b8\n" + "\n".join(l for l in lines if not l.startswith("description"))
    elif how == "recursive_alias":
        return "extra: &r [*r]\n" + text
    elif how == "huge_int":
        return "huge: " + "9" * 5000 + "\n" + text
    elif how == "control_char":
        lines[i] += "\x07"
    return "\n".join(lines) + "\n"


@SETTINGS
@given(name=st.sampled_from(ZOO), how=_YAML_BREAKS, where=st.integers(1, 200))
def test_broken_yaml_is_refused_on_one_line(tmp_path_factory, name, how, where):
    folder = tmp_path_factory.mktemp("yaml")
    spec = folder / f"{name}.yaml"
    spec.write_text(_broken(zoo_path(name).read_text(), how, where))
    with time_bound():
        result = invoke("analyze", spec)
    assert result.exit_code == 2, (how, result.output[-1000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}"), (how, result.stderr[:1000])
    assert len(lines[0]) < 600


# --------------------------------------------------------------------------------------------------
# Options

def _outside(parser) -> st.SearchStrategy:
    """Values a parser must refuse: not numbers, not finite, or outside its bounds."""
    if isinstance(parser, O.Count):
        return st.one_of(st.sampled_from(["1.5", "abc", "", "true", "1e3", "nan", "9" * 5000]),
                         st.integers(max_value=parser.low - 1).map(str),
                         st.integers(min_value=parser.high + 1, max_value=10**30).map(str))
    bad = [st.sampled_from(["nan", "inf", "-inf", "1e999", "-1e999", "abc", "", "true"])]
    if parser.high is not None:
        bad.append(st.floats(min_value=parser.high, max_value=1e300, exclude_min=True).map(repr))
    if parser.low is not None:
        bad.append(st.floats(min_value=-1e300, max_value=parser.low, exclude_max=not parser.open_low).map(repr))
    return st.one_of(*bad)


# (arguments before the option, option, its parser)
APPLY = ["scale", "efficientnet_b0"]
SEARCH = ["scale", "efficientnet_b0", "--budget", "400MFLOPs", "--storage", "memory", "--no-charts"]
OPTIONS = [
    (APPLY, "--phi", O.PHI), (APPLY, "--depth", O.DEPTH_MULTIPLIER), (APPLY, "--width", O.WIDTH_MULTIPLIER),
    (APPLY, "--resolution", O.PIXELS), (APPLY + ["--phi", "1"], "--alpha", O.COEFFICIENT),
    (APPLY + ["--phi", "1"], "--gamma", O.COEFFICIENT), (APPLY + ["--phi", "1"], "--divisor", O.DIVISOR),
    (SEARCH, "--max-depth", O.DEPTH_MULTIPLIER), (SEARCH, "--min-resolution", O.RESOLUTION_MULTIPLIER),
    (SEARCH, "--product-tolerance", O.NON_NEGATIVE), (SEARCH, "--phi-step", O.NON_NEGATIVE),
    (SEARCH, "--trials", O.TRIALS), (SEARCH, "--seed", O.SEED), (SEARCH, "--reward-exponent", O.EXPONENT),
    (SEARCH, "--epochs", O.EPOCHS), (SEARCH, "--top", O.ROWS), (SEARCH, "--batch", O.BATCH),
    (["analyze", "resnet18"], "--batch", O.BATCH), (["accuracy", "efficientnet_b0"], "--depth", O.DEPTH_MULTIPLIER),
    (["accuracy", "efficientnet_b0"], "--width", O.WIDTH_MULTIPLIER),
    (["plot", "resnet18", "--breakdown", "macs"], "--batch", O.BATCH),
]


@SETTINGS
@given(option=st.sampled_from(OPTIONS), data=st.data())
def test_a_bad_option_value_is_refused_before_any_work(tmp_path_factory, option, data):
    before, name, parser = option
    value = data.draw(_outside(parser), label="value")
    folder = tmp_path_factory.mktemp("opt")
    output = ["--report-dir", folder / "r"] if before[0] == "scale" and "--budget" in before else []
    with time_bound():
        result = invoke(*before, *output, f"{name}={value}")
    assert result.exit_code == 2, (name, value, result.output[-1000:])
    assert f"Invalid value for '{name}'" in result.output, (name, value, result.output[-1000:])
    assert "Traceback" not in result.output
    assert list(folder.iterdir()) == []  # no report folder, no chart


@pytest.mark.parametrize("parser,value", [(O.PHI, 7.0), (O.DEPTH_MULTIPLIER, 1e4), (O.BATCH, 65536), (O.SEED, 0)])
def test_values_on_the_bounds_are_accepted(parser, value):
    assert parser(str(value) if isinstance(value, int) else repr(value)) == value
    assert math.isfinite(parser(repr(float(value))) if not isinstance(parser, O.Count) else value)
