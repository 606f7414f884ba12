"""Fuzzing every command that reads a file or options, from outside, in-process: mutated zoo specs for
`analyze` and `compare`, budgets and output names for `scale`, malformed search reports for `plot`,
bad sources for `import`, malformed CSV tables for `calibrate --from-table`, malformed device profiles.

Whatever the input, a command exits 0 or 2, never with a traceback; on exit 2 every message line is
`error: ...` and names the place (the file, or the option), and no output file is left behind; and it
answers within a time bound. The default run draws a few examples per command; `-m slow` runs the
same properties with many more."""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import invoke, time_bound
from scalelab.devices.profile import profiles_dir
from scalelab.spec.load import zoo_path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "efficientnet_b0-two-step-hard-400MFLOPs-scaling-law.json"
_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
QUICK = settings(max_examples=15, deadline=None, suppress_health_check=_HEALTH)
HEAVY = settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)


def both(body, **strategies):
    """The property ``body`` as two tests: a quick one for the default run, a heavy one under -m slow."""
    return QUICK(given(**strategies)(body)), pytest.mark.slow(HEAVY(given(**strategies)(body)))


# --------------------------------------------------------------------------------------------------
# What every answer must look like


def check(result, places: tuple[str, ...], outputs: tuple[Path, ...] = (), what: object = "") -> None:
    """Exit 0, or exit 2 with `error:` lines naming one of ``places`` and no file of ``outputs``."""
    if result.exit_code not in (0, 2):
        shown = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        pytest.fail(f"{what!r}: exit {result.exit_code}\n{result.output[-3000:]}\n{shown[-6000:]}")
    assert "Traceback" not in result.output, (what, result.output[-3000:])
    if result.exit_code == 0:
        return
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors, (what, result.stderr[-2000:])
    text = "\n".join(errors)
    assert any(place in text for place in places), (what, places, text[:2000])
    for output in outputs:
        assert not output.exists(), (what, output, text[:2000])


# --------------------------------------------------------------------------------------------------
# Specs: zoo specs mutated anywhere

FUZZ_ZOO = ("lenet5", "resnet18", "googlenet", "mobilenet_v3_small", "shufflenet_v2_x1_0", "densenet121",
            "deit_tiny_patch16_224", "swin_t", "mobilevit_xxs", "convnext_tiny", "efficientnet_b0")
DOCUMENTS = {name: yaml.safe_load(zoo_path(name).read_text()) for name in FUZZ_ZOO}


