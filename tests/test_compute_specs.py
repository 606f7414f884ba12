"""The compute, norm and activation block kinds in specs: over a spread of parameters and ranks each
built block matches its analysis (parameters, output shape, FlopCounterMode MACs), as
tests/test_block_kinds.py checks every kind."""

from __future__ import annotations

import pytest
from compute_strategies import STRATEGIES
from hypothesis import HealthCheck, given, settings
from test_block_kinds import _check


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(kind, count_params, flop_counter_macs):
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[kind])
    def run(example):
        kind, params, shape = example
        _check(kind, params, shape, count_params, flop_counter_macs)

    run()
