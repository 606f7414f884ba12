"""Budgets from human units: every accepted form, the FLOPs conventions, and the refusals."""

from __future__ import annotations

import pytest

from scalelab.errors import ScalelabError
from scalelab.scaling.budget import parse_budget, parse_budgets


@pytest.mark.parametrize("text, metric, limit", [
    ("400MFLOPs", "macs", 400_000_000),  # paper convention: 1 FLOP = 1 multiply-add
    ("0.39GFLOPs", "macs", 390_000_000),
    ("400 MFLOPs", "macs", 400_000_000),
    ("0.4GMACs", "macs", 400_000_000),
    ("400MMACs", "macs", 400_000_000),
    ("1e9FLOPs", "macs", 1_000_000_000),
    ("600kmacs", "macs", 600_000),
    ("5Mparams", "params", 5_000_000),
    ("5M params", "params", 5_000_000),
    ("5.3M parameters", "params", 5_300_000),
    ("2ms", "latency", 2.0),
    ("500us", "latency", 0.5),
    ("0.002s", "latency", 2.0),
    ("64MB", "memory", 64_000_000),
    ("64MiB", "memory", 64 * 1024 * 1024),
    ("1GiB", "memory", 2 ** 30),
    ("512 KB", "memory", 512_000),
])
def test_accepted_forms(text, metric, limit):
    b = parse_budget(text)
    assert b.metric == metric
    assert b.limit == pytest.approx(limit)


def test_hardware_flops_convention_halves_the_macs():
    # hardware convention: a multiply-add is 2 FLOPs, so 400 MFLOPs allow 200 M multiply-adds
    assert parse_budget("400MFLOPs", "hardware").limit == pytest.approx(200_000_000)
    # a budget in MACs does not depend on the FLOPs convention
    assert parse_budget("0.4GMACs", "hardware").limit == pytest.approx(400_000_000)


def test_description_states_the_convention():
    assert "1 FLOP = 1 multiply-add" in parse_budget("400MFLOPs").describe()
    assert "2 FLOPs" in parse_budget("400MFLOPs", "hardware").describe()
    assert "400,000,000 MACs" in parse_budget("400MFLOPs").describe()


def test_usage_and_violation():
    b = parse_budget("400MFLOPs")
    assert b.usage(300_000_000) == pytest.approx(0.75)
    assert b.violation(300_000_000) == pytest.approx(-0.25)  # <= 0: feasible (Optuna's convention)
    assert b.violation(500_000_000) == pytest.approx(0.25)


@pytest.mark.parametrize("text, fragment", [
    ("5M", "ambiguous"),
    ("400", "ambiguous"),
    ("400MFLOPz", "unknown unit 'MFLOPz'"),
    ("fast", "expected a number"),
    ("0ms", "positive"),
    ("", "expected a number"),
])
def test_refused_with_the_accepted_units(text, fragment):
    with pytest.raises(ScalelabError) as err:
        parse_budget(text)
    message = str(err.value)
    assert fragment in message
    assert "accepted units" in message and "400MFLOPs" in message and "64MB" in message


def test_several_budgets_at_once():
    budgets = parse_budgets(["400MFLOPs,5Mparams", "2ms"])
    assert [b.metric for b in budgets] == ["macs", "params", "latency"]


def test_two_budgets_on_one_metric_are_refused():
    with pytest.raises(ScalelabError, match="both limit MACs"):
        parse_budgets(["400MFLOPs", "0.5GMACs"])


def test_bad_convention_is_refused():
    with pytest.raises(ScalelabError, match="FLOPs convention"):
        parse_budget("400MFLOPs", "metric")  # type: ignore[arg-type]