def _paths(node, path=()):
    """Every path into a document, the root's children first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield path + (i,)
            yield from _paths(value, path + (i,))


PATHS = {name: list(_paths(doc)) for name, doc in DOCUMENTS.items()}


def _nested(depth: int, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


_TEXT = st.one_of(st.text(max_size=20), st.text(min_size=300, max_size=3000),
                  st.sampled_from(["", " ", "café", "a b", "-x", "1e3", "0x10", "yes", "0100", "6_4", "\u202e",
                                   "名前", "input", "stem", "layer1.0", "a" * 129, "x\ny", "..", "*", "%", "!!"]))
_NUMBER = st.one_of(st.integers(-10, 10), st.integers(min_value=-(10**30), max_value=10**30),
                    st.sampled_from([0, -1, 2**20, 2**20 + 1, 2**16, 2**40, 2**63, 10**400]),
                    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 1e300]))
_SCALAR = st.one_of(st.none(), st.booleans(), _NUMBER, _TEXT)
GARBAGE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=4), st.dictionaries(_TEXT, _SCALAR, max_size=3),
                    st.builds(_nested, st.integers(1, 400), _SCALAR))


def _parent(document, path):
    for step in path[:-1]:
        document = document[step]
    return document


def _block_names(document) -> list[str]:
    return [b.get("name") or b.get("stage") for b in document.get("blocks", []) if isinstance(b, dict)
            if b.get("name") or b.get("stage")]


@st.composite
def mutated_specs(draw):
    """A zoo spec's document with one or a few mutations: a node replaced or removed, a key added,
    a block duplicated, renamed or wired to a later block (a cycle)."""
    name = draw(st.sampled_from(FUZZ_ZOO), label="spec")
    document = json.loads(json.dumps(DOCUMENTS[name]))
    for _ in range(draw(st.integers(1, 3), label="mutations")):
        how = draw(st.sampled_from(["replace", "remove", "unknown_key", "duplicate", "cycle", "rename"]))
        blocks = document.get("blocks") if isinstance(document, dict) else None
        if how in ("duplicate", "cycle", "rename") and isinstance(blocks, list) and blocks:
            i = draw(st.integers(0, len(blocks) - 1))
            if how == "duplicate":
                blocks.insert(draw(st.integers(0, len(blocks))), json.loads(json.dumps(blocks[i])))
            elif isinstance(blocks[i], dict):
                names = _block_names(document)
                if how == "cycle" and names:
                    later = draw(st.sampled_from(names))
                    blocks[i]["from"] = draw(st.sampled_from([later, [later, later], names[-1]]))
                else:
                    blocks[i]["stage" if "stage" in blocks[i] else "name"] = draw(_TEXT)
            continue
        paths = list(_paths(document))
        if not paths:
            document = draw(GARBAGE)
            continue
        path = draw(st.sampled_from(paths), label="path")
        parent = _parent(document, path)
        if how == "replace":
            parent[path[-1]] = draw(GARBAGE, label="value")
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(_TEXT, label="key")] = draw(GARBAGE)
    return name, document


def _dump(document, unicode: bool) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode, width=10**6)


@st.composite
def spec_texts(draw) -> tuple[str, bytes]:
    """The bytes of a spec file: a mutated document, or a zoo spec's text spliced, cut or re-encoded."""
    name, document = draw(mutated_specs())
    how = draw(st.sampled_from(["document", "document", "document", "splice", "cut", "encoding"]))
    if how == "document":
        return name, _dump(document, draw(st.booleans())).encode("utf-8")
    text = zoo_path(name).read_text()
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        return name, (text[:at] + draw(st.text(min_size=1, max_size=30)) + text[at:]).encode("utf-8", "surrogatepass")
    if how == "cut":
        return name, text[:draw(st.integers(0, len(text)))].encode("utf-8")
    encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "latin-1-garbage"]))
    if encoding == "latin-1-garbage":
        return name, text.encode("utf-8") + b"\n# \xff\xfe\x80\n"
    return name, text.encode(encoding)


def _analyze_spec(tmp_path_factory, case, options):
    name, data = case
    folder = tmp_path_factory.mktemp("spec")
    spec, out = folder / f"{name}.yaml", folder / "out.json"
    spec.write_bytes(data)
    with time_bound():
        result = invoke("analyze", spec, *options, "-o", out)
    check(result, (str(spec),), (out,), what=(data[:3000], options))


ANALYZE_OPTIONS = st.sampled_from([(), ("--level", "1"), ("--mode", "train"), ("--device", "t4", "--dtype", "fp16"),
                                   ("--resolution", "97x61"), ("--batch", "3")])
test_analyze_refuses_mutated_specs_cleanly, test_analyze_refuses_mutated_specs_cleanly_heavy = both(
    _analyze_spec, case=spec_texts(), options=ANALYZE_OPTIONS)


def _compare_specs(tmp_path_factory, case, second, output):
    name, document = case
    folder = tmp_path_factory.mktemp("compare")
    spec, out = folder / f"{name}.yaml", folder / f"out{output}"
    spec.write_text(_dump(document, True), encoding="utf-8")
    with time_bound():
        result = invoke("compare", second, spec, "-o", out)
    check(result, (str(spec), "-o", "--output", str(out)), (out,), what=(document, output))


test_compare_refuses_mutated_specs_cleanly, test_compare_refuses_mutated_specs_cleanly_heavy = both(
    _compare_specs, case=mutated_specs(), second=st.sampled_from(["resnet18", "lenet5"]),
    output=st.sampled_from([".json", ".csv", ".md", ".html", ".txt", ".svg", ".yaml", "", ".JSON", ".tar.gz"]))


