"""A search reports the width each candidate was asked for and the width it got: channels round to
the divisor, so the multiplier the network's widest feature map got (``width_built``) differs from
the one sampled (``width``); the tables say both, asked -> built, and the JSON names both."""

from __future__ import annotations

import json

from scalelab.analysis import analyze
from scalelab.report.search import candidate_columns, search_report, to_markdown
from scalelab.report.search_schema import check_search_report
from scalelab.scaling.budget import Budget
from scalelab.scaling.candidates import Evaluator
from scalelab.scaling.compound import scale_spec
from scalelab.scaling.search import SearchSettings, run_search
from scalelab.spec import load_spec, parse_spec

TINY = """name: tiny
input: {channels: 3, resolution: 32}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 12, kernel: 3, stride: 2}
  - {stage: s1, repeat: 2, block: {kind: conv, out: 20, kernel: 3}}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""

HEADER = "width asked→built"


def test_a_candidate_reports_the_multiplier_its_widest_feature_map_got():
    ev = Evaluator(load_spec("resnet50"), (Budget("macs", 8e9, "8G"),))
    c = ev.evaluate(1.0, 1.1, 1.0)
    # layer4's 2048 channels x1.1 = 2252.8 -> 2256, the nearest multiple of 8
    assert (c.width, c.width_built) == (1.1, 2256 / 2048)
    cols = dict(candidate_columns({"device": None, "budgets": [{"metric": "macs"}], "objective": "reward",
                                   "accuracy_method": "scaling-law"}))
    assert cols[HEADER](c.as_dict()) == "1.100→1.102"
    assert cols[HEADER]({"width": 1.1}) == "1.100→-"  # a trial stored before the width built was recorded


def _widest(spec) -> int:
    return max(b.out_shape[0] for b in analyze(spec).blocks if len(b.out_shape) == 3)


def test_a_search_report_states_each_trials_width_built_in_its_json_and_tables():
    base = parse_spec(TINY)
    budget = Budget("macs", 2.0 * analyze(base).total.macs, "2x")
    ev = Evaluator(base, (budget,), accuracy_method="proxy")
    result = run_search(ev, SearchSettings((budget,), method="direct", trials=8, seed=3))
    report = json.loads(json.dumps(search_report(result, ev)))
    check_search_report(report, "tiny.json")
    assert "width_built" in report["width_meaning"]
    for t in report["trials"]:
        scaled = scale_spec(base, t["depth_multiplier"], t["width"], t["pixels"])
        assert t["width_built"] == _widest(scaled) / 20  # the stage's 20 channels, the widest
    # 20 channels round in steps of 8: the multiplier built is a multiple of 8 / 20, rarely the one asked
    assert {round(t["width_built"] * 20) % 8 for t in report["trials"]} == {0}
    assert any(abs(t["width_built"] - t["width"]) > 0.01 for t in report["trials"])
    markdown = to_markdown(report)
    w = report["winner"]
    assert f"| {HEADER} |" in markdown
    assert f"width x{w['width']:.3f} asked, x{w['width_built']:.3f} built (widest feature map)" in markdown


def test_the_readme_says_what_the_width_column_shows():
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    c = Evaluator(load_spec("resnet50"), (Budget("macs", 8e9, "8G"),)).evaluate(1.0, 1.1, 1.0)
    built = round(c.width_built * 2048)
    assert f"layer4's 2048 channels become {built}, `1.100→{c.width_built:.3f}`" in readme
    assert f"(`{HEADER}`; JSON `width` and `width_built`)" in readme
