"""`scalelab scale [SPEC] --budget 400MFLOPs`: the budgeted compound-scaling search; with
``--phi`` or ``--depth/--width/--resolution`` it applies one scaling and writes the new spec."""

from __future__ import annotations

import json
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab import interrupts
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly, wrote
from scalelab.errors import ScalelabError
from scalelab.output import FileSet, OutputFolder, check_output_file, write_atomic
from scalelab.scaling.storages import DEFAULT_HEARTBEAT, GRACE_FACTOR

DEFAULT_BASE = "efficientnet_b0"
DEFAULT_REPORT_DIR = Path("scalelab-reports")


class Method(str, Enum):
    direct = "direct"
    two_step = "two-step"


class ObjectiveKind(str, Enum):
    reward = "reward"
    pareto = "pareto"


class ConstraintKind(str, Enum):
    hard = "hard"
    soft = "soft"


class AccuracyMethod(str, Enum):
    scaling_law = "scaling-law"
    published = "published"
    proxy = "proxy"
    train = "train"


class SamplerKind(str, Enum):
    tpe = "tpe"
    random = "random"
    nsga2 = "nsga2"
    gp = "gp"


class FlopsConventionKind(str, Enum):
    paper = "paper"
    hardware = "hardware"


class Extrapolation(str, Enum):
    avoid = "avoid"
    allow = "allow"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