# --------------------------------------------------------------------------------------------------
# Options: values of every kind for the options of analyze, explain, compare and scale

_VALUES = st.one_of(st.sampled_from(["", "0", "-1", "1", "3", "2.5", "nan", "inf", "-inf", "1e999", "true", "abc",
                                     "224x", "x224", "224x160x3", "0x0", "65537", "9" * 400, ",", "1,,2", "1,2",
                                     "a" * 5000, "café", "\u00a0", "resnet18", "layer1", "stem", "t4", "fp16",
                                     "train", "adam", "params,macs", "macs,nosuch", "224X160", "٣"]),
                    st.text(max_size=12))
ANALYZE_FLAGS = ["--resolution", "--batch", "--level", "--columns", "--device", "--dtype", "--measure-on", "--mode",
                 "--optimizer", "--freeze-until", "--attention-kernel", "--crops", "--ensemble", "--images",
                 "--epochs", "--format"]
SWITCHES = ["--wide", "--explain-units", "--cache-features", "--no-cache", "--allow-noisy"]


def _analyze_options(tmp_path_factory, spec, pairs, switches, suffix):
    folder = tmp_path_factory.mktemp("options")
    out = folder / f"report{suffix}"
    args = [f"{flag}={value}" for flag, value in pairs] + list(switches)
    with time_bound():
        result = invoke("analyze", spec, *args, "-o", out)
    check(result, tuple(flag for flag, _ in pairs) + tuple(switches) + ("--output", "-o", str(out), "SPEC", spec),
          (out,), what=args)


test_analyze_refuses_bad_options_cleanly, test_analyze_refuses_bad_options_cleanly_heavy = both(
    _analyze_options, spec=st.sampled_from(["resnet18", "googlenet", "deit_tiny_patch16_224"]),
    pairs=st.lists(st.tuples(st.sampled_from(ANALYZE_FLAGS), _VALUES), min_size=1, max_size=4),
    switches=st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True),
    suffix=st.sampled_from([".json", ".csv", ".md", ".html", ".txt", ".png", ".yaml", "", ".", ".json.gz"]))


def _explain_options(tmp_path_factory, spec, block, pairs, suffix):
    folder = tmp_path_factory.mktemp("explain")
    out = folder / f"explain{suffix}"
    args = [f"{flag}={value}" for flag, value in pairs]
    with time_bound():
        result = invoke("explain", spec, *args, "-o", out, *(["--", block] if block is not None else []))
    check(result, tuple(flag for flag, _ in pairs) + ("--block", "BLOCK", "--output", "-o", str(out), "spec", spec),
          (out,), what=(block, args))


test_explain_refuses_bad_options_cleanly, test_explain_refuses_bad_options_cleanly_heavy = both(
    _explain_options, spec=st.sampled_from(["resnet18", "mobilenet_v1", "googlenet"]),
    block=st.one_of(st.none(), _VALUES), pairs=st.lists(st.tuples(st.sampled_from(["--resolution", "--format", "--block"]),
                                                                  _VALUES), max_size=2),
    suffix=st.sampled_from([".json", ".md", ".txt", ".html", ".png", ""]))


# --------------------------------------------------------------------------------------------------
# scale: budgets in every unit form, and garbage; formats and output names

UNITS = ["FLOPs", "MFLOPs", "GFLOPs", "TFLOPs", "flops", "MACs", "GMACs", "Mparams", "params", "Kparams", "ms", "s",
         "us", "MB", "MiB", "GB", "GiB", "KB", "B", "gflops", "M", "G", "", "%", "MFLOP", "mflops", "Mflops"]
_AMOUNTS = st.one_of(st.sampled_from(["400", "0.4", "0", "-1", "1e3", "1e-300", "1e308", "9" * 400, "nan", "inf",
                                      ".5", "5.", "+3", "1_000", "0x10", "", " ", "٣", "1e999"]),
                     st.floats(allow_nan=False, allow_infinity=False).map(repr))
