"""Fuzzing every command that reads a file or options, from outside, in-process: mutated zoo specs for
`analyze` and `compare`, budgets and output names for `scale`, malformed search reports for `plot`,
bad sources for `import`, malformed CSV tables for `calibrate --from-table`, malformed device profiles.

Whatever the input, a command exits 0 or 2, never with a traceback; on exit 2 every message line is
`error: ...` and names the place (the file, or the option), and no output file is left behind; and it
answers within a time bound. The default run draws a few examples per command; `-m slow` runs the
same properties with many more."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import invoke, time_bound
from fuzz_inputs import mutated_profiles, mutated_reports, mutated_specs, spec_texts, tables, dump, check

_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
QUICK = settings(max_examples=15, deadline=None, suppress_health_check=_HEALTH)
HEAVY = settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)


def both(body, **strategies):
    """The property ``body`` as two tests: a quick one for the default run, a heavy one under -m slow."""
    return QUICK(given(**strategies)(body)), pytest.mark.slow(HEAVY(given(**strategies)(body)))


# --------------------------------------------------------------------------------------------------
# Specs: zoo specs mutated anywhere


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
    spec.write_text(dump(document, True), encoding="utf-8")
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
# calibrate --from-table: malformed CSV. Most rows name zoo networks; any other name is imported from
# timm into a private cache, or skipped; the fit itself runs only where two networks resolve.


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
