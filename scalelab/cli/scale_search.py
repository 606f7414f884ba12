"""`scalelab scale [SPEC] --budget 400MFLOPs`: the budgeted search as the command runs it. The options
become the evaluator and the search settings, checked before anything is written; this process runs
its share of the trials with the local workers (``--workers``); then the report is printed and
written into the report folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import typer

from scalelab import interrupts
from scalelab.cli.app import emit, wrote
from scalelab.cli.local_workers import LocalWorkers, wait_for_start
from scalelab.cli.scale_options import (
    AccuracyMethod, Method, OutputFormat, PricingOptions, ReportOptions, SearchOptions, StudyOptions,
)
from scalelab.errors import ScalelabError
from scalelab.output import FileSet, OutputFolder, write_atomic
from scalelab.report.charts import accuracy_vs_cost, ensemble_chart, scaling_curves
from scalelab.report.compare_plot import draw_ensemble_chart
from scalelab.report.plotting import draw_accuracy_vs_cost, draw_scaling_curves
from scalelab.report.search import print_table, search_report, to_markdown
from scalelab.report.table import rendered, text_console
from scalelab.scaling.budget import parse_budgets
from scalelab.scaling.candidates import Evaluator
from scalelab.scaling.curves import search_curve
from scalelab.scaling.objectives import Objective
from scalelab.scaling.search import SearchSettings, SearchSpace, check_reachable, open_storage, run_search
from scalelab.spec.dump import spec_yaml


@dataclass(frozen=True)
class _Run:
    """One search as this command runs it."""

    evaluator: Evaluator
    settings: SearchSettings
    study: StudyOptions
    storage: str  # the study's storage URL, the default resolved
    crew: LocalWorkers


def check_worker_of(pid: int) -> None:
    """``--worker-of`` is said by `scale --workers` to the helpers it starts: its own pid, their parent's."""
    if pid != os.getppid():
        raise ScalelabError(f"--worker-of {pid}: this option is for the helper processes `scale --workers` starts, and "
                            f"names the process that started this one ({os.getppid()}); use --workers N instead")


def search(base, pricing: PricingOptions, options: SearchOptions, study: StudyOptions, report: ReportOptions) -> None:
    evaluator = _evaluator(base, pricing)
    settings = _settings(options, tuple(evaluator.budgets))
    settings.space.check()
    folder = OutputFolder(report.report_dir, "--report-dir")  # checked now, made when the search starts
    check_reachable(evaluator, settings)  # before anything is written
    if study.storage is not None:
        open_storage(study.storage, study.heartbeat)  # a bad URL fails here, before the report folder is made
    crew = LocalWorkers(study.workers - 1)
    crew.check("memory" if study.storage in ("memory", ":memory:") else study.storage or "sqlite")
    run = _Run(evaluator, settings, study, study.url(report.report_dir), crew)
    with folder:  # a failed run removes the folder again if it made it and left it empty
        _search(run, report)


def _evaluator(base, pricing: PricingOptions):
    budgets = parse_budgets(pricing.budget, pricing.flops_convention.value)
    options: dict = {}
    if pricing.accuracy == AccuracyMethod.train:
        options = {"data": pricing.data, "epochs": pricing.epochs, "seed": pricing.seed}
        if pricing.data is None:
            raise ScalelabError("--accuracy train needs --data DIR (an image folder, torchvision ImageFolder layout)")
    elif pricing.data is not None:
        raise ScalelabError("--data applies only with --accuracy train; add it or drop --data")
    return Evaluator(base, budgets, device=pricing.device, dtype=pricing.dtype, batch=pricing.batch,
                     divisor=pricing.divisor, resolution_multiple=pricing.resolution_multiple,
                     accuracy_method=pricing.accuracy.value, accuracy_options=options)


def _settings(o: SearchOptions, budgets: tuple):
    method = o.method or Method(Objective(o.objective.value, budgets).default_method)
    return SearchSettings(
        budgets, method.value, o.objective.value, o.constraint.value, o.reward_exponent, o.trials, o.seed, o.sampler.value,
        SearchSpace((o.min_depth, o.max_depth), (o.min_width, o.max_width), (o.min_resolution, o.max_resolution)),
        product_tolerance=o.product_tolerance, phi_step=o.phi_step, extrapolation=o.extrapolation.value,
        ensembles=o.ensembles, crops=o.crops,
    )