BUDGETS = st.one_of(st.builds(lambda a, u, s: a + s + u, _AMOUNTS, st.sampled_from(UNITS),
                              st.sampled_from(["", "", " "])),
                    st.lists(st.builds(str.__add__, _AMOUNTS, st.sampled_from(UNITS)), min_size=2, max_size=3)
                    .map(",".join), st.text(max_size=15))


def _scale_budget(tmp_path_factory, budget, extra, suffix, fmt):
    folder = tmp_path_factory.mktemp("scale")
    out, reports = folder / f"winner{suffix}", folder / "r"
    args = ["--budget", budget, *extra, "--storage", "memory", "--trials", "2", "--no-charts", "--report-dir", reports,
            "-o", out, *(["--format", fmt] if fmt else [])]
    with time_bound(120):
        result = invoke("scale", "lenet5", *args)
    check(result, ("--budget", "budget", "--format", "--output", "-o", str(out), "--device", "--report-dir", "lenet5"),
          (out, reports), what=args)


test_scale_refuses_bad_budgets_cleanly, test_scale_refuses_bad_budgets_cleanly_heavy = both(
    _scale_budget, budget=BUDGETS, extra=st.sampled_from([(), ("--device", "t4"), ("--flops-convention", "hardware"),
                                                           ("--method", "direct")]),
    suffix=st.sampled_from([".yaml", ".yml", ".json", ".png", ".txt", "", ".YAML"]),
    fmt=st.sampled_from([None, "json", "table", "yaml", "", "csv"]))


# --------------------------------------------------------------------------------------------------
# plot: a search report mutated anywhere

REPORT_DOCUMENT = json.loads(REPORT.read_text(encoding="utf-8"))
REPORT_PATHS = [p for p in _paths(REPORT_DOCUMENT)
                if not (len(p) > 2 and isinstance(p[1], int) and p[1] > 2)]  # the first trials of a list stand for all


@st.composite
def mutated_reports(draw) -> bytes:
    document = json.loads(json.dumps(REPORT_DOCUMENT))
    how = draw(st.sampled_from(["replace", "replace", "remove", "cut", "not_json"]))
    if how == "cut":
        text = json.dumps(document)
        return text[:draw(st.integers(0, len(text) - 1))].encode()
    if how == "not_json":
        return draw(st.sampled_from([b"", b"\xff\xfe", b"[]", b"null", b"1", b'"x"', b"{}", b"\xef\xbb\xbf{}",
                                     b"NaN", b'{"a": ' * 5000]))
    path = draw(st.sampled_from([p for p in REPORT_PATHS if len(p) <= 4]), label="path")
    parent = _parent(document, path)
    if how == "replace":
        parent[path[-1]] = draw(GARBAGE, label="value")
    else:
        del parent[path[-1]]
    return json.dumps(document, allow_nan=True).encode()


def _plot_report(tmp_path_factory, data, chart):
    folder = tmp_path_factory.mktemp("plot")
    report, out = folder / "study.json", folder / "chart.png"
    report.write_bytes(data)
    with time_bound(120):
        result = invoke("plot", report, "--chart", chart, "-o", out)
    check(result, (str(report),), (out,), what=data[:3000])


test_plot_refuses_malformed_reports_cleanly, test_plot_refuses_malformed_reports_cleanly_heavy = both(
    _plot_report, data=mutated_reports(), chart=st.sampled_from(["accuracy", "scaling"]))


# --------------------------------------------------------------------------------------------------
# Device profiles, read by `devices FILE` and `analyze --device FILE`

PROFILES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(profiles_dir().glob("*.yaml"))}


