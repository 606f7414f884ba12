"""`compare -o x.html`: the same kind of page as `analyze -o x.html` (sortable tables with exact sort
keys, the chart inline, notes and units, nothing fetched), never a terminal dump in <pre>."""

from __future__ import annotations

import pytest
from test_cli_outputs import _browser, _chromium, _Page

from scalelab import analyze
from tests.cli_helpers import invoke


class Page(_Page):
    """The analyze page's parser; each cell also keeps its sort key: [class, text, data-key]."""

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        if tag in ("td", "th") and self.tables:
            self._cell.append(dict(attrs).get("data-key"))


def page_of(path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def column(table, header: str) -> dict:
    """network -> (shown text, sort key) of one column."""
    index = [cell[1] for cell in table[0]].index(header)
    return {row[0][1]: (row[index][1], row[index][2]) for row in table[1:]}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp.html"
    result = invoke("compare", "plain34", "resnet34", "resnet18", "--device", "t4", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_compare_html_is_a_page_of_sortable_tables_with_the_chart(compared):
    page, text = page_of(compared), compared.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<pre" not in text  # no terminal text
    assert page.external == []  # readable offline
    assert page.svgs == 1 and page.scripts == 1  # the chart inline, the sorting script
    figures, ratios, units = page.tables
    assert [cell[1] for cell in figures[0]][:3] == ["Network", "Params", "MACs"]
    assert [row[0][1] for row in figures[1:]] == ["plain34", "resnet34", "resnet18"]
    assert all(cell[0] == "num" for row in figures[1:] for cell in row[1:])  # numbers right-aligned
    # each cell shows human units and sorts by the exact figure
    for name in ("plain34", "resnet34", "resnet18"):
        total = analyze(name).total
        assert column(figures, "Params")[name][1] == repr(total.params)
        assert column(figures, "MACs")[name][1] == repr(total.macs)
    assert column(figures, "Params")["resnet18"][0] == "11.7M"  # torchvision's 11,689,512
    macs = column(ratios, "MACs")
    assert float(macs["resnet18"][1]) == pytest.approx(analyze("resnet18").total.macs / analyze("plain34").total.macs)
    assert macs["plain34"][0] == "x1"
    assert [row[0][1] for row in units[1:]][:2] == ["Params", "MACs"]  # the units table


def test_compare_html_with_ensembles_lists_every_variant(tmp_path):
    out = tmp_path / "v.html"
    result = invoke("compare", "resnet18", "resnet50", "--ensembles", "1,3", "--crops", "1,10", "-o", out)
    assert result.exit_code == 0, result.output
    variants = page_of(out).tables[2]
    assert [cell[1] for cell in variants[0]][:3] == ["Variant", "Models", "Crops"]
    macs = {row[0][1]: int(row[3][2]) for row in variants[1:]}
    r18 = analyze("resnet18").total.macs
    assert len(macs) == 2 * 2 * 2 and macs["resnet18 x3 10-crop"] == 3 * 10 * r18


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_compare_html_renders_and_sorts_in_a_headless_browser(compared, tmp_path):
    shot = tmp_path / "shot.png"
    _browser(f"--screenshot={shot}", "--window-size=1400,1000", compared.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # a drawn page
    # #sort=-2: the third header of the page (MACs of the first table), largest first
    page = Page()
    page.feed(_browser("--dump-dom", "--virtual-time-budget=5000", compared.as_uri() + "#sort=-2").stdout)
    order = sorted(("plain34", "resnet34", "resnet18"), key=lambda n: -analyze(n).total.macs)
    assert [row[0][1] for row in page.tables[0][1:]] == order
