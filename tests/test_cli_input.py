"""Command-line input that used to slip through: each is refused while the command line is read (or
before any work), with exit 2, one message naming the option, the value and the rule, and no file
written. The last part checks the mechanism: every option of every command has a parser (or a
choice, or bounds), so an empty value is refused everywhere, not taken as a default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cli_helpers import assert_refused, invoke

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "efficientnet_b0-two-step-hard-400MFLOPs-scaling-law.json"
SEARCH = ["scale", "--budget", "400MFLOPs", "--trials", "2", "--no-charts"]
LONG = "a" * 5000


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh current folder, so that anything a refused command wrote would show."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------------------------------
# Values the system cannot look up, and storages that cannot keep a study

@pytest.mark.parametrize("name,rule", [
    (LONG, "has at most 4,096 characters, got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'... (5,000 characters)"),
    ("specs/" + "b" * 256 + ".yaml", "a file name has at most 255 bytes, got 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'..."),
])
def test_a_long_ensemble_member_is_refused_naming_the_option(here, name, rule):
    result = invoke("analyze", "resnet18", "--ensemble", f"resnet34,{name}", "-o", "r.json")
    assert_refused(result, "--ensemble", rule)
    assert written(here) == []


def test_a_long_spec_argument_is_refused_not_an_oserror(here):
    result = invoke("analyze", LONG)
    assert_refused(result, "SPEC", "has at most 4,096 characters")


def test_a_long_study_name_is_refused_before_the_search(here):
    result = invoke(*SEARCH, "--study", LONG)
    assert_refused(result, "--study", "a study name has at most 200 characters", "(5,000 characters)")
    assert written(here) == []  # no report folder, no study database


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite:///:memory:",
                                 "sqlite:///file::memory:?cache=shared"])
def test_an_in_memory_sqlite_storage_is_refused(here, url):
    result = invoke(*SEARCH, "--storage", url)
    assert_refused(result, "--storage", f"storage '{url}': an in-memory SQLite database cannot be shared or resumed",
                   "--storage memory")
    assert written(here) == []


def test_a_sqlite_file_storage_is_still_accepted(here):
    result = invoke(*SEARCH, "--storage", "sqlite:///studies.db", "--report-dir", "r", "--format", "json")
    assert result.exit_code == 0, result.output
    assert (here / "studies.db").is_file()
    assert json.loads(result.stdout)["storage"] == "sqlite:///studies.db"


# --------------------------------------------------------------------------------------------------
# A model callable that exits

EXITING = """
import os
import sys


def exit3():
    sys.exit(3)


def exit0():
    sys.exit(0)


def exit_on_import():
    raise AssertionError("never called")


if "EXIT_ON_IMPORT" in os.environ:
    sys.exit(0)