@app.command()
@friendly
def scale(
    spec: Optional[str] = typer.Argument(None, parser=O.SPEC, help=f"Base spec file or zoo name (default: {DEFAULT_BASE})."),
    budget: list[str] = typer.Option([], "--budget", "-b", metavar="BUDGET", parser=O.BUDGET, help=(
        "Budget(s): 400MFLOPs, 0.4GMACs, 5Mparams, 2ms (needs --device), 64MB / 1GiB (inference peak). "
        "Repeat the option or separate with commas; a bare count such as 5M is refused as ambiguous.")),
    flops_convention: FlopsConventionKind = typer.Option(FlopsConventionKind.paper, "--flops-convention", help=(
        "paper: 1 FLOP = 1 multiply-add (EfficientNet-B0 is 0.39B FLOPs); hardware: 1 multiply-add = 2 FLOPs.")),
    device: Optional[str] = typer.Option(None, "--device", parser=O.PROFILE, help="Device profile for predicted latency (see `scalelab devices`)."),
    dtype: str = typer.Option("fp32", "--dtype", parser=O.DTYPE, help="Data type for latency and memory: fp32, fp16, bf16 or int8."),
    batch: int = typer.Option(1, "--batch", parser=O.BATCH, help="Batch size for latency and memory."),
    phi: Optional[float] = typer.Option(None, "--phi", parser=O.PHI, help="Apply compound scaling d=alpha^phi, w=beta^phi, r=gamma^phi."),
    depth: Optional[float] = typer.Option(None, "--depth", parser=O.DEPTH_MULTIPLIER, help="Apply a depth multiplier (stage repeats, rounded up)."),
    width: Optional[float] = typer.Option(None, "--width", parser=O.WIDTH_MULTIPLIER, help="Apply a width multiplier (channels, to the divisor)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", parser=O.PIXELS, help="Apply an input resolution in pixels."),
    alpha: float = typer.Option(1.2, "--alpha", parser=O.COEFFICIENT, help="Depth coefficient for --phi (EfficientNet: 1.2)."),
    beta: float = typer.Option(1.1, "--beta", parser=O.COEFFICIENT, help="Width coefficient for --phi (EfficientNet: 1.1)."),
    gamma: float = typer.Option(1.15, "--gamma", parser=O.COEFFICIENT, help="Resolution coefficient for --phi (EfficientNet: 1.15)."),
    method: Optional[Method] = typer.Option(None, "--method", help=(
        "two-step (default; direct with --objective pareto): EfficientNet's method, alpha, beta, gamma at phi = 1 "
        "then the largest phi within the budget; direct: search (d, w, r) freely.")),
    objective: ObjectiveKind = typer.Option(ObjectiveKind.reward, "--objective", help="reward: MnasNet ACC x (cost/T)^w; pareto: accuracy vs cost."),
    constraint: ConstraintKind = typer.Option(ConstraintKind.hard, "--constraint", help="hard: budgets are Optuna constraints; soft: w on both sides."),
    reward_exponent: float = typer.Option(-0.07, "--reward-exponent", parser=O.EXPONENT, help="w of the soft MnasNet reward."),
    trials: int = typer.Option(100, "--trials", parser=O.TRIALS, help="Total trials of the study, counting every worker's (a resumed study runs only the rest)."),
    seed: int = typer.Option(0, "--seed", parser=O.SEED, help="Sampler seed (each worker's: this plus the number of its first trial)."),
    sampler: SamplerKind = typer.Option(SamplerKind.tpe, "--sampler", help="Optuna sampler."),
    storage: Optional[str] = typer.Option(None, "--storage", parser=O.STORAGE, help=(
        "Optuna storage URL (default: sqlite:///REPORT_DIR/studies.db; 'memory' keeps nothing; an in-memory SQLite URL "
        "is refused: it could be neither shared nor resumed).")),
    study: Optional[str] = typer.Option(None, "--study", parser=O.STUDY, help="Study name (default: from the base, method and budgets); the same name and storage resume."),
    workers: int = typer.Option(1, "--workers", parser=O.WORKERS, help=(
        "Worker processes on this machine, sharing the study (needs a database --storage). Run the same command on "
        "other machines against one PostgreSQL to add theirs; --trials counts the trials of all of them.")),
    heartbeat: int = typer.Option(DEFAULT_HEARTBEAT, "--heartbeat", parser=O.HEARTBEAT, help=(
        f"Seconds between a running trial's heartbeats; a trial silent {GRACE_FACTOR} times as long is taken as the "
        "trial of a dead worker and run again.")),
    worker_of: Optional[int] = typer.Option(None, "--worker-of", parser=O.PID, hidden=True, help="Run trials only, for --workers."),
    accuracy: AccuracyMethod = typer.Option(AccuracyMethod.scaling_law, "--accuracy", help="How candidates' accuracy is obtained."),
    extrapolation: Extrapolation = typer.Option(Extrapolation.avoid, "--extrapolation", help=(
        "avoid: search only networks whose scaling-law estimate lies inside the estimator's fitted range (where none "
        "there meets the budgets, the whole ranges, and the output says so); allow: the whole ranges (extrapolated "
        "estimates flagged).")),
    data: Optional[Path] = typer.Option(None, "--data", parser=O.DATA_FOLDER, help="Image folder (ImageFolder layout) for --accuracy train."),
    epochs: int = typer.Option(3, "--epochs", parser=O.EPOCHS, help="Training epochs per candidate for --accuracy train."),
    min_depth: float = typer.Option(0.25, "--min-depth", parser=O.DEPTH_MULTIPLIER, help="Smallest depth multiplier searched."),
    max_depth: float = typer.Option(4.0, "--max-depth", parser=O.DEPTH_MULTIPLIER, help="Largest depth multiplier searched."),
    min_width: float = typer.Option(0.25, "--min-width", parser=O.WIDTH_MULTIPLIER, help="Smallest width multiplier searched."),
    max_width: float = typer.Option(3.0, "--max-width", parser=O.WIDTH_MULTIPLIER, help="Largest width multiplier searched."),
    min_resolution: float = typer.Option(0.25, "--min-resolution", parser=O.RESOLUTION_MULTIPLIER, help="Smallest resolution multiplier."),
    max_resolution: float = typer.Option(3.0, "--max-resolution", parser=O.RESOLUTION_MULTIPLIER, help="Largest resolution multiplier."),
    divisor: int = typer.Option(8, "--divisor", parser=O.DIVISOR, help="Channels round to a multiple of this."),
    resolution_multiple: int = typer.Option(1, "--resolution-multiple", parser=O.PIXELS, help="Input size rounds to a multiple of this."),
    ensembles: tuple = typer.Option("1", "--ensembles", parser=O.ENSEMBLE_SIZES, metavar="K,K,...", help=(
        "Let each candidate also be an ensemble of K copies of its scaled network, e.g. 1,2,3: MACs and "
        "parameters x K, latency x K (members one after another), memory K x the weights plus one member's "
        "activations; top-1 by the ensemble-gain law from the network's estimate. Direct: K is sampled with "
        "d, w, r; two-step: step 2 runs once per K and crop count.")),
    crops: tuple = typer.Option("1", "--crops", parser=O.CROP_COUNTS, metavar="N,N,...", help=(
        "Let each candidate also be tested on N crops per image, e.g. 1,10 (the 10-crop test): MACs x N per "
        "image, the same parameters, latency and activations at batch x N. Combines with --ensembles.")),
    product_tolerance: float = typer.Option(0.1, "--product-tolerance", parser=O.NON_NEGATIVE, help="Two-step: |alpha*beta^2*gamma^2 - 2| allowed."),
    phi_step: float = typer.Option(0.0, "--phi-step", parser=O.NON_NEGATIVE, help="Two-step: phi in steps of this (0: continuous)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the (winning) spec YAML here."),
    report_dir: Path = typer.Option(DEFAULT_REPORT_DIR, "--report-dir", parser=O.FOLDER, help=(
        "Folder for the JSON/Markdown report, the winning spec and the charts (created if missing; the default "
        "SQLite study storage lives there too).")),
    charts: bool = typer.Option(True, "--charts/--no-charts", help="Draw the charts into the report folder."),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table for people, json for scripts."),
    top: int = typer.Option(10, "--top", parser=O.ROWS, help="Candidates listed."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
) -> None:
    """Search the best compound scaling of a network under a budget, or apply one scaling.

    Accuracy is estimated (and every output says how); costs follow the counting convention of
    `scalelab analyze`; studies persist in an Optuna storage and resume under the same name.

    With --ensembles 1,3 --crops 1,10 each candidate may also be an ensemble and/or multi-crop test of its
    scaled network under the same budget; the report and its ensembles chart show where one bigger
    network beats an ensemble of smaller ones. Example: scalelab scale efficientnet_b0 --budget 2GFLOPs
    --method direct --ensembles 1,2,3 --crops 1,10.
    """
    from scalelab.spec import load_spec

    interrupts.reset()
    check_output_file(output)
    if worker_of is not None:
        _check_worker_of(worker_of)
    applying = phi is not None or depth is not None or width is not None or resolution is not None
    if applying and budget:
        raise ScalelabError("give either --budget (search) or --phi / --depth / --width / --resolution (apply a scaling), not both")
    if not applying and not budget:
        raise ScalelabError("nothing to do: give --budget (e.g. --budget 400MFLOPs) to search, or --phi / --depth / "
                            "--width / --resolution to apply a scaling")
    if phi is not None and (depth is not None or width is not None or resolution is not None):
        raise ScalelabError("--phi sets depth, width and resolution together; do not combine it with --depth/--width/--resolution")
    base = load_spec(spec or DEFAULT_BASE)
    if applying:
        _apply(base, phi, depth, width, resolution, alpha, beta, gamma, divisor, resolution_multiple, output, format)
        return

    from scalelab.scaling.budget import parse_budgets
    from scalelab.scaling.candidates import Evaluator
    from scalelab.scaling.search import SearchSettings, SearchSpace, check_reachable

    budgets = parse_budgets(budget, flops_convention.value)
    if method is None:
        method = Method.direct if objective == ObjectiveKind.pareto else Method.two_step
    options: dict = {}
    if accuracy == AccuracyMethod.train:
        options = {"data": data, "epochs": epochs, "seed": seed}
        if data is None:
            raise ScalelabError("--accuracy train needs --data DIR (an image folder, torchvision ImageFolder layout)")
    elif data is not None:
        raise ScalelabError("--data applies only with --accuracy train; add it or drop --data")
    evaluator = Evaluator(base, budgets, device=device, dtype=dtype, batch=batch, divisor=divisor,
                          resolution_multiple=resolution_multiple, accuracy_method=accuracy.value, accuracy_options=options)
    settings = SearchSettings(
        tuple(budgets), method.value, objective.value, constraint.value, reward_exponent, trials, seed, sampler.value,
        SearchSpace((min_depth, max_depth), (min_width, max_width), (min_resolution, max_resolution)),
        product_tolerance=product_tolerance, phi_step=phi_step, extrapolation=extrapolation.value,
        ensembles=ensembles, crops=crops,
    )
    settings.space.check()
    folder = OutputFolder(report_dir, "--report-dir")  # checked now, made when the search starts
    check_reachable(evaluator, settings)  # before anything is written
    if storage is not None:
        from scalelab.scaling.search import open_storage

        open_storage(storage, heartbeat)  # a bad URL fails here, before the report folder is made
    from scalelab.cli.local_workers import LocalWorkers

    crew = LocalWorkers(workers - 1)
    crew.check("memory" if storage in ("memory", ":memory:") else storage or "sqlite")
    if worker_of is not None:
        progress = False
    # a study another process may share is written trial by trial (a private SQLite file in batches)
    shared = storage is not None or workers > 1 or worker_of is not None
    with folder:  # a failed run removes the folder again if it made it and left it empty
        _search(evaluator, settings, storage or f"sqlite:///{report_dir / 'studies.db'}", study, report_dir, output,
                charts, format, top, sys.stderr.isatty() if progress is None else progress, crew, heartbeat, worker_of,
                shared)


def _check_worker_of(pid: int) -> None:
    """``--worker-of`` is said by `scale --workers` to the helpers it starts: its own pid, their parent's."""
    import os

    if pid != os.getppid():
        raise ScalelabError(f"--worker-of {pid}: this option is for the helper processes `scale --workers` starts, and "
                            f"names the process that started this one ({os.getppid()}); use --workers N instead")


def _search(evaluator, settings, storage, study, report_dir: Path, output, charts: bool, format, top, progress,
            crew, heartbeat: int, worker_of: Optional[int], shared: bool) -> None:
    from scalelab.report.search import print_table, search_report
    from scalelab.scaling.curves import search_curve

    result = _run_workers(evaluator, settings, storage, study, progress, crew, heartbeat, worker_of, shared)
    if result is None:  # a --workers helper: the process that started it reports
        return
    if len(result.trials) > settings.trials:
        typer.echo(f"note: study '{result.study_name}' already holds {len(result.trials)} trials, more than "
                   f"--trials {settings.trials} (the study's total); none were run, and the report covers all "
                   f"{len(result.trials)}", err=True)
    interrupts.keep(f"the study's {len(result.trials)} trials {_kept_in(storage)}; the report was not finished: "
                    f"run the same command again to write it")
    estimated = evaluator.accuracy_method == "scaling-law"  # the others would train, build or refuse every point
    curve = search_curve(evaluator, result, estimated)
    report = search_report(result, evaluator, curve, top)
    w = result.winner.candidate
    winner_spec = evaluator.scaled(w.depth_multiplier, w.width, w.resolution)
    stem = _safe_name(result.study_name)
    spec_path = output or report_dir / f"{stem}.yaml"
    report["winner_spec"] = str(spec_path)

    chart_files = _write_report_set(report, evaluator, report_dir, stem, winner_spec, spec_path, charts)
    if format == OutputFormat.json:
        emit(json.dumps(report, indent=1, allow_nan=False), None)
    else:
        from scalelab.report.table import rendered, text_console

        console = text_console()
        print_table(report, console)
        if result.storage != "memory":
            console.print(f"Inspect the study: optuna-dashboard {result.storage}", highlight=False, markup=False,
                          soft_wrap=True)  # a URL is never cut
        emit(rendered(console), None)
    for path in (spec_path, report_dir / f"{stem}.json", report_dir / f"{stem}.md",
                 *(report_dir / name for name in chart_files.values())):
        wrote(path)
    interrupts.keep("the study and its report are complete" + ("" if storage == "memory" else f" (study in {storage})"))


def _kept_in(storage: str) -> str:
    return "(nothing: --storage memory keeps no trials)" if storage == "memory" else f"are kept in {storage}"


def _write_report_set(report: dict, evaluator, report_dir: Path, stem: str, winner_spec, spec_path: Path,
                      charts: bool) -> dict[str, str]:
    """Render the JSON and Markdown reports, the winning spec and the charts into a staging folder, then
    move them into place JSON first: an interrupted run never leaves old and new files mixed."""
    from scalelab.report.search import to_markdown
    from scalelab.spec.dump import spec_yaml

    chart_files: dict[str, str] = {}
    with FileSet(report_dir) as files:
        if charts:
            from scalelab.report.charts import accuracy_vs_cost, scaling_curves
            from scalelab.report.plotting import draw_accuracy_vs_cost, draw_scaling_curves

            for x in ["macs", "params"] + (["latency"] if evaluator.device else []):
                name = f"{stem}-accuracy-vs-{x}.png"
                draw_accuracy_vs_cost(accuracy_vs_cost(report, x), files.path(name))
                chart_files[f"top-1 vs {x}"] = name
            name = f"{stem}-scaling-curves.png"
            draw_scaling_curves(scaling_curves(report), files.path(name))
            chart_files["scaling curves"] = name
            if report.get("ensembles"):
                from scalelab.report.charts import ensemble_chart
                from scalelab.report.compare_plot import draw_ensemble_chart

                name = f"{stem}-ensembles-vs-macs.png"
                draw_ensemble_chart(ensemble_chart(report), files.path(name))
                chart_files["one bigger network or an ensemble"] = name
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


def _run_workers(evaluator, settings, storage, study, progress, crew, heartbeat: int, worker_of: Optional[int],
                 shared: bool):
    """Run this process's share of the trials, with the local worker processes (``--workers``), until
    the study holds its trials; None for a helper worker, or after a Ctrl-C (which exits 130)."""
    from scalelab.cli.local_workers import wait_for_start
    from scalelab.scaling.search import run_search

    interrupts.keep(f"the finished trials {_kept_in(storage)}; run the same command again to continue the study")
    result = None
    with interrupts.searching(forward=crew.interrupt) as stop:
        crew.start()
        ready = wait_for_start if worker_of is not None else lambda: crew.start_together(stop.requested)
        try:
            result = run_search(evaluator, settings, storage=storage, study_name=study, progress=progress,
                                callbacks=[stop.callback], heartbeat=heartbeat, stop_requested=stop.requested,
                                trials_only=worker_of is not None, shared=shared, ready=ready)
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


def _apply(base, phi, depth, width, resolution, alpha, beta, gamma, divisor, resolution_multiple, output, format) -> None:
    from scalelab.analysis.costs import CONVENTION, analyze
    from scalelab.scaling.compound import compound_coefficients, scale_compound, scale_spec

    if phi is not None:
        d, w, r = compound_coefficients(phi, alpha, beta, gamma)
        scaled = scale_compound(base, phi, alpha, beta, gamma, divisor=divisor, resolution_multiple=resolution_multiple)
        how = f"phi {phi:g} with alpha {alpha:g}, beta {beta:g}, gamma {gamma:g}"
    else:
        d, w = depth or 1.0, width or 1.0
        scaled = scale_spec(base, d, w, resolution, divisor=divisor, resolution_multiple=resolution_multiple)
        how = f"depth x{d:g}, width x{w:g}, input {scaled.input.resolution[0]}px"
    total = analyze(scaled).total
    estimate = _estimate(base, d, w, scaled.input.resolution[0])
    from scalelab.spec.dump import spec_yaml

    text = spec_yaml(scaled)
    summary = {"spec": scaled.name, "base": base.name, "scaling": how, "depth": d, "width": w,
               "resolution": scaled.input.resolution[0], "macs": total.macs, "params": total.params,
               "accuracy": estimate, "convention": CONVENTION}
    if output is not None:
        emit(text, output)
    if format == OutputFormat.json:
        emit(json.dumps({**summary, **({"output": str(output)} if output else {"yaml": text})}, indent=1, allow_nan=False), None)
        return
    if output is None:
        emit(text, None)
    acc = (f"estimated top-1 {estimate['top1']:.2f} ({estimate['method']}: {estimate['detail']})"
           if estimate.get("top1") is not None else f"accuracy not estimated: {estimate['detail']}")
    typer.echo(f"{scaled.name}: {how}: {total.macs:,} MACs, {total.params:,} parameters; {acc}", err=output is None)


def _estimate(base, d: float, w: float, pixels: int) -> dict:
    from scalelab.scaling.accuracy import estimate_accuracy

    try:
        e = estimate_accuracy(base, d, w, pixels)
    except ScalelabError as exc:
        return {"top1": None, "method": None, "detail": str(exc)}
    return {"top1": e.top1, "method": e.method, "detail": e.detail, "extrapolated": e.extrapolated}