def _search(run: _Run, options: ReportOptions) -> None:
    result = _run_workers(run)
    if result is None:  # a --workers helper: the process that started it reports
        return
    evaluator, trials = run.evaluator, len(result.trials)
    if trials > run.settings.trials:
        typer.echo(f"note: study '{result.study_name}' already holds {trials} trials, more than "
                   f"--trials {run.settings.trials} (the study's total); none were run, and the report covers all "
                   f"{trials}", err=True)
    interrupts.keep(f"the study's {trials} trials {_kept_in(run.storage)}; the report was not finished: "
                    f"run the same command again to write it")
    estimated = evaluator.accuracy_method == "scaling-law"  # the others would train, build or refuse every point
    report = search_report(result, evaluator, search_curve(evaluator, result, estimated), options.top)
    w = result.winner.candidate
    winner_spec = evaluator.scaled(w.depth_multiplier, w.width, w.resolution)
    stem = _safe_name(result.study_name)
    spec_path = options.output or options.report_dir / f"{stem}.yaml"
    report["winner_spec"] = str(spec_path)

    chart_files = _write_report_set(report, evaluator, options, stem, winner_spec, spec_path)
    _print(report, result.storage, options.format)
    for path in (spec_path, options.report_dir / f"{stem}.json", options.report_dir / f"{stem}.md",
                 *(options.report_dir / name for name in chart_files.values())):
        wrote(path)
    interrupts.keep("the study and its report are complete" + ("" if run.storage == "memory" else f" (study in {run.storage})"))


def _print(report: dict, storage: str, format: OutputFormat) -> None:
    """The report on stdout: JSON, or the tables and how to inspect the study."""
    if format == OutputFormat.json:
        emit(json.dumps(report, indent=1, allow_nan=False), None)
        return
    console = text_console()
    print_table(report, console)
    if storage != "memory":
        console.print(f"Inspect the study: optuna-dashboard {storage}", highlight=False, markup=False,
                      soft_wrap=True)  # a URL is never cut
    emit(rendered(console), None)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _kept_in(storage: str) -> str:
    return "(nothing: --storage memory keeps no trials)" if storage == "memory" else f"are kept in {storage}"


def _write_report_set(report: dict, evaluator, options: ReportOptions, stem: str, winner_spec,
                      spec_path: Path) -> dict[str, str]:
    """Render the JSON and Markdown reports, the winning spec and the charts into a staging folder, then
    move them into place JSON first: an interrupted run never leaves old and new files mixed."""
    report_dir = options.report_dir
    with FileSet(report_dir) as files:
        chart_files = _draw_charts(report, evaluator, files, stem) if options.charts else {}
        report["charts"] = chart_files
        files.write(f"{stem}.json", (json.dumps(report, indent=1, allow_nan=False) + "\n").encode("utf-8"))
        files.write(f"{stem}.md", to_markdown(report, chart_files).encode("utf-8"))
        in_folder = spec_path.parent.resolve() == report_dir.resolve()
        if in_folder:
            files.write(spec_path.name, spec_yaml(winner_spec).encode("utf-8"))
        files.commit(first=[f"{stem}.json", f"{stem}.md"])
    if not in_folder:
        write_atomic(spec_path, spec_yaml(winner_spec).encode("utf-8"))
    return chart_files


def _draw_charts(report: dict, evaluator, files: FileSet, stem: str) -> dict[str, str]:
    """The charts, drawn into the staging folder; their file names by what they show."""
    chart_files: dict[str, str] = {}
    for x in ["macs", "params"] + (["latency"] if evaluator.device else []):
        name = f"{stem}-accuracy-vs-{x}.png"
        draw_accuracy_vs_cost(accuracy_vs_cost(report, x), files.path(name))
        chart_files[f"top-1 vs {x}"] = name
    name = f"{stem}-scaling-curves.png"
    draw_scaling_curves(scaling_curves(report), files.path(name))
    chart_files["scaling curves"] = name
    if report.get("ensembles"):
        name = f"{stem}-ensembles-vs-macs.png"
        draw_ensemble_chart(ensemble_chart(report), files.path(name))
        chart_files["one bigger network or an ensemble"] = name
    return chart_files


def _run_workers(run: _Run):
    """Run this process's share of the trials, with the local worker processes (``--workers``), until
    the study holds its trials; None for a helper worker, or after a Ctrl-C (which exits 130)."""
    crew, study = run.crew, run.study
    interrupts.keep(f"the finished trials {_kept_in(run.storage)}; run the same command again to continue the study")
    result = None
    with interrupts.searching(forward=crew.interrupt) as stop:
        crew.start()
        ready = wait_for_start if study.helper else lambda: crew.start_together(stop.requested)
        try:
            result = run_search(run.evaluator, run.settings, storage=run.storage, study_name=study.study,
                                progress=study.shows_progress, callbacks=[stop.callback], heartbeat=study.heartbeat,
                                stop_requested=stop.requested, trials_only=study.helper, shared=study.shared,
                                ready=ready)
        except ScalelabError:
            if not stop.requested():  # an interrupted study may have no winner yet: that is not the error to show
                crew.interrupt()
                raise
        except BaseException:
            crew.interrupt()
            raise
        finally:
            for note in crew.wait():
                typer.echo(note, err=True)
    if stop.requested():
        interrupts.report_and_exit()
    return result