"""


@pytest.mark.parametrize("function,code", [("exit3", "3"), ("exit0", "0")])
@pytest.mark.parametrize("command", [["import"], ["analyze"]])
def test_a_callable_that_exits_is_an_error_of_the_model_code(here, function, code, command):
    (here / "model.py").write_text(EXITING)
    out = ["-o", "out.yaml"] if command == ["import"] else ["-o", "out.json"]
    result = invoke(*command, f"model.py:{function}", *out)
    assert_refused(result, f"model.py:{function}: the model's code called sys.exit({code}); a model callable "
                           "must return a torch.nn.Module")
    assert written(here) == ["model.py"]


def test_a_model_file_that_exits_on_import_is_an_error_too(here, monkeypatch):
    (here / "model.py").write_text(EXITING)
    monkeypatch.setenv("EXIT_ON_IMPORT", "1")
    result = invoke("import", "model.py:exit_on_import", "-o", "out.yaml")
    assert_refused(result, "the model's code called sys.exit(0)")
    assert written(here) == ["model.py"]


# --------------------------------------------------------------------------------------------------
# Options that were accepted and should not be

@pytest.mark.parametrize("args,fragments", [
    (SEARCH + ["--dtype", "fp64"], ["--dtype", "unknown dtype 'fp64'", "one of fp32, tf32, fp16, bf16, int8, amp"]),
    (["analyze", "resnet18", "--dtype", ""], ["--dtype", "unknown dtype ''", "one of fp32, tf32, fp16, bf16, int8, amp"]),
    (["compare", "resnet18", "resnet34", "--dtype", "fp64"], ["--dtype", "unknown dtype 'fp64'"]),
    (["compare", "resnet18", "resnet34", "--optimizer", "lamb"], ["--optimizer", "sgd, sgd-momentum, adam", "'lamb'"]),
    (["accuracy", "-m", "bogus"], ["--method", "'bogus' is not one of 'published', 'scaling-law', 'proxy'"]),
    (["accuracy", "--depth", "1.37"], ["--depth applies to the estimate for a SPEC", "not to the published list"]),
    (["accuracy", "--validate", "--width", "2", "-m", "proxy"], ["--width, --method apply to the estimate for a SPEC",
                                                               "not to --validate"]),
    (["import", "torchvision.models:resnet18", "-o", "t.yaml", "-f", "json"],
     ["--format json contradicts --output t.yaml (a yaml file name)"]),
    (["explain", "resnet18", "-k", ""], ["--block", "expected a name, got an empty value"]),
    (["explain", "resnet18", "-o", "e.json", "-f", "text"], ["--format text contradicts --output e.json"]),
    (["compare", "resnet18", "resnet34", "--ensembles", ",".join(map(str, range(1, 51)))],
     ["--ensembles", "at most 8 values, got 50"]),
    (["compare", "resnet18", "resnet34", "--crops", "1,x"], ["--crops", "'x' is not a whole number"]),
    (["compare", "resnet18", "resnet34", "-o", "c.json", "-f", "csv"], ["--format csv contradicts --output c.json"]),
    (SEARCH + ["--storage", ""], ["--storage", "got an empty value"]),
    (SEARCH + ["--study", ""], ["--study", "expected a study name, got an empty value"]),
    (SEARCH + ["--study", "a\nb"], ["--study", "without control characters"]),
    (["--version", "x"], ["--version takes no value and no command, got 'x'"]),
    (["--version", "analyze", "resnet18"], ["--version takes no value and no command, got 'analyze resnet18'"]),
    (SEARCH + ["--worker-of", "-1"], ["--worker-of", "must be between 1 and 4,194,304, got '-1'"]),
    (SEARCH + ["--workers", "100000"], ["--workers", "must be between 1 and 256"]),
    (["analyze", "resnet18", "--ensemble", "101"], ["--ensemble", "must be between 1 and 100, got '101'"]),
    (["analyze", "resnet18", "--ensemble", "resnet34,,resnet50"], ["--ensemble", "expected a count such as 3"]),
])
def test_a_bad_option_value_is_refused_with_the_rule(here, args, fragments):
    result = invoke(*args)
    assert_refused(result, *fragments)
    assert "ready" not in result.stdout
    assert written(here) == []


@pytest.mark.parametrize("command", [["accuracy"], ["compare", "resnet18", "resnet34"], ["explain", "resnet18"],
                                     ["import", "torchvision.models:resnet18"]])
def test_an_output_file_is_checked_before_the_work(here, command):
    # these wrote (and failed) only once their work was done
    result = invoke(*command, "-o", "nosuch/out.json")
    assert_refused(result, "--output nosuch/out.json: folder nosuch does not exist")
    assert written(here) == []


def test_worker_of_names_only_the_parent_process(here):
    # what `scale --workers` passes its helpers is its own pid: any other is refused before a study opens
    other = os.getppid() + 1
    result = invoke(*SEARCH, "--storage", "sqlite:///s.db", "--worker-of", other)
    assert_refused(result, f"--worker-of {other}", f"names the process that started this one ({os.getppid()})")
    assert "ready" not in result.stdout
    assert written(here) == []


def _image_folder(root: Path, classes: dict[str, list[str]]) -> Path:
    for name, files in classes.items():
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f).write_bytes(b"")
    return root


@pytest.mark.parametrize("classes,fragment", [
    ({}, "one sub-folder per class, at least 2; found 0"),
    ({"cat": ["a.png"]}, "at least 2; found 1"),
    ({"cat": ["a.png"], "dog": ["notes.txt"]}, "dog': a class folder without an image"),
])
def test_train_data_without_images_is_refused_before_any_trial(here, classes, fragment):
    data = _image_folder(here / "data", classes)
    data.mkdir(exist_ok=True)
    result = invoke(*SEARCH, "--storage", "memory", "--accuracy", "train", "--data", data, "--report-dir", "r")
    assert_refused(result, "--data", fragment)
    assert not (here / "r").exists()


def test_an_image_folder_with_two_classes_passes_the_check(tmp_path):
    from scalelab.cli.options import image_folder

    data = _image_folder(tmp_path / "d", {"cat": ["a.JPG"], "dog": ["b.png"]})
    assert image_folder(str(data)) == data


def test_data_without_train_accuracy_is_refused(here):
    data = _image_folder(here / "data", {"cat": ["a.png"], "dog": ["b.png"]})
    result = invoke(*SEARCH, "--storage", "memory", "--data", data, "--report-dir", "r")
    assert_refused(result, "--data applies only with --accuracy train")
    assert not (here / "r").exists()


def test_the_version_alone_still_prints():
    from scalelab import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"scalelab {__version__}\n"


def test_an_estimate_with_its_options_still_works():
    from scalelab import load_spec
    from scalelab.scaling.accuracy import estimate_accuracy

    result = invoke("accuracy", "resnet18", "--depth", "1.37", "-m", "scaling-law", "-f", "json")
    assert result.exit_code == 0, result.output
    base = load_spec("resnet18")
    # the options reach the estimator: the library's figure for depth x1.37, not the base's
    assert json.loads(result.stdout)["top1"] == estimate_accuracy(base, 1.37, 1.0, None).top1
    assert estimate_accuracy(base, 1.37, 1.0, None).top1 != estimate_accuracy(base, 1.0, 1.0, None).top1


# --------------------------------------------------------------------------------------------------
# Report values read by `scalelab plot`

@pytest.mark.parametrize("change,message", [
    (lambda r: r.update(seed=float("nan")), "report.json: seed: must be a finite number (got nan)"),
    (lambda r: r["trials"][3].update(value=float("inf")), "report.json: trials[3].value: must be a finite number (got inf)"),
    (lambda r: r["space"].update(extra={"a": [1, float("-inf")]}),
     "report.json: space.extra.a[1]: must be a finite number (got -inf)"),
    (lambda r: r.pop("study"), "report.json: report: missing required field 'study'"),
    (lambda r: r.update(study=""), "report.json: study: String should have at least 1 character"),
])
def test_plot_refuses_non_finite_values_anywhere_and_a_missing_study(tmp_path, change, message):
    report = json.loads(REPORT.read_text())
    change(report)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))  # Python writes NaN and Infinity, as a hand-edited report may hold them
    result = invoke("plot", path, "--output-dir", tmp_path)
    assert_refused(result, message)
    assert written(tmp_path) == ["report.json"]


# --------------------------------------------------------------------------------------------------
# The mechanism: every option is read by a parser, a choice or bounds

#: value-taking options checked first thing in the command, by a function several commands share
CHECKED_IN_COMMAND = {"--resolution"}
#: the arguments each command needs before an option can be tried
BASE = {"analyze": ["resnet18"], "compare": ["resnet18", "resnet34"], "explain": ["resnet18"],
        "verify": ["resnet18"], "import": ["torchvision.models:resnet18"], "plot": ["resnet18"]}


def _value_options():
    import enum
    import typing

    import typer.main

    from scalelab.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            annotation = param.type_descriptor.annotation
            inner = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
            if inner[0] is bool or (isinstance(inner[0], type) and issubclass(inner[0], enum.Enum)):
                continue
            yield name, command, param


def test_every_value_option_has_a_parser_or_bounds():
    unchecked = []
    for name, _, param in _value_options():
        info = param.type_descriptor.parameter_info
        bounded = getattr(info, "min", None) is not None and getattr(info, "max", None) is not None
        if info.parser is None and not bounded and not set(param.opts) & CHECKED_IN_COMMAND:
            unchecked.append(f"{name} {param.opts[0]}")
    assert unchecked == []


def test_an_empty_value_is_refused_by_every_option(here):
    tried = 0
    for name, command, param in _value_options():
        if param.param_type_name == "argument":
            position = [p for p in command.params if p.param_type_name == "argument"].index(param)
            args = [name, *BASE.get(name, [])[:position], ""]
            label = (param.metavar or param.name).strip("[]")
        else:
            args = [name, *BASE.get(name, []), param.opts[0], ""]
            label = param.opts[0]
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and label.lower() in result.output.lower(), (args, result.output)
        tried += 1
    assert tried > 60
    assert written(here) == []


# --------------------------------------------------------------------------------------------------
# Whole classes of input

@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), min_size=1, max_size=20),
       st.integers(0, 3))
def test_a_reference_the_parser_accepts_can_be_looked_up(parts, repeat):
    from scalelab.cli.options import spec_ref

    text = "/".join(parts) * (repeat + 1)
    try:
        accepted = spec_ref(text)
    except Exception as exc:  # refused with a message typer shows: fine
        assert type(exc).__name__ == "PydanticCustomError"
        return
    Path(accepted).is_file()  # never OSError (file name too long) or ValueError (NUL) for an accepted value


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sqlite", "sqlite+pysqlite", "SQLite"]),
       st.sampled_from(["", "/:memory:", "/file::memory:", "/x.db?mode=memory&uri=true"]),
       st.sampled_from(["", "?timeout=5"]))
def test_every_form_of_an_in_memory_sqlite_url_is_refused(scheme, database, query):
    from scalelab.errors import ScalelabError
    from scalelab.scaling.storages import check_url

    url = f"{scheme}://{database}" + (query if "?" not in database else "")
    with pytest.raises(ScalelabError, match="in-memory SQLite"):
        check_url(url)
