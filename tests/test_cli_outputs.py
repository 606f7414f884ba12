"""Report files as people and scripts use them: the format from the file name, CSV that parses,
a real HTML page (parsed, and rendered in headless Chromium where it is installed), output paths
refused before any work."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cli_helpers import assert_refused, invoke

RESNET50_PARAMS = 25_557_032  # torchvision resnet50
RESNET50_MACS = 4_089_184_256


@pytest.mark.parametrize("suffix,check", [
    (".json", lambda t: json.loads(t)["total"]["macs"] == RESNET50_MACS),
    (".csv", lambda t: int(next(r for r in csv.DictReader(io.StringIO(t)) if r["row"] == "total")["macs"]) == RESNET50_MACS),
    (".md", lambda t: t.startswith("# scalelab analysis of resnet50") and "| **Total (inference)** |" in t),
    (".html", lambda t: t.startswith("<!DOCTYPE html>") and "<table" in t),
    (".txt", lambda t: "Total (inference)" in t and "4.09G" in t and not t.startswith("{")),
])
def test_output_format_follows_the_extension(tmp_path, suffix, check):
    out = tmp_path / f"report{suffix}"
    result = invoke("analyze", "resnet50", "-o", out)
    assert result.exit_code == 0, result.output
    assert check(out.read_text())


@pytest.mark.parametrize("args,fragments", [
    (("--format", "table", "-o", "r.json"), ("--format table contradicts", "r.json")),
    (("--format", "csv", "-o", "r.md"), ("--format csv contradicts", "markdown")),
    (("-o", "r.png"), ("scalelab plot", "--breakdown")),
    (("-o", "r.pdf"), ("scalelab plot",)),
    (("-o", "r.svg"), ("scalelab plot",)),
    (("-o", "r.dat"), ("cannot tell the format", "--format")),
])
def test_contradicting_or_image_outputs_are_refused(tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    assert_refused(invoke("analyze", "resnet50", *args), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_format_with_a_neutral_extension_is_kept(tmp_path):
    out = tmp_path / "report.dat"
    assert invoke("analyze", "resnet50", "--format", "json", "-o", out).exit_code == 0
    assert json.loads(out.read_text())["total"]["params"] == RESNET50_PARAMS


def test_csv_opens_with_its_header_row():
    text = invoke("analyze", "googlenet", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].startswith("row,name,kind,stage,out_shape,training_only,params,macs")
    assert all(r["input"] == "224x224" and r["batch"] == "1" and r["dtype"] == "fp32" for r in rows)
    total = next(r for r in rows if r["row"] == "total")
    assert int(total["params"]) == 6_624_904  # torchvision googlenet without its aux heads
    aux = next(r for r in rows if r["row"] == "training_only_total")
    assert int(aux["params"]) == 13_004_888 - 6_624_904


class _Page(HTMLParser):
    """Collects the tables (cells with their class), scripts, inline SVGs and external references."""

    def __init__(self):
        super().__init__()
        self.tables, self.svgs, self.scripts, self.external = [], 0, 0, []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if key in attrs and not str(attrs[key]).startswith("#"):
                self.external.append(attrs[key])
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [attrs.get("class", ""), ""]
            self.tables[-1][-1].append(self._cell)
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def test_html_is_a_self_contained_report_with_tables_totals_and_a_chart(tmp_path):
    out = tmp_path / "googlenet.html"
    assert invoke("analyze", "googlenet", "-o", out).exit_code == 0
    page = _Page()
    page.feed(out.read_text())
    blocks, training = page.tables[0], page.tables[1]
    headers = [text for _, text in blocks[0]]
    assert headers[:5] == ["Block", "Kind", "Output", "Params", "MACs"]
    assert all(cls == "num" for cls, _ in blocks[1][3:])  # numbers right-aligned
    names = [row[0][1] for row in blocks[1:]]
    assert names[0] == "conv1" and "inception4a" in names and names[-1] == "Total (inference)"
    total = dict(zip(headers, (text for _, text in blocks[-1])))
    assert total["Params"] == "6.62M" and total["MACs"] == "1.50G"
    assert [row[0][1] for row in training[1:]] == ["aux1", "aux2", "Total (training-only blocks)"]
    text = out.read_text()
    assert "input 224x224, batch 1" in text and "multiply-accumulates" in text  # conditions and convention
    assert page.svgs >= 1 and page.scripts == 1
    assert page.external == []  # readable offline: nothing fetched


def _chromium() -> "str | None":
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="scalelab-chromium-")
    try:
        return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--no-first-run", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_html_renders_in_a_headless_browser_and_sorts_by_column(tmp_path):
    out = tmp_path / "resnet50.html"
    assert invoke("analyze", "resnet50", "-o", out).exit_code == 0
    shot = tmp_path / "shot.png"
    _browser(f"--screenshot={shot}", "--window-size=1280,1600", out.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # a drawn page, not blank
    # #sort=-4 sorts by the fifth column (MACs), largest first: the downsampling bottlenecks (373M each)
    dom = _browser("--dump-dom", "--virtual-time-budget=5000", out.as_uri() + "#sort=-4").stdout
    page = _Page()
    page.feed(dom)
    first = [row[0][1] for row in page.tables[0][1:4]]
    assert first == ["layer2.0", "layer3.0", "layer4.0"]  # ties keep execution order
    assert page.tables[0][-1][0][1] == "Total (inference)"  # the total stays last
    # nothing is wider than the window: wide tables scroll inside their own box, long unit texts wrap,
    # the chart scales down
    wide = tmp_path / "wide.html"
    assert invoke("analyze", "googlenet", "--mode", "train", "--device", "t4", "-o", wide).exit_code == 0
    probe = tmp_path / "probe.html"
    probe.write_text(wide.read_text().replace("</body>", "<script>document.title = 'W ' + "
                                             "document.documentElement.scrollWidth + ' ' + "
                                             "document.documentElement.clientWidth;</script></body>"))
    dom = _browser("--dump-dom", "--window-size=1024,800", probe.as_uri()).stdout
    scroll, client = map(int, dom.split("<title>W ", 1)[1].split("<", 1)[0].split())
    assert scroll <= client


# --------------------------------------------------------------------------------------------------
# Output paths


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", [
    ("analyze", "resnet50", "-o"),
    ("schema", "-o"),
    ("calibrate", "-o"),
    ("scale", "--phi", "1", "-o"),
])
def test_output_naming_a_folder_is_refused_before_any_work(tmp_path, command):
    folder = tmp_path / "existing"
    folder.mkdir()
    assert_refused(invoke(*command, folder), str(folder), "is a folder")
    assert _tree(tmp_path) == ["existing"]


@pytest.mark.parametrize("command", [("analyze", "resnet50", "-o"), ("schema", "-o"), ("calibrate", "-o")])
def test_output_under_proc_is_refused_with_the_reason(command):
    assert_refused(invoke(*command, "/proc/scalelab-test.json"), "/proc", "cannot write")


def test_output_into_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("permission bits do not bind this user (root)")
        assert_refused(invoke("analyze", "resnet50", "-o", folder / "r.json"), "cannot write into folder", "ro")
    finally:
        folder.chmod(0o755)


def test_report_dir_under_proc_is_refused_before_the_search():
    result = invoke("scale", "--budget", "400MFLOPs", "--trials", "2", "--report-dir", "/proc/scalelab-reports")
    assert_refused(result, "--report-dir /proc/scalelab-reports", "cannot write into folder /proc")


def test_plot_output_is_checked_like_the_others(tmp_path):
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "-o", "/proc/x.png"), "/proc", "cannot write")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "-o", tmp_path / "no" / "x.png"),
                   "does not exist")


def test_report_dir_that_is_a_file_is_refused_before_the_search(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = invoke("scale", "--budget", "400MFLOPs", "--trials", "2", "--storage", "memory", "--report-dir", target)
    assert_refused(result, "--report-dir", str(target), "not a folder")
    assert _tree(tmp_path) == ["file"]


def test_a_failed_search_leaves_no_empty_report_folder(tmp_path):
    reports = tmp_path / "new" / "reports"
    # 1 MFLOPs is below the smallest candidate the space allows: refused, and nothing is left behind
    result = invoke("scale", "--budget", "1MFLOPs", "--trials", "2", "--storage", "memory", "--report-dir", reports)
    assert result.exit_code == 2, result.output
    assert _tree(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# Each command imports what it uses


def _modules(args: list[str]) -> set[str]:
    code = (f"import contextlib, io, sys\nfrom scalelab.cli import app\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        app({args!r}, standalone_mode=False)\n    except SystemExit:\n        pass\n"
            f"print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def _imported(args: list[str]) -> set[str]:
    return {m.split(".")[0] for m in _modules(args)}


STACK = {"pydantic", "yaml", "networkx", "rich", "matplotlib", "jinja2", "numpy", "torch", "optuna"}


def test_help_imports_only_the_shell():
    assert _imported(["--help"]) & STACK == set()


def test_analyze_json_imports_only_the_analysis_stack():
    assert _imported(["analyze", "resnet50", "--format", "json"]) & STACK == {"pydantic", "yaml"}


def test_analyze_builds_only_the_block_kinds_the_spec_names():
    # resnet50: conv, maxpool, bottleneck (its residual base and SE options), global_avgpool, linear
    kinds = {m.rsplit(".", 1)[1] for m in _modules(["analyze", "resnet50", "--format", "json"])
             if m.startswith("scalelab.blocks.kinds.")}
    assert kinds - {"residual"} == {"conv", "maxpool", "bottleneck", "global_avgpool", "linear"}


def test_scale_writes_into_scalelab_reports_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("scale", "--budget", "400MFLOPs", "--trials", "6", "--storage", "memory", "--no-charts",
                    "--study", "b0", "--format", "json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "scalelab-reports").iterdir()) == ["b0.json", "b0.md", "b0.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == ["scalelab-reports"]  # no staging folder left behind


def test_the_example_reports_are_regenerated_into_reports_explicitly():
    script = (Path(__file__).resolve().parents[1] / "reports" / "regenerate.sh").read_text()
    searches = [line for line in script.splitlines() if " scale " in line]
    assert searches and all("--report-dir reports" in line for line in searches)


@pytest.mark.parametrize("command,name", [
    (("analyze", "resnet50"), "r.json"),
    (("analyze", "resnet50"), "r.txt"),
    (("compare", "resnet18", "resnet34"), "c.html"),
    (("compare", "resnet18", "resnet34"), "c.png"),
    (("schema",), "s.json"),
    (("explain", "resnet18", "-k", "fc"), "e.md"),
    (("accuracy",), "a.md"),
    (("plot", "resnet18", "--breakdown", "macs"), "b.svg"),
])
def test_every_written_file_is_named_on_stderr_and_stdout_stays_empty(tmp_path, command, name):
    out = tmp_path / name
    result = invoke(*command, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1:] == [f"wrote {out}"] and result.stdout == ""
    assert out.stat().st_size > 0


def test_plot_names_each_chart_it_draws(tmp_path):
    result = invoke("plot", "resnet18", "--breakdown", "macs", "--output-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"wrote {tmp_path / 'resnet18-breakdown.png'}"] and result.stdout == ""


@pytest.mark.parametrize("args,message", [
    (("analyze", "resnet50", "--bogus"), "No such option: --bogus"),
    (("analyze", "resnet50", "--level", "3"), "Invalid value for '--level'"),
    (("analyze",), "Missing argument 'SPEC'"),
    (("analyze", "no-such-spec"), "no-such-spec: no such file or zoo spec"),
])
def test_every_error_has_the_same_prefix(args, message):
    """click's usage errors and scalelab's own: 'error: ' and exit code 2, never click's 'Error: '."""
    result = invoke(*args)
    assert_refused(result, message)
    assert "Error:" not in result.output
    assert [line for line in result.stderr.splitlines() if message in line][0].startswith("error: ")


