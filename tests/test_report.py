"""Report data and formats on a network small enough to work out by hand."""

from __future__ import annotations

import csv
import html
import io
import json

import pytest

from scalelab import analyze, parse_spec
from scalelab.analysis import CONVENTION
from scalelab.report import (
    Column, build_report, default_columns, human_bytes, human_count, human_percent, to_csv, to_html, to_json,
    to_markdown, to_table,
)

# input 3x8x8
#   stem: 3x3 conv 3->4 "same" + BN + ReLU   params 3*4*9 + 2*4 = 116    MACs 8*8*4*3*9 = 6912
#   s.0, s.1: 1x1 conv 4->4 with bias        params 4*4 + 4 = 20 each   MACs 8*8*4*4 = 1024 each
#   aux (training only, from stem): linear 256->2   params 256*2 + 2 = 514   MACs 512
#   gap: global average pool                 params 0                   MACs 0
#   fc: linear 4->10                         params 4*10 + 10 = 50      MACs 40
# inference totals: params 116 + 40 + 50 = 206, MACs 6912 + 2048 + 40 = 9000
# activations (output elements): 256 + 256 + 256 + 4 + 10 = 782
SPEC = """\
name: tiny
description: a network small enough to count by hand
input: {channels: 3, resolution: 8}
blocks:
  - {name: stem, kind: conv, out: 4, kernel: 3}
  - {stage: s, repeat: 2, block: {kind: conv, out: 4, kernel: 1, norm: none, activation: none}}
  - {name: aux, kind: linear, out: 2, from: stem, training_only: true}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.fixture(scope="module")
def tiny():
    return analyze(parse_spec(SPEC, "tiny.yaml"))


def values(rows):
    return {r.name: (r.values["params"], r.values["macs"]) for r in rows}


def test_every_block_with_hand_counted_values(tiny):
    report = build_report(tiny)
    assert values(report.rows) == {"stem": (116, 6912), "s.0": (20, 1024), "s.1": (20, 1024),
                                   "gap": (0, 0), "fc": (50, 40)}
    assert report.total["params"] == 206 and report.total["macs"] == 9000
    assert report.total["activation_elements"] == 782
    assert report.total["activation_bytes"] == 782 * 4
    assert report.rows[0].values["macs_percent"] == pytest.approx(100 * 6912 / 9000)
    assert report.total["macs_percent"] == pytest.approx(100.0)


def test_training_only_heads_are_apart_from_the_total(tiny):
    report = build_report(tiny)
    assert values(report.training_rows) == {"aux": (514, 512)}
    assert report.training_total["params"] == 514
    assert "aux" not in {r.name for r in report.rows}


def test_depth_one_collapses_each_stage(tiny):
    report = build_report(tiny, depth=1)
    assert [r.name for r in report.rows] == ["stem", "s", "gap", "fc"]
    stage = report.rows[1]
    assert (stage.kind, stage.blocks, stage.out_shape) == ("conv x2", ("s.0", "s.1"), (4, 8, 8))
    assert (stage.values["params"], stage.values["macs"]) == (40, 2048)
    assert stage.values["macs_percent"] == pytest.approx(100 * 2048 / 9000)
    assert report.total == build_report(tiny, depth=2).total


def test_batch_scales_work_but_not_parameters():
    report = build_report(analyze(parse_spec(SPEC, "tiny.yaml"), batch=3))
    assert report.total["params"] == 206
    assert report.total["macs"] == 3 * 9000
    assert report.total["activation_elements"] == 3 * 782
    assert report.conditions.batch == 3


@pytest.mark.parametrize("value,text", [
    (0, "0"), (999, "999"), (9536, "9.54K"), (215808, "216K"), (999_400, "999K"), (999_600, "1.00M"),
    (25_557_032, "25.6M"), (4_089_184_256, "4.09G"), (15_470_264_320, "15.5G"), (None, "-"),
])
def test_human_counts(value, text):
    assert human_count(value) == text


@pytest.mark.parametrize("value,text", [
    (1000, "1000 B"), (8192, "8.00 KiB"), (26_103_712, "24.9 MiB"), (3 * 2**30, "3.00 GiB"),
])
def test_human_bytes(value, text):
    assert human_bytes(value) == text


def test_human_percent():
    assert human_percent(100 * 6912 / 9000) == "76.8%"


def test_json_has_exact_integers_units_conditions_and_convention(tiny):
    data = json.loads(to_json(build_report(tiny)))
    assert data["convention"] == CONVENTION
    assert data["conditions"] == {"resolution": [8, 8], "batch": 1, "dtype": "fp32", "bytes_per_element": 4}
    assert set(data["units"]) == {c.key for c in default_columns()}
    assert data["total"]["params"] == 206 and data["total"]["macs"] == 9000
    assert [r["name"] for r in data["rows"]] == ["stem", "s.0", "s.1", "gap", "fc"]
    assert data["rows"][0]["out_shape"] == [4, 8, 8]
    assert data["training_only_rows"][0]["params"] == 514
    assert data["training_only_total"]["macs"] == 512


def test_csv_starts_with_its_header_and_states_its_conditions(tiny):
    text = to_csv(build_report(tiny))
    assert text.startswith("row,name,kind,")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_name = {r["name"]: r for r in rows}
    assert by_name["stem"]["macs"] == "6912" and by_name["stem"]["params"] == "116"
    assert (by_name["stem"]["input"], by_name["stem"]["batch"], by_name["stem"]["dtype"]) == ("8x8", "1", "fp32")
    assert by_name["total (inference)"]["row"] == "total" and by_name["total (inference)"]["macs"] == "9000"
    assert by_name["aux"]["training_only"] == "true"
    assert by_name["total (training-only blocks)"]["params"] == "514"
    assert all(r["spec"] == "tiny" for r in rows)


def test_markdown_and_table_show_human_units_totals_and_the_convention(tiny):
    report = build_report(tiny)
    md = to_markdown(report)
    assert "| Block | Kind | Output | Params | MACs |" in md
    assert "| stem | conv | 4x8x8 | 116 | 6.91K | 76.8% |" in md
    assert "**Total (inference)**" in md and "**9.00K**" in md
    assert "## Training-only blocks" in md
    assert CONVENTION in md and "input 8x8, batch 1" in md
    table = to_table(report, width=200)
    assert "Total (inference)" in table and "Total (training-only blocks)" in table and "6.91K" in table
    assert CONVENTION.split(";")[0] not in table and "--explain-units" in table  # one short footer line
    assert CONVENTION.split(";")[0] in to_table(report, width=200, explain_units=True)
    assert all(line == line.rstrip() for line in table.splitlines())
    assert CONVENTION.split(";")[0] in html.unescape(to_html(report))


def test_an_added_column_reaches_every_format(tiny):
    weight_bytes = Column("weight_bytes", "Weights", "bytes of weights",
                          lambda b, ctx: b.cost.params * ctx.conditions.bytes_per_element, human_bytes)
    peak = Column("peak_probe", "Peak", "elements", lambda b, ctx: 7, summed=False)
    report = build_report(tiny, depth=1, columns=[*default_columns(), weight_bytes, peak])
    assert report.rows[1].values["weight_bytes"] == 40 * 4  # the stage sums its blocks
    assert report.rows[1].values["peak_probe"] is None  # a column that does not add up is not summed
    assert report.total["weight_bytes"] == 206 * 4
    assert json.loads(to_json(report))["units"]["weight_bytes"] == "bytes of weights"
    assert "weight_bytes" in to_csv(report).splitlines()[0]
    assert "| Weights | Peak |" in to_markdown(report)
    assert "824 B" in to_table(report, width=200)
