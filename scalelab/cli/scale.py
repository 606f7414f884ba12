"""`scalelab scale [SPEC] --budget 400MFLOPs`: the budgeted compound-scaling search; with
``--phi`` or ``--depth/--width/--resolution`` it applies one scaling and writes the new spec.

This module declares the command line and picks the mode; ``scale_apply`` and ``scale_search`` do the
work, each given the options it uses as typed groups (``scale_options``)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from scalelab import interrupts
from scalelab.cli import options as O
from scalelab.cli.app import app, friendly
from scalelab.cli.groups import given, pick
from scalelab.cli.scale_apply import apply_scaling
from scalelab.cli.scale_options import (
    DEFAULT_BASE, DEFAULT_REPORT_DIR, AccuracyMethod, ApplyOptions, ConstraintKind, Extrapolation, FlopsConventionKind,
    Method, ObjectiveKind, OutputFormat, PricingOptions, ReportOptions, SamplerKind, SearchOptions, StudyOptions,
)
from scalelab.cli.scale_search import check_worker_of, search
from scalelab.api import import_ref
from scalelab.errors import ScalelabError
from scalelab.importer.source import is_model_ref
from scalelab.output import check_output_file
from scalelab.progress import progress
from scalelab.scaling.objectives import Objective
from scalelab.scaling.storages import DEFAULT_HEARTBEAT, GRACE_FACTOR
from scalelab.spec import Spec, load_spec

# The options, in the order `scale --help` lists them
_SPEC = typer.Argument(None, parser=O.SPEC, help=(
    f"Base spec file or zoo name (default: {DEFAULT_BASE}), or a PyTorch model to import first: timm:NAME, "
    "package.module:callable or file.py:callable."))
_BUDGET = typer.Option([], "--budget", "-b", metavar="BUDGET", parser=O.BUDGET, help=(
    "Budget(s): 400MFLOPs, 0.4GMACs, 5Mparams, 2ms (needs --device), 64MB / 1GiB (inference peak). "
    "Repeat the option or separate with commas; a bare count such as 5M is refused as ambiguous."))
_FLOPS_CONVENTION = typer.Option(FlopsConventionKind.paper, "--flops-convention", help=(
    "paper: 1 FLOP = 1 multiply-add (EfficientNet-B0 is 0.39B FLOPs); hardware: 1 multiply-add = 2 FLOPs."))
_DEVICE = typer.Option(None, "--device", parser=O.PROFILE, help="Device profile for predicted latency (see `scalelab devices`).")
_DTYPE = typer.Option("fp32", "--dtype", parser=O.DTYPE, help="Data type for latency and memory: fp32, tf32, fp16, bf16, int8 or amp (autocast).")
_BATCH = typer.Option(1, "--batch", parser=O.BATCH, help="Batch size for latency and memory.")
_PHI = typer.Option(None, "--phi", parser=O.PHI, help="Apply compound scaling d=alpha^phi, w=beta^phi, r=gamma^phi.")
_DEPTH = typer.Option(None, "--depth", parser=O.DEPTH_MULTIPLIER, help="Apply a depth multiplier (stage repeats, rounded up).")
_WIDTH = typer.Option(None, "--width", parser=O.WIDTH_MULTIPLIER, help="Apply a width multiplier (channels, to the divisor).")
_RESOLUTION = typer.Option(None, "--resolution", parser=O.PIXELS, help="Apply an input resolution in pixels.")
_ALPHA = typer.Option(1.2, "--alpha", parser=O.COEFFICIENT, help="Depth coefficient for --phi (EfficientNet: 1.2).")
_BETA = typer.Option(1.1, "--beta", parser=O.COEFFICIENT, help="Width coefficient for --phi (EfficientNet: 1.1).")
_GAMMA = typer.Option(1.15, "--gamma", parser=O.COEFFICIENT, help="Resolution coefficient for --phi (EfficientNet: 1.15).")
_METHOD = typer.Option(None, "--method", help=(
    "two-step (default; direct with --objective pareto): EfficientNet's method, alpha, beta, gamma at phi = 1 "
    "then the largest phi within the budget; direct: search (d, w, r) freely."))
_OBJECTIVE = typer.Option(ObjectiveKind.reward, "--objective", help="reward: MnasNet ACC x (cost/T)^w; pareto: accuracy vs cost.")
_CONSTRAINT = typer.Option(ConstraintKind.hard, "--constraint", help="hard: budgets are Optuna constraints; soft: w on both sides.")
_REWARD_EXPONENT = typer.Option(-0.07, "--reward-exponent", parser=O.EXPONENT, help="w of the soft MnasNet reward.")
_TRIALS = typer.Option(100, "--trials", parser=O.TRIALS, help="Total trials of the study, counting every worker's (a resumed study runs only the rest).")
_SEED = typer.Option(0, "--seed", parser=O.SEED, help="Sampler seed (each worker's: this plus the number of its first trial).")
_SAMPLER = typer.Option(SamplerKind.tpe, "--sampler", help="Optuna sampler.")
_STORAGE = typer.Option(None, "--storage", parser=O.STORAGE, help=(
    "Optuna storage URL (default: sqlite:///REPORT_DIR/studies.db; 'memory' keeps nothing; an in-memory SQLite URL "
    "is refused: it could be neither shared nor resumed)."))
_STUDY = typer.Option(None, "--study", parser=O.STUDY, help="Study name (default: from the base, method and budgets); the same name and storage resume.")
_WORKERS = typer.Option(1, "--workers", parser=O.WORKERS, help=(
    "Worker processes on this machine, sharing the study (needs a database --storage). Run the same command on "
    "other machines against one PostgreSQL to add theirs; --trials counts the trials of all of them."))
_HEARTBEAT = typer.Option(DEFAULT_HEARTBEAT, "--heartbeat", parser=O.HEARTBEAT, help=(
    f"Seconds between a running trial's heartbeats; a trial silent {GRACE_FACTOR} times as long is taken as the "
    "trial of a dead worker and run again."))
_WORKER_OF = typer.Option(None, "--worker-of", parser=O.PID, hidden=True, help="Run trials only, for --workers.")
_ACCURACY = typer.Option(None, "--accuracy", help=(
    "How candidates' accuracy is obtained (default: scaling-law; proxy, said so, for a base whose spec states no "
    "reference top-1, such as an imported model)."))
_EXTRAPOLATION = typer.Option(Extrapolation.avoid, "--extrapolation", help=(
    "avoid: search only networks whose scaling-law estimate lies inside the estimator's fitted range (where none "
    "there meets the budgets, the whole ranges, and the output says so); allow: the whole ranges (extrapolated "
    "estimates flagged)."))
_DATA = typer.Option(None, "--data", parser=O.DATA_FOLDER, help="Image folder (ImageFolder layout) for --accuracy train.")
_EPOCHS = typer.Option(3, "--epochs", parser=O.EPOCHS, help="Training epochs per candidate for --accuracy train.")
_MIN_DEPTH = typer.Option(0.25, "--min-depth", parser=O.DEPTH_MULTIPLIER, help="Smallest depth multiplier searched.")
_MAX_DEPTH = typer.Option(4.0, "--max-depth", parser=O.DEPTH_MULTIPLIER, help="Largest depth multiplier searched.")
_MIN_WIDTH = typer.Option(0.25, "--min-width", parser=O.WIDTH_MULTIPLIER, help="Smallest width multiplier searched.")
_MAX_WIDTH = typer.Option(3.0, "--max-width", parser=O.WIDTH_MULTIPLIER, help="Largest width multiplier searched.")
_MIN_RESOLUTION = typer.Option(0.25, "--min-resolution", parser=O.RESOLUTION_MULTIPLIER, help="Smallest resolution multiplier.")
_MAX_RESOLUTION = typer.Option(3.0, "--max-resolution", parser=O.RESOLUTION_MULTIPLIER, help="Largest resolution multiplier.")
_DIVISOR = typer.Option(8, "--divisor", parser=O.DIVISOR, help="Channels round to a multiple of this.")
_RESOLUTION_MULTIPLE = typer.Option(1, "--resolution-multiple", parser=O.PIXELS, help="Input size rounds to a multiple of this.")
_ENSEMBLES = typer.Option("1", "--ensembles", parser=O.ENSEMBLE_SIZES, metavar="K,K,...", help=(
    "Let each candidate also be an ensemble of K copies of its scaled network, e.g. 1,2,3: MACs and "
    "parameters x K, latency x K (members one after another), memory K x the weights plus one member's "
    "activations; top-1 by the ensemble-gain law from the network's estimate. Direct: K is sampled with "
    "d, w, r; two-step: step 2 runs once per K and crop count."))
_CROPS = typer.Option("1", "--crops", parser=O.CROP_COUNTS, metavar="N,N,...", help=(
    "Let each candidate also be tested on N crops per image, e.g. 1,10 (the 10-crop test): MACs x N per "
    "image, the same parameters, latency and activations at batch x N. Combines with --ensembles."))
_PRODUCT_TOLERANCE = typer.Option(0.1, "--product-tolerance", parser=O.NON_NEGATIVE, help="Two-step: |alpha*beta^2*gamma^2 - 2| allowed.")
_PHI_STEP = typer.Option(0.0, "--phi-step", parser=O.NON_NEGATIVE, help="Two-step: phi in steps of this (0: continuous).")
_OUTPUT = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the (winning) spec YAML here.")
_REPORT_DIR = typer.Option(DEFAULT_REPORT_DIR, "--report-dir", parser=O.FOLDER, help=(
    "Folder for the JSON/Markdown report, the winning spec and the charts (created if missing; the default "
    "SQLite study storage lives there too)."))
_CHARTS = typer.Option(True, "--charts/--no-charts", help="Draw the charts into the report folder.")
_FORMAT = typer.Option(OutputFormat.table, "--format", "-f", help="table for people, json for scripts.")
_TOP = typer.Option(10, "--top", parser=O.ROWS, help="Candidates listed.")
_PROGRESS = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal).")


@app.command()
@friendly
def scale(
    ctx: typer.Context, spec: Optional[str] = _SPEC,
    budget: list[str] = _BUDGET,
    flops_convention: FlopsConventionKind = _FLOPS_CONVENTION,
    device: Optional[str] = _DEVICE,
    dtype: str = _DTYPE,
    batch: int = _BATCH,
    phi: Optional[float] = _PHI,
    depth: Optional[float] = _DEPTH,
    width: Optional[float] = _WIDTH,
    resolution: Optional[int] = _RESOLUTION,
    alpha: float = _ALPHA,
    beta: float = _BETA,
    gamma: float = _GAMMA,
    method: Optional[Method] = _METHOD,
    objective: ObjectiveKind = _OBJECTIVE,
    constraint: ConstraintKind = _CONSTRAINT,
    reward_exponent: float = _REWARD_EXPONENT,
    trials: int = _TRIALS,
    seed: int = _SEED,
    sampler: SamplerKind = _SAMPLER,
    storage: Optional[str] = _STORAGE,
    study: Optional[str] = _STUDY,
    workers: int = _WORKERS,
    heartbeat: int = _HEARTBEAT,
    worker_of: Optional[int] = _WORKER_OF,
    accuracy: Optional[AccuracyMethod] = _ACCURACY,
    extrapolation: Extrapolation = _EXTRAPOLATION,
    data: Optional[Path] = _DATA,
    epochs: int = _EPOCHS,
    min_depth: float = _MIN_DEPTH,
    max_depth: float = _MAX_DEPTH,
    min_width: float = _MIN_WIDTH,
    max_width: float = _MAX_WIDTH,
    min_resolution: float = _MIN_RESOLUTION,
    max_resolution: float = _MAX_RESOLUTION,
    divisor: int = _DIVISOR,
    resolution_multiple: int = _RESOLUTION_MULTIPLE,
    ensembles: tuple = _ENSEMBLES,
    crops: tuple = _CROPS,
    product_tolerance: float = _PRODUCT_TOLERANCE,
    phi_step: float = _PHI_STEP,
    output: Optional[Path] = _OUTPUT,
    report_dir: Path = _REPORT_DIR,
    charts: bool = _CHARTS,
    format: OutputFormat = _FORMAT,
    top: int = _TOP,
    progress: Optional[bool] = _PROGRESS,
) -> None:
    """Search the best compound scaling of a network under a budget, or apply one scaling.

    Accuracy is estimated (and every output says how); costs follow the counting convention of `scalelab analyze`;
    studies persist in an Optuna storage and resume under the same name.

    With --ensembles 1,3 --crops 1,10 each candidate may also be an ensemble and/or multi-crop test of its scaled
    network under the same budget; its chart shows where one bigger network beats an ensemble of smaller ones.
    Example: scalelab scale efficientnet_b0 --budget 2GFLOPs --method direct --ensembles 1,2,3 --crops 1,10.
    """
    # every option by its name (each part of the work takes its group of them), and which ones were given
    _run({name: value for name, value in locals().items() if name != "ctx"}, given(ctx))


def _run(parsed: dict[str, Any], given: dict[str, str]) -> None:
    """Check what applies to both modes, then apply the scaling or run the search (``given``: the
    options given, by name)."""
    interrupts.reset()
    apply, study = pick(ApplyOptions, parsed), pick(StudyOptions, parsed)
    check_output_file(apply.output)
    _check_mode(apply, parsed["budget"])
    _check_unused(apply, given)
    if not apply.applying:
        _check_search_unused(parsed, given)
    if study.worker_of is not None:
        check_worker_of(study.worker_of)
    base = _base(parsed["spec"] or DEFAULT_BASE, quiet=study.helper)
    parsed["accuracy"] = _accuracy(parsed["accuracy"], base, quiet=apply.applying or study.helper)
    pricing = pick(PricingOptions, parsed)
    if apply.applying:
        apply_scaling(base, apply)
        return
    search(base, pricing, pick(SearchOptions, parsed), study, pick(ReportOptions, parsed))


def _base(ref: str, quiet: bool) -> Spec:
    """The base spec: a spec file or zoo name, or the PyTorch model a MODEL string names, imported
    first (torch only then) as `scalelab import` imports it."""
    if not is_model_ref(ref):
        return load_spec(ref)
    with progress(f"importing {ref}: building, capturing and checking every block"):
        imported, shape, origin = import_ref(ref)
    if not quiet:
        typer.echo(f"imported {ref} at {'x'.join(map(str, shape))} ({origin}) as spec '{imported.spec.name}'; its "
                   f"parameters and every block's output shape were checked against the module's", err=True)
    return imported.spec


def _accuracy(chosen: Optional[AccuracyMethod], base: Spec, quiet: bool) -> AccuracyMethod:
    """--accuracy as given; unset, the scaling law where the base states a reference top-1 to scale,
    else the proxy score, and a note that says so (never a top-1 guessed for it)."""
    if chosen is not None:
        return chosen
    if base.reference is not None:
        return AccuracyMethod.scaling_law
    if not quiet:
        typer.echo(f"note: {base.name} states no reference top-1 for the scaling law to scale (`scalelab import "
                   f"--top1 ... --top1-source ...` writes one), so candidates are ranked by the zero-cost proxy "
                   f"score (--accuracy proxy): a ranking, not an accuracy", err=True)
    return AccuracyMethod.proxy


def _check_mode(apply: ApplyOptions, budget: list[str]) -> None:
    """Exactly one mode: a search (``--budget``) or one scaling applied."""
    if apply.applying and budget:
        raise ScalelabError("give either --budget (search) or --phi / --depth / --width / --resolution (apply a scaling), not both")
    if not apply.applying and not budget:
        raise ScalelabError("nothing to do: give --budget (e.g. --budget 400MFLOPs) to search, or --phi / --depth / "
                            "--width / --resolution to apply a scaling")
    if apply.phi is not None and (apply.depth is not None or apply.width is not None or apply.resolution is not None):
        raise ScalelabError("--phi sets depth, width and resolution together; do not combine it with --depth/--width/--resolution")


# What each mode uses: the options its groups take (SPEC, the base, both load first)
_APPLY_USES = {f.name for f in fields(ApplyOptions)} | {"spec"}
_SEARCH_USES = {f.name for group in (PricingOptions, SearchOptions, StudyOptions, ReportOptions)
                for f in fields(group)} | {"spec"}
_COEFFICIENTS = ("alpha", "beta", "gamma")
_APPLYING = "--phi, --depth, --width or --resolution"


def _check_unused(apply: ApplyOptions, given: dict[str, str]) -> None:
    """An option the chosen mode does not use is refused, not ignored: given to one scaling, a search
    option (and --alpha/--beta/--gamma without --phi), given to a search, a scaling option."""
    if not apply.applying:
        unused = [spelled for name, spelled in given.items() if name not in _SEARCH_USES]
        if unused:
            raise ScalelabError(f"{_listed(unused)} to one scaling applied ({_APPLYING}), not to the search "
                                f"(--budget), which chooses the scaling itself; drop {_them(unused)}")
        return
    mode = " and ".join(given[name] for name in ("phi", "depth", "width", "resolution") if name in given)
    unused = [spelled for name, spelled in given.items() if name not in _APPLY_USES]
    if unused:
        raise ScalelabError(f"{_listed(unused)} to the search (--budget), not to one scaling applied ({mode}), "
                            f"which would ignore {_them(unused)}; drop {_them(unused)}, or search with --budget "
                            f"instead of {mode}")
    coefficients = [given[name] for name in _COEFFICIENTS if name in given]
    if coefficients and apply.phi is None:
        raise ScalelabError(f"{_listed(coefficients)} only with --phi (depth alpha^phi, width beta^phi, resolution "
                            f"gamma^phi), not with {mode}, which sets the multipliers itself; drop "
                            f"{_them(coefficients)}, or give --phi")


#: options of the two-step method only: the direct search samples depth, width and resolution freely
_TWO_STEP_ONLY = ("product_tolerance", "phi_step")


def _check_search_unused(parsed: dict[str, Any], given: dict[str, str]) -> None:
    """Within a search, an option its method or accuracy estimate would ignore is refused: --epochs
    without --accuracy train, the two-step's --product-tolerance and --phi-step in a direct search
    (--method direct, or the Pareto objective's default)."""
    if "epochs" in given and parsed["accuracy"] != AccuracyMethod.train:
        raise ScalelabError("--epochs applies only with --accuracy train (each candidate's training epochs); add "
                            "--accuracy train --data DIR or drop --epochs")
    method = parsed["method"] or Method(Objective(parsed["objective"].value, ()).default_method)
    unused = [given[name] for name in _TWO_STEP_ONLY if name in given]
    if unused and method == Method.direct:
        raise ScalelabError(f"{_listed(unused)} to the two-step method (phi under alpha*beta^2*gamma^2 = 2), not "
                            f"to the direct search{'' if parsed['method'] else ' the Pareto objective runs'}, which "
                            f"would ignore {_them(unused)}; drop {_them(unused)}, or give --method two-step")


def _listed(options: list[str]) -> str:
    return f"{', '.join(options)} {'applies' if len(options) == 1 else 'apply'}"


def _them(options: list[str]) -> str:
    return "it" if len(options) == 1 else "them"