@pytest.mark.parametrize("command", [("zoo",), ("kinds", "mbconv"), ("devices",), ("accuracy",),
                                     ("compare", "plain34", "resnet34", "resnet18")])
def test_a_listing_too_wide_for_the_terminal_cuts_no_name_or_figure(command):
    """At 40 columns a listing is printed whole (wider) rather than squeezed: every spec name, device
    name and figure appears intact; piped, its note is one line."""
    from typer.testing import CliRunner

    from scalelab.cli import app

    narrow = CliRunner().invoke(app, list(command), env={"COLUMNS": "40"})
    piped = CliRunner().invoke(app, list(command), env={"COLUMNS": None})
    assert narrow.exit_code == piped.exit_code == 0, narrow.output
    assert "…" not in narrow.stdout
    if command == ("zoo",):
        assert all(f"│ {name} " in narrow.stdout for name in ("efficientnet_b0", "resnet50", "mobilenet_v2"))
        resnet50 = next(line for line in narrow.stdout.splitlines() if line.startswith("│ resnet50 "))
        assert " 25.6M " in resnet50 and " 4.09G " in resnet50  # RESNET50_PARAMS and _MACS, whole
    if command == ("devices",):
        assert "│ a100 " in narrow.stdout and "│ 2039 " in narrow.stdout
    if command[0] == "compare":  # the paper's like-for-like gap, 28.54 - 24.52 points of top-1 error
        assert "│ +4.02 (like-for-like, published) │" in narrow.stdout
    note = piped.stdout.rstrip("\n").splitlines()[-1]
    assert note.endswith(".") and len(note) > 100  # one line, however long