@st.composite
def mutated_profiles(draw) -> bytes:
    name = draw(st.sampled_from(sorted(PROFILES)))
    document = json.loads(json.dumps(PROFILES[name]))
    for _ in range(draw(st.integers(1, 2))):
        paths = list(_paths(document)) if isinstance(document, (dict, list)) else []
        if not paths:
            document = draw(GARBAGE)
            continue
        path = draw(st.sampled_from(paths), label="path")
        parent = _parent(document, path)
        how = draw(st.sampled_from(["replace", "replace", "remove", "unknown_key"]))
        if how == "replace":
            parent[path[-1]] = draw(GARBAGE, label="value")
        elif how == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(_TEXT)] = draw(GARBAGE)
    return _dump(document, True).encode("utf-8")


def _device_profile(tmp_path_factory, data, command):
    folder = tmp_path_factory.mktemp("profile")
    profile, out = folder / "gpu.yaml", folder / "out.json"
    profile.write_bytes(data)
    args = {"devices": ["devices", profile, "--format", "json"],
            "analyze": ["analyze", "mobilenet_v3_small", "--device", profile, "--mode", "train", "-o", out],
            "plot": ["plot", "resnet18", "--breakdown", "latency", "--device", profile, "-o", folder / "b.svg"],
            "compare": ["compare", "resnet18", "lenet5", "--device", profile, "-o", out]}[command]
    with time_bound():
        result = invoke(*args)
    check(result, (str(profile), "device '"), (out, folder / "b.svg"), what=data[:3000])


test_device_profiles_are_refused_cleanly, test_device_profiles_are_refused_cleanly_heavy = both(
    _device_profile, data=mutated_profiles(), command=st.sampled_from(["devices", "analyze", "plot", "compare"]))


# --------------------------------------------------------------------------------------------------
# calibrate --from-table: malformed CSV. Rows name zoo networks only, so that nothing is imported;
# the fit itself runs only where two networks resolve.

HEADER = ["model", "infer_img_size", "infer_samples_per_sec", "infer_batch_size"]
_CELLS = st.one_of(st.sampled_from(["resnet18", "resnet50", "mobilenetv2_100", "efficientnet_b0", "", "224", "160",
                                    "256", "1000.5", "0", "-3", "nan", "inf", "1e400", "1e-400", "224.0", "224.5",
                                    "abc", "\"", "\"a,b\"", " 224 ", "9" * 400, "٣", "1e9", "65536", "# x"]),
                   st.text(max_size=8).filter(lambda s: "\n" not in s and "\r" not in s))


@st.composite
def tables(draw) -> bytes:
    header = list(HEADER)
    how = draw(st.sampled_from(["rows", "rows", "missing_column", "renamed", "empty", "bom", "huge", "ragged"]))
    if how == "empty":
        return draw(st.sampled_from([b"", b"\n\n", b"# only a comment\n", ",".join(HEADER).encode() + b"\n",
                                     b"\xff\xfe\x00m", b"\x00\x00"]))
    if how == "missing_column":
        header.remove(draw(st.sampled_from(HEADER)))
    if how == "renamed":
        header[draw(st.integers(0, 3))] = draw(_CELLS)
    rows = draw(st.lists(st.lists(_CELLS, min_size=len(header), max_size=len(header)), max_size=4))
    if how == "ragged":
        rows = [row[:draw(st.integers(0, len(row)))] + draw(st.lists(_CELLS, max_size=2)) for row in rows] or [[""]]
    if how == "huge":
        rows = [["resnet18", "224", "1000", "256"]] * 20000 + rows
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return (("\ufeff" if how == "bom" else "") + text).encode("utf-8")


def _from_table(tmp_path_factory, monkeypatch_env, data, device):
    folder = tmp_path_factory.mktemp("table")
    table, out = folder / "bench.csv", folder / "fitted.yaml"
    table.write_bytes(data)
    with time_bound(120):
        result = invoke("calibrate", "--from-table", table, "--device", device, "-o", out)
    check(result, (str(table), "--from-table", "--device"), (out,), what=data[:3000])


