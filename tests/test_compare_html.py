"""`compare -o x.html`: the same kind of page as `analyze -o x.html` (sortable tables with exact sort
keys, the chart inline, notes and units, nothing fetched), never a terminal dump in <pre>."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from scalelab import analyze
from tests.cli_helpers import invoke


class Page(HTMLParser):
    """Tables as rows of (attributes, text) cells, and what else the page holds."""

    def __init__(self):
        super().__init__()
        self.tables, self.tags, self.external = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.external += [attrs[k] for k in ("src", "href") if k in attrs and not str(attrs[k]).startswith("#")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [attrs, ""]
            self.tables[-1][-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def page_of(path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def column(table, header: str) -> dict:
    """network -> (shown text, sort key) of one column."""
    index = [text for _, text in table[0]].index(header)
    return {row[0][1]: (row[index][1], row[index][0].get("data-key")) for row in table[1:]}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp.html"
    result = invoke("compare", "plain34", "resnet34", "resnet18", "--device", "t4", "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_compare_html_is_a_page_of_sortable_tables_with_the_chart(compared):
    page = page_of(compared)
    assert compared.read_text().startswith("<!DOCTYPE html>")
    assert "pre" not in page.tags  # no terminal text
    assert page.external == []  # readable offline
    assert "svg" in page.tags and page.tags.count("script") == 1  # the chart inline, the sorting script
    figures, ratios, units = page.tables
    assert [text for _, text in figures[0]][:3] == ["Network", "Params", "MACs"]
    assert [row[0][1] for row in figures[1:]] == ["plain34", "resnet34", "resnet18"]
    assert all(cell[0].get("class") == "num" for row in figures[1:] for cell in row[1:])  # numbers right-aligned
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
    assert [text for _, text in variants[0]][:3] == ["Variant", "Models", "Crops"]
    macs = {row[0][1]: int(row[3][0]["data-key"]) for row in variants[1:]}
    r18 = analyze("resnet18").total.macs
    assert len(macs) == 2 * 2 * 2 and macs["resnet18 x3 10-crop"] == 3 * 10 * r18


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str) -> str:
    profile = tempfile.mkdtemp(prefix="scalelab-chromium-")
    try:
        return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_compare_html_renders_and_sorts_in_a_headless_browser(compared, tmp_path):
    shot = tmp_path / "shot.png"
    _browser(f"--screenshot={shot}", "--window-size=1400,1000", compared.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # a drawn page
    # #sort=-2: the third header of the page (MACs of the first table), largest first
    page = Page()
    page.feed(_browser("--dump-dom", "--virtual-time-budget=5000", compared.as_uri() + "#sort=-2"))
    order = sorted(("plain34", "resnet34", "resnet18"), key=lambda n: -analyze(n).total.macs)
    assert [row[0][1] for row in page.tables[0][1:]] == order
