"""Chart data, apart from drawing: what each chart shows, computed from a search report (the dict
``scalelab.report.search.search_report`` makes, or its JSON file). ``scalelab.report.plotting``
draws these with matplotlib; the data is tested without drawing anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from scalelab.analysis import CONVENTION
from scalelab.analysis.memory import dtype_bytes
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.scaling.accuracy.published import published
from scalelab.scaling.ensembles import Variant
from scalelab.scaling.objectives import Point, pareto_front
from scalelab.scaling.variants import label

AXES = {
    "macs": ("macs", "MACs (multiply-adds, log scale)"),
    "params": ("params", "parameters (log scale)"),
    "latency": ("latency_ms", "predicted latency, ms (log scale)"),
}


@dataclass(frozen=True)
class Labelled:
    x: float
    y: float
    label: str


@dataclass
class AccuracyCostChart:
    title: str
    x_label: str
    y_label: str
    references: list[Labelled]  # published networks
    feasible: list[tuple[float, float]]  # every trial within the budgets
    infeasible: list[tuple[float, float]]
    pareto: list[tuple[float, float]]  # by increasing cost
    chosen: Labelled
    budget: Optional[float] = None  # a vertical line where the budget limits this axis
    notes: list[str] = field(default_factory=list)
    pareto_label: str = "Pareto front (within budget)"
    budget_label: str = "budget"
    #: 80% prediction intervals (low, high) of the chosen network and the front, for error bars
    chosen_interval: Optional[tuple[float, float]] = None
    pareto_intervals: list = field(default_factory=list)
    x_unit: str = "count"  # count or ms: how the ticks read


@dataclass
class ScalingCurveChart:
    title: str
    coefficients: tuple[float, float, float]
    source: str
    phi: list[float]
    accuracy: Optional[list[float]]  # None when the report's method gave no accuracy along the curve
    macs: list[float]
    params: list[float]
    chosen_phi: Optional[float]
    accuracy_label: str
    low: Optional[list[float]] = None  # 80% prediction intervals along the curve
    high: Optional[list[float]] = None


def _value(trial: dict, key: str) -> float:
    v = trial.get(key)
    # macs and params are in every trial, latency_ms in every trial of a report with a device
    assert v is not None, f"a trial without {key}"
    return float(v)


def _trial(point: Point) -> dict:
    """The trial a point on the Pareto front was made from."""
    assert isinstance(point.key, dict)  # every point below is made with its trial as the key
    return point.key


_METRIC_KEYS = {"macs": "macs", "params": "params", "latency": "latency_ms", "memory": "memory_bytes"}


def within_budgets(trial: dict, budgets: list[dict]) -> bool:
    """Whether a trial's network meets every budget (for the two-step method's first step, whose
    trials are constrained on alpha * beta^2 * gamma^2, not on the budget)."""
    return all(trial[_METRIC_KEYS[b["metric"]]] <= b["limit"] for b in budgets)


def reference_points(x: str, family: str = "cnn") -> list[Labelled]:
    """Published networks of a family (ImageNet-1k single-crop top-1 with their MACs / params), one
    point per distinct row."""
    key = AXES[x][0]
    if key not in ("macs", "params"):
        return []
    table = published()
    # one protocol and one family on one plane: single-crop figures without extra data, as the estimator's series
    rows = [r for r in table.rows if table.protocol_of(r).like() == (1, "none", "none") and table.family_of(r) == family]
    sources: dict[str, set] = {}
    for row in rows:
        sources.setdefault(row.name, set()).add((getattr(row, key), row.top1))
    seen, out = set(), []
    for row in rows:
        value = getattr(row, key)
        ident = (row.name, value, row.top1)
        if ident not in seen:
            seen.add(ident)
            # the same network published twice with other figures: say whose each point is
            twice = len(sources[row.name]) > 1
            tag = (" (torchvision)" if "torchvision" in row.source else " (paper)") if twice else ""
            out.append(Labelled(float(value), row.top1, row.name + tag))
    return out


def accuracy_vs_cost(report: dict, x: str = "macs", references: bool = True) -> AccuracyCostChart:
    """Every trial (feasible or not), the Pareto front of accuracy against this axis's metric, the
    chosen network and, for top-1 estimates, the published references on an accuracy-vs-cost plane.
    A proxy score is a ranking, so it is never drawn beside published top-1."""
    if x not in AXES:
        raise ScalelabError(f"x axis must be one of {', '.join(AXES)}, got '{x}'")
    key, label = AXES[x]
    if key == "latency_ms" and report.get("device") is None:
        raise ScalelabError("a latency axis needs a search run with --device (the report has no predicted latency)")
    if key == "latency_ms":
        error = f", ±{report['latency_error']:.0%}" if report.get("latency_error") else ""
        label = f"predicted latency on {report['device']}, ms (log scale{error})"
    # the direct search's trials and refinements; for the two-step method every network step 2 priced
    trials = report["trials"] + ([] if report.get("two_step") is None else report["two_step"]["phi_trials"])
    trials = trials + report.get("refined", [])
    ok: list[tuple[float, float]] = []
    bad: list[tuple[float, float]] = []
    within: list[dict] = []
    for t in trials:
        inside = within_budgets(t, report["budgets"])
        (ok if inside else bad).append((_value(t, key), float(t["accuracy"])))
        if inside:
            within.append(t)
    front = pareto_front(Point(_value(t, key), float(t["accuracy"]), t) for t in within)
    w = report["winner"]
    variant = "" if w.get("models", 1) == w.get("crops", 1) == 1 else f"{_variant_label(w)} of "
    chosen = Labelled(_value(w, key), float(w["accuracy"]),
                      f"chosen: {variant}depth x{w['depth']:.2f} built, {_width_label(w)}, {w['pixels']}px")
    budget_metric = {"macs": "macs", "params": "params", "latency": "latency"}[x]
    budget = next((b for b in report["budgets"] if b["metric"] == budget_metric), None)
    proxy = report["accuracy_method"] == "proxy"
    notes = [f"accuracy of trials: {report['accuracy_how']}"]
    if references and key in ("macs", "params") and not proxy:
        notes.append("labelled points: published ImageNet-1k top-1 (scalelab's published table)")
    if w.get("low") is not None:
        notes.append("error bars: 80% prediction intervals of the estimates (`scalelab accuracy --validate`)")
    metric_name = {"macs": "MACs", "params": "parameters", "latency": "predicted latency"}[x]
    return AccuracyCostChart(
        title=f"{report['base']['name']}: {'proxy score' if proxy else 'top-1'} vs {x} "
              f"({report['method']} search, {len(report['trials'])} trials)",
        x_label=label,
        y_label=_accuracy_label(report),
        references=reference_points(x, report.get("base", {}).get("family", "cnn")) if references and not proxy else [],
        feasible=ok,
        infeasible=bad,
        pareto=[(p.cost, p.accuracy) for p in front],
        chosen=chosen,
        budget=None if budget is None else budget["limit"],
        notes=notes,
        pareto_label=f"Pareto front: {'score' if proxy else 'accuracy'} vs {metric_name} (within budget)",
        budget_label="budget" if budget is None else f"budget {budget['text']}",
        chosen_interval=None if w.get("low") is None else (w["low"], w["high"]),
        pareto_intervals=[(_trial(p).get("low"), _trial(p).get("high")) for p in front],
        x_unit="ms" if key == "latency_ms" else "count",
    )


def _width_label(t: dict) -> str:
    """The width as the search tables show it, asked then built (to three places: rounding to whole
    channels moves it by less than 0.01); a report stored before the built width was recorded has
    the asked one only."""
    built = t.get("width_built")
    return f"width x{t['width']:.3f} asked" + ("" if built is None else f" → x{built:.3f} built")


@dataclass
class EnsembleChart:
    """The best candidates of each (models, crops) searched against MACs: where one bigger network beats
    an ensemble of smaller ones under the budget. ``variants``: ``scaling.ensembles.Variant`` points."""

    variants: list
    groups: list[str]  # 'single', 'x3', '10-crop', 'x3 10-crop'
    title: str
    y_label: str
    budget: Optional[tuple[float, str]]
    notes: list[str]


def ensemble_chart(report: dict) -> EnsembleChart:
    """Each (models, crops) group's Pareto front of top-1 against MACs per image, among the candidates
    within the budgets (the direct search's trials and refinements, or the networks step 2 priced)."""
    e = report.get("ensembles")
    if not e:
        raise ScalelabError("this report searched no ensembles or crops (run `scalelab scale` with --ensembles/--crops)")
    trials = report["trials"] + ([] if report.get("two_step") is None else report["two_step"]["phi_trials"])
    groups = [label(k, n) for k in e["models"] for n in e["crops"]]
    points = []
    for name in groups:
        within = [t for t in trials + report.get("refined", []) if within_budgets(t, report["budgets"])
                  and label(t.get("models", 1), t.get("crops", 1)) == name]
        for p in pareto_front(Point(float(t["macs"]), float(t["accuracy"]), t) for t in within):
            t = _trial(p)
            low, high = (t["low"], t["high"]) if t.get("low") is not None else (t["accuracy"], t["accuracy"])
            points.append(Variant(name, t.get("models", 1), t.get("crops", 1), int(t["macs"]), int(t["params"]),
                                  float(t["accuracy"]), low, high, t.get("accuracy_method", ""), bool(t.get("extrapolated"))))
    budget = next((b for b in report["budgets"] if b["metric"] == "macs"), None)
    drawn = {v.network for v in points}
    missing = [g for g in groups if g not in drawn]
    notes = [f"Points: the best candidates of each ensemble size and crop count within the budgets "
             f"({', '.join(b['text'] for b in report['budgets'])}); ensembles and crops priced by the rules of "
             f"`analyze --ensemble/--crops`.",
             f"Top-1: {e['accuracy']}."] + ([f"No candidate within the budgets: {', '.join(missing)}."] if missing else [])
    return EnsembleChart(points, [g for g in groups if g in drawn], f"{report['base']['name']}: one bigger network or an ensemble of smaller ones "
                         f"({report['method']} search)", _accuracy_label(report) + ", 80% interval",
                         None if budget is None else (budget["limit"], f"budget {budget['text']}"), notes)


def _variant_label(trial: dict) -> str:
    return label(trial.get("models", 1), trial.get("crops", 1))


def _accuracy_label(report: dict) -> str:
    if report["accuracy_method"] == "proxy":
        return "proxy score (rank only; not an accuracy)"
    if report["accuracy_method"] == "train":
        return "top-1 on the user's validation split, %"
    return f"ImageNet top-1, % ({report['accuracy_method']})"


def scaling_curves(report: dict) -> ScalingCurveChart:
    """Accuracy and cost along the compound-scaling ray the report's curve was computed on."""
    curve = report.get("curve")
    if not curve or not curve.get("points"):
        raise ScalelabError("this report has no scaling curve (it was written without one)")
    points = sorted(curve["points"], key=lambda p: p["phi"])
    chosen = curve.get("chosen_phi", report["two_step"]["phi"] if report.get("two_step") else None)
    estimated = not any(p.get("accuracy") is None for p in points)
    with_interval = estimated and all(p.get("low") is not None for p in points)
    return ScalingCurveChart(
        title=f"{report['base']['name']}: compound scaling (alpha, beta, gamma = "
              + ", ".join(f"{c:.3f}" for c in curve["coefficients"]) + ")",
        coefficients=tuple(curve["coefficients"]),
        source=curve["source"],
        phi=[p["phi"] for p in points],
        accuracy=[p["accuracy"] for p in points] if estimated else None,
        macs=[float(p["macs"]) for p in points],
        params=[float(p["params"]) for p in points],
        chosen_phi=chosen,
        accuracy_label=_accuracy_label(report),
        low=[p["low"] for p in points] if with_interval else None,
        high=[p["high"] for p in points] if with_interval else None,
    )


# --------------------------------------------------------------------------------------------------
# Per-block breakdown of one network (DESIGN §7): which block eats the cost


BREAKDOWN_METRICS = {  # metric -> (panel title, unit: count, bytes or ms)
    "macs": ("MACs (multiply-adds)", "count"),
    "params": ("parameters", "count"),
    "activations": ("output activation bytes", "bytes"),
    "latency": ("predicted latency, ms", "ms"),
}


@dataclass(frozen=True)
class BreakdownPanel:
    metric: str
    title: str
    unit: str  # count, bytes or ms
    values: list  # one per row, in execution order (ints for counts and bytes)
    total: float  # of the inference network, so shares add up to 100%

    @property
    def shares(self) -> list[float]:
        return [100.0 * v / self.total if self.total else 0.0 for v in self.values]


@dataclass
class BreakdownChart:
    title: str
    rows: list[str]  # block names, or stage names at depth 1, in execution order
    kinds: list[str]  # 'mbconv', or 'mbconv x3' for a folded stage
    panels: list[BreakdownPanel]
    notes: list[str] = field(default_factory=list)


def parse_breakdown_metrics(text: str, with_latency: bool) -> list[str]:
    """'macs,params' -> ['macs', 'params']; 'all' -> every metric (latency only with a device)."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return [m for m in BREAKDOWN_METRICS if m != "latency" or with_latency]
    if not names:
        raise ScalelabError(f"--breakdown: name one or more of {', '.join(BREAKDOWN_METRICS)} (or all)")
    for name in names:
        if name not in BREAKDOWN_METRICS:
            raise ScalelabError(f"--breakdown: unknown metric '{name}'{did_you_mean(name, BREAKDOWN_METRICS)}; "
                                f"one of {', '.join(BREAKDOWN_METRICS)} (or all)")
    if "latency" in names and not with_latency:
        raise ScalelabError("--breakdown latency needs --device PROFILE (a name from `scalelab devices` or a profile YAML)")
    return list(dict.fromkeys(names))


def _rows(blocks: list, depth: int) -> list[list]:
    """Consecutive blocks of one stage form one row at depth 1; every block is a row at depth 2."""
    groups: list[list] = []
    for block in blocks:
        if depth == 1 and block.stage is not None and groups and groups[-1][0].stage == block.stage:
            groups[-1].append(block)
        else:
            groups.append([block])
    return groups


def block_breakdown(analysis, metrics: "list[str] | tuple[str, ...]" = ("macs", "params", "activations"),
                    depth: int = 2, dtype: Optional[str] = None, latency=None) -> BreakdownChart:
    """Per-block (depth 2) or per-stage (depth 1) MACs, parameters, output activation bytes and, from a
    ``LatencyPrediction`` of the same network, predicted latency. Inference blocks only: training-only
    heads do not run at inference and are named in a note instead."""
    if depth not in (1, 2):
        raise ScalelabError(f"depth must be 1 (one row per stage) or 2 (every block), got {depth}")
    unknown = [m for m in metrics if m not in BREAKDOWN_METRICS]
    if unknown or not metrics:
        raise ScalelabError(f"breakdown metrics must be among {', '.join(BREAKDOWN_METRICS)}, got {list(metrics)}")
    if "latency" in metrics and latency is None:
        raise ScalelabError("a latency breakdown needs a latency prediction (--device PROFILE)")
    if latency is not None and latency.batch != analysis.batch:
        raise ScalelabError(f"the latency prediction is for batch {latency.batch}, the analysis for batch {analysis.batch}")
    dtype = dtype or (latency.dtype if latency is not None else "fp32")
    width = dtype_bytes(dtype)

    inference = [b for b in analysis.blocks if not b.training_only]
    groups = _rows(inference, depth)

    def value(metric: str, block):
        if metric == "macs":
            return block.cost.macs
        if metric == "params":
            return block.cost.params
        if metric == "activations":
            return block.cost.activations * width
        return latency.blocks[block.name].ms

    panels = []
    for metric in metrics:
        values = [sum(value(metric, b) for b in group) for group in groups]
        title, unit = BREAKDOWN_METRICS[metric]
        if metric == "latency":
            title = f"predicted latency on {latency.device}, ms (±{latency.error:.0%})"
        panels.append(BreakdownPanel(metric, title, unit, values, sum(values)))
    folded = [depth == 1 and g[0].stage is not None for g in groups]  # a stage row, as `analyze --depth 1`
    kinds = [f"{'/'.join(sorted({b.kind for b in g}))} x{len(g)}" if f else g[0].kind for g, f in zip(groups, folded)]
    rows = [g[0].stage if f else g[0].name for g, f in zip(groups, folded)]

    h, w = analysis.input_shape[1:] if len(analysis.input_shape) == 3 else (None, None)
    size = f"input {h}x{w}, " if h is not None else ""
    notes = [f"Conditions: {size}batch {analysis.batch}; activation bytes = output elements x {width} "
             f"({dtype}); bars are shares of the inference total.",
             f"Convention: {CONVENTION}."]
    if latency is not None and "latency" in metrics:
        notes.append(f"Predicted latency ({latency.dtype}, batch {latency.batch}): {latency.total_ms:.3f} ms in all "
                     f"{latency.error_text}, by {latency.method}.")
    skipped = [b.name for b in analysis.blocks if b.training_only]
    if skipped:
        notes.append(f"Training-only blocks left out (they do not run at inference): {', '.join(skipped)}.")
    per = "stage" if depth == 1 else "block"
    return BreakdownChart(f"{analysis.name}: cost per {per}", rows, kinds, panels, notes)