@pytest.fixture
def monkeypatch_env(tmp_path_factory, monkeypatch):
    """A private cache, so that a model imported from timm is never read from the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


test_calibrate_refuses_malformed_tables_cleanly, test_calibrate_refuses_malformed_tables_cleanly_heavy = both(
    _from_table, data=tables(), device=st.sampled_from(["rtx4090", "x86_cpu", "t4"]))


# --------------------------------------------------------------------------------------------------
# import: sources that name no model, or a model that cannot be captured

MODELS = '''
import torch
from torch import nn


def raises():
    raise RuntimeError("no model today")


def nothing():
    return None


not_callable = 3


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


class Failing(nn.Module):
    def forward(self, x):
        raise ValueError("forward refuses")


class Identity(nn.Module):
    def forward(self, x):
        return x


class OneChannel(Small):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
'''
_SOURCES = st.one_of(
    st.sampled_from(["models.py:raises", "models.py:nothing", "models.py:not_callable", "models.py:Failing",
                     "models.py:Identity", "models.py:OneChannel", "models.py:nosuch", "models.py:", ":Small",
                     "models.py:Small.conv", "broken.py:build", "missing.py:build", "models:Small", "nosuchpkg:build",
                     "json:loads", "math:pi", "collections:OrderedDict", "timm:", "timm:nosuch_model_42", "timm: ",
                     ".", "/", "", "a" * 5000, "models.py:" + "a" * 300, "café.py:x", "models.py:Small:Small",
                     "models.txt:Small", "torchvision.models:nosuch"]),
    st.text(max_size=20))
_IMPORT_OPTIONS = st.sampled_from([(), ("--input", "3x8x8"), ("--input", "1x8x8"), ("--input", "3x2x2"),
                                   ("--resolution", "1"), ("--resolution", "8x9"), ("--input", "3x8"),
                                   ("--input", "0x8x8"), ("--no-fold",), ("--top1", "70")])


def _import_source(tmp_path_factory, monkeypatch, source, options):
    folder = tmp_path_factory.mktemp("import")
    (folder / "models.py").write_text(MODELS)
    (folder / "broken.py").write_text("def build(:\n")
    monkeypatch.chdir(folder)
    out = folder / "spec.yaml"
    with time_bound(300):
        result = invoke("import", *options, "-o", out, "--", source)
    check(result, (source.strip()[:40], "--input", "--resolution", "--top1", "MODEL", "model"), (out,),
          what=(source, options))


test_import_refuses_bad_sources_cleanly, test_import_refuses_bad_sources_cleanly_heavy = both(
    _import_source, source=_SOURCES, options=_IMPORT_OPTIONS)


# --------------------------------------------------------------------------------------------------
# Regressions: inputs the fuzzing above found, each once a traceback or a message naming no place


def test_a_two_step_search_whose_width_reaches_the_range_edge_records_its_trials(tmp_path):
    # lenet5 under 400MFLOPs: step 2 runs phi to the end of --max-width 3, where beta^phi came out as
    # 3.0000000000000004 and the companion study refused the trial (ValueError, exit 1)
    reports = tmp_path / "r"
    result = invoke("scale", "lenet5", "--budget", "400MFLOPs", "--storage", "memory", "--trials", "2",
                    "--no-charts", "--report-dir", reports, "--format", "json")
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    widths = [t["width"] for t in report["two_step"]["phi_trials"]]
    assert max(widths) == 3.0 and min(widths) >= 0.25  # --max-width and --min-width, the defaults


@pytest.mark.parametrize("command", [["analyze", "resnet18"], ["compare", "resnet18", "lenet5"],
                                     ["scale", "lenet5", "--width", "2"],
                                     ["plot", "resnet18", "--breakdown", "latency"]])
def test_a_device_that_is_neither_a_file_nor_a_profile_is_refused_naming_the_option(tmp_path, command):
    # `--device 0` once read "error: 0: no such device profile file or name", naming no option
    out = tmp_path / "out.svg"
    result = invoke(*command, "--device", "0", "-o", out)
    check(result, ("--device",), (out,))
    assert result.exit_code == 2
    assert "Invalid value for '--device': '0': no such device profile file or name" in result.stderr


def test_a_device_name_close_to_a_profile_is_refused_with_the_close_names():
    result = invoke("devices", "tt4")
    assert result.exit_code == 2
    assert "'tt4': no such device profile file or name (did you mean 't4'?)" in result.stderr


@pytest.mark.parametrize("value,rule", [("2.5", "'2.5' is not a whole number"),
                                        ("resnet34,nosuch", "'nosuch': no such file or zoo spec")])
def test_an_ensemble_member_that_names_nothing_is_refused_naming_the_option(tmp_path, value, rule):
    # `--ensemble 2.5` once read "error: 2.5: no such file or zoo spec", naming no option
    out = tmp_path / "out.json"
    result = invoke("analyze", "resnet18", "--ensemble", value, "-o", out)
    assert result.exit_code == 2 and not out.exists()
    assert f"Invalid value for '--ensemble': {rule}" in result.stderr


def _report_with(tmp_path, change) -> Path:
    document = json.loads(REPORT.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "study.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("change,rule", [
    # a null end of an error bar once failed in matplotlib (TypeError, exit 1)
    (lambda d: d["two_step"]["phi_trials"][4].update(high=None), "two_step.phi_trials[4]: an 80% interval needs "
                                                                  "both 'low' and 'high', got low=76.23"),
    (lambda d: d["winner"].update(low=90.0), "winner: the 80% interval [90.0, "),
    (lambda d: d["budgets"][0].pop("text"), "budgets[0]: missing required field 'text'"),
    (lambda d: d.update(latency_error="10%"), "latency_error: must be a valid number"),
])
def test_a_report_field_the_charts_read_is_checked_before_drawing(tmp_path, change, rule):
    report, out = _report_with(tmp_path, change), tmp_path / "chart.png"
    result = invoke("plot", report, "-o", out)
    assert result.exit_code == 2 and not out.exists(), result.output[-2000:]
    assert result.stderr.startswith(f"error: {report}: {rule}"), result.stderr


TABLE_HEADER = "model,infer_img_size,infer_samples_per_sec,infer_batch_size\n"


@pytest.mark.parametrize("rows,rule", [
    ("resnet18,inf,1000,256\n", "bench.csv:2: column 'infer_img_size' (img_size) must be a positive whole number, "
                                "got 'inf'"),  # once OverflowError from int(inf)
    ("resnet18,224,1e400,256\n", "bench.csv:2: column 'infer_samples_per_sec' (throughput) must be a positive "
                                 "number, got '1e400'"),
    ("resnet18,224,1000,256\n\n", None),
])
def test_a_table_value_that_is_not_a_finite_positive_number_is_refused_with_its_line(tmp_path, rows, rule):
    table = tmp_path / "bench.csv"
    table.write_text(TABLE_HEADER + rows, encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090", "-o", tmp_path / "fitted.yaml")
    assert result.exit_code == 2 and not (tmp_path / "fitted.yaml").exists()
    # a single network cannot be fitted with one held out: the table is read, then refused for that
    assert (rule or "bench.csv: 1 model(s) resolved; a fit with one network held out needs at least 2") \
        in result.stderr, result.stderr


def test_a_short_table_row_without_a_model_is_refused_with_its_line(tmp_path):
    # a row cut before its model column once failed on None.strip() (AttributeError, exit 1)
    table = tmp_path / "bench.csv"
    table.write_text("infer_img_size,infer_samples_per_sec,infer_batch_size,model\n224,1000,256\n", encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
    assert result.exit_code == 2
    assert f"error: {table}:2: column 'model' (model) is empty" in result.stderr, result.stderr


def test_a_table_saved_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    # a spreadsheet's UTF-8 export starts with a BOM, which once made the first column '\ufeffmodel'
    table = tmp_path / "bench.csv"
    table.write_text("\ufeff" + TABLE_HEADER + "resnet18,224,1000,256\n", encoding="utf-8")
    result = invoke("calibrate", "--from-table", table, "--device", "rtx4090")
    assert result.exit_code == 2
    assert "1 model(s) resolved; a fit with one network held out needs at least 2" in result.stderr, result.stderr
