"""Reports of a scaling search: one JSON-ready dict (``search_report``) that the Markdown, the
terminal table and the charts all read, so every output says the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from scalelab.analysis.costs import CONVENTION
from scalelab.analysis.ensemble import RULES
from scalelab.analysis.latency import regime
from scalelab.devices import load_profile
from scalelab.devices.profile import regime_error
from scalelab.report.table import print_prose
from scalelab.report.units import human_bytes, human_count
from scalelab.scaling import variants
from scalelab.scaling.accuracy.family import network_family
from scalelab.scaling.accuracy.ensemble_gain import fitted_gain
from scalelab.scaling.budget import FLOPS_CONVENTIONS
from scalelab.scaling.variants import label

if TYPE_CHECKING:  # pragma: no cover
    from scalelab.scaling.candidates import Evaluator
    from scalelab.scaling.search import SearchResult

WIDTH_MEANING = ("width: the multiplier asked for, applied to every channel count; width_built: the multiplier "
                 "the network got once counts were rounded to the divisor (and to whole heads), as the widest "
                 "feature map's channels (tokens' without one) over the base's")

ACCURACY_HOW = {
    "scaling-law": "estimated by the scaling-law estimator fitted on published scaling series",
    "published": "documented top-1 of a known network",
    "proxy": "zero-cost proxy score, for ranking only (not a top-1 accuracy)",
    "train": "measured by short training on the user's dataset",
}


def search_report(result: "SearchResult", evaluator: "Evaluator", curve: Optional[dict] = None,
                  top: int = 10) -> dict[str, Any]:
    s = result.settings
    conv = s.budgets[0].flops_convention
    return {
        "report": "scalelab scale",
        "convention": CONVENTION,
        "depth_meaning": "depth: repeated blocks built / the base's (what the accuracy estimate reads); "
                         "depth_multiplier: the multiplier applied to each stage's repeats, each rounded up",
        "width_meaning": WIDTH_MEANING,
        "flops_convention": {"name": conv, "meaning": FLOPS_CONVENTIONS[conv]},
        "base": {"name": evaluator.base.name, "resolution": evaluator.base.input.resolution[0],
                 "reference_top1": evaluator.base.reference.top1 if evaluator.base.reference else None,
                 "family": network_family(evaluator.base)},  # the published networks its charts draw
        "study": result.study_name,
        "storage": result.storage,
        "method": s.method,
        "objective": s.objective,
        "constraint": s.constraint,
        "soft_w": s.soft_w,
        "sampler": s.sampler,
        "seed": s.seed,
        "space": {"depth": list(s.space.depth), "width": list(s.space.width), "resolution": list(s.space.resolution)},
        "budgets": [{"metric": b.metric, "limit": b.limit, "text": b.text, "meaning": b.describe()} for b in s.budgets],
        "device": evaluator.device,
        "dtype": evaluator.dtype,
        "batch": evaluator.batch,
        **_latency_error(evaluator),
        "accuracy_method": evaluator.accuracy_method,
        "accuracy_how": ACCURACY_HOW.get(evaluator.accuracy_method, evaluator.accuracy_method),
        "trials_total": len(result.trials),
        "trials_new": result.new_trials,
        "trials_failed": [{"number": n, "reason": why} for n, why in result.failed],
        "refinement": result.refinement,
        "extrapolation": result.extrapolation,
        "budget_use": {b.metric: b.usage(result.winner.candidate.metrics[b.metric]) for b in s.budgets},
        "ties": ties(result),
        "refined": [t.as_dict() for t in result.refined],
        "winner": result.winner.as_dict(),
        "ranked": [t.as_dict() for t in result.ranked(top)],
        "pareto": [t.as_dict() for t in result.pareto],
        "trials": [t.as_dict() for t in result.trials],
        "two_step": None if result.coefficients is None else {
            "alpha": result.coefficients[0], "beta": result.coefficients[1], "gamma": result.coefficients[2],
            "product_target": s.product_target, "product_tolerance": s.product_tolerance,
            "phi": result.phi, "phi_step": s.phi_step,
            "phi_trials": [t.as_dict() for t in result.phi_trials],
        },
        "curve": curve,
    } | ensembles_section(result)


def ensembles_section(result: "SearchResult") -> dict[str, Any]:
    """What searching ensembles and crops adds to the report (nothing for single networks): the counts,
    how the budgets and the accuracy apply to a variant, and the best candidate of each (K, N)."""
    s = result.settings
    if not variants.searched(s):
        return {}
    best: dict[tuple[int, int], Any] = {}
    for t in result.ranked(top=10 ** 9):  # best first
        best.setdefault((t.candidate.models, t.candidate.crops), t)
    rows = []
    for k, n in variants.combinations(s):
        found = best.get((k, n))
        rows.append({"models": k, "crops": n, "label": variants.label(k, n),
                     "trial": None if found is None else found.number,
                     **({} if found is None else {key: found.as_dict()[key] for key in
                                              ("macs", "params", "accuracy", "low", "high", "extrapolated", "pixels", "value")}),
                     **({"study": found.study} if found is not None and found.study else {})})
    step_two = ("step 1 finds alpha, beta, gamma on single networks at phi = 1; step 2 (largest phi within the budgets, "
                "then the refinement) runs once per (K, N), and the best of those wins")
    return {"ensembles": {
        "models": list(s.ensembles), "crops": list(s.crops), "rules": RULES,
        "budgets": {b.metric: variants.BUDGET_RULES[b.metric] for b in s.budgets},
        "accuracy": "the scaled network's own estimate (as for single networks), then the ensemble-gain law: "
                    f"{fitted_gain().describe()}; the 80% interval applies the law's at the ends of the network's",
        "method": step_two if s.method == "two-step" else "models and crops sampled with depth, width and resolution",
        "best": rows,
    }}


def ties(result: "SearchResult") -> Optional[dict]:
    """Feasible candidates (distinct networks) whose 80% interval overlaps the winner's: the estimator
    cannot tell them from the winner. None where estimates carry no interval."""
    w = result.winner.candidate
    if w.low is None or w.high is None:
        return None
    pool = result.ranked(top=10 ** 9)
    low, high = w.low, w.high
    overlapping = [{"number": t.number, **({"study": t.study} if t.study else {})} for t in pool
                   if t is not result.winner and t.candidate.low is not None and t.candidate.high is not None
                   and t.candidate.low <= high and t.candidate.high >= low]
    return {"count": len(overlapping), "of": len(pool) - 1, "trials": overlapping}


def trial_label(report: dict, t: dict) -> str:
    """The number a person finds the trial under: 'N' in the search's study, 'N phi' (or 'N refine')
    in its companion study '<study>-phi', where step 2 (or the refinement) records its networks."""
    study = t.get("study")
    return str(t["number"]) if not study else f"{t['number']} {study.removeprefix(report['study'] + '-')}"


def _numbering_line(report: dict) -> list[str]:
    companions = sorted({t["study"] for t in report["ranked"] + report["pareto"] if t.get("study")})
    if not companions:
        return []
    what = {"phi": "where step 2 records the networks it priced", "refine": "where the refinement records its networks"}

    def said(c: str) -> str:
        suffix = c.removeprefix(report["study"] + "-")
        return f"'N {suffix}' is trial N of its companion study '{c}'" + (f", {what[suffix]}" if suffix in what else "")

    return [f"Trials: 'N' is trial N of study '{report['study']}'; " + "; ".join(map(said, companions))]


def _latency(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def candidate_columns(report: dict) -> list[tuple[str, Any]]:
    """(header, cell function) for the candidates table; latency only when a device was named."""
    cols: list[tuple[str, Any]] = [
        ("trial", lambda t: trial_label(report, t)),
        ("depth (built)", lambda t: f"{t['depth']:.3f}"),
        ("width asked→built", _width_cell),
        ("res", lambda t: str(t["pixels"])),
    ]
    if report.get("ensembles"):
        cols.append(("ensemble", lambda t: _variant_label(t)))
    cols += [
        ("MACs", lambda t: human_count(t["macs"])),
        ("params", lambda t: human_count(t["params"])),
    ]
    if report["device"]:
        cols.append((f"{report['device']} ms (pred.)", lambda t: _latency(t["latency_ms"])))
    if any(b["metric"] == "memory" for b in report["budgets"]):
        cols.append(("memory", lambda t: human_bytes(t["memory_bytes"])))
    # one accuracy method per search: the summary above the table says how it was estimated
    if report["accuracy_method"] == "proxy":
        cols.append(("proxy score (rank only)", lambda t: f"{t['accuracy']:.2f}"))
    else:
        cols.append(("top-1 (est.) [80%]", _accuracy_cell))
    cols.append(("reward" if report["objective"] == "reward" else "objective", lambda t: f"{t['value']:.4g}"))
    return cols


def _width_cell(t: dict) -> str:
    built = t.get("width_built")  # a trial stored before the width built was recorded has none
    return f"{t['width']:.3f}→" + ("-" if built is None else f"{built:.3f}")


def _width_words(t: dict) -> str:
    built = t.get("width_built")
    return f"width x{t['width']:.3f}" + ("" if built is None else f" asked, x{built:.3f} built (widest feature map)")


def _variant_label(t: dict) -> str:
    return label(t.get("models", 1), t.get("crops", 1))


def _accuracy_cell(t: dict) -> str:
    interval = f" [{t['low']:.1f}, {t['high']:.1f}]" if t.get("low") is not None else ""
    return f"{t['accuracy']:.2f}{interval}" + (" *" if t["extrapolated"] else "")


def _md_table(rows: list[dict], cols) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f(r) for _, f in cols) + " |" for r in rows]
    return lines


def _latency_error(evaluator: "Evaluator") -> dict[str, Any]:
    """The device profile's held-out error for the search's batch (its regime), which every predicted latency carries."""
    if not evaluator.device:
        return {}
    error, basis = regime_error(load_profile(evaluator.device), regime(evaluator.batch))
    return {"latency_error": error, "latency_error_basis": basis}


def _latency_margin(report: dict) -> list[str]:
    """Under a latency budget: how far below the limit the winner is, against the prediction's error."""
    budget = next((b for b in report["budgets"] if b["metric"] == "latency"), None)
    error = report.get("latency_error")
    ms = report["winner"].get("latency_ms")
    if budget is None or not error or ms is None:
        return []
    margin = 1 - ms / budget["limit"]
    verdict = ("beyond the error: within the limit even at the error's edge" if ms * (1 + error) <= budget["limit"]
               else "within the error: on the device it may exceed the limit")
    return [f"Latency margin: the winner's {ms:.3f} ms is {margin:.1%} below the {budget['limit']:g} ms limit, "
            f"{margin / error:.2f} times the prediction's ±{error:.0%} ({verdict})"]


def summary_lines(report: dict) -> list[str]:
    """The conditions every output states."""
    w = report["winner"]
    lines = [
        f"Base network: {report['base']['name']} at {report['base']['resolution']}px; method: {report['method']}; "
        f"objective: {_objective_text(report)}",
        "Budgets: " + "; ".join(b["meaning"] for b in report["budgets"]),
        f"FLOPs convention: {report['flops_convention']['meaning']}",
        f"Accuracy: {report['accuracy_how']} (method '{report['accuracy_method']}'); winner: {w['accuracy_detail']}",
        f"Study: '{report['study']}' in {report['storage']} ({report['trials_total']} completed trials, "
        f"{report['trials_new']} run now; sampler {report['sampler']}, seed {report['seed']})",
    ]
    if report["device"]:
        lines.append(f"Latency: predicted on the '{report['device']}' device profile ({report['dtype']}, batch {report['batch']})"
                     + (f"; each figure ±{report['latency_error']:.0%} ({report['latency_error_basis']})"
                        if report.get("latency_error") else ""))
        lines += _latency_margin(report)
    if report["two_step"]:
        ts = report["two_step"]
        lines.append(f"Two-step: alpha {ts['alpha']:.3f} (depth as blocks built), beta {ts['beta']:.3f}, gamma "
                     f"{ts['gamma']:.3f} (alpha*beta^2*gamma^2 = {ts['alpha'] * ts['beta'] ** 2 * ts['gamma'] ** 2:.3f}); "
                     f"phi = {ts['phi']:.3f}")
    lines += _numbering_line(report) + _outcome_lines(report) + _ensemble_lines(report)
    return lines


def _ensemble_lines(report: dict) -> list[str]:
    """How ensembles and crops were searched, and the best of each within the budgets."""
    e = report.get("ensembles")
    if not e:
        return []
    best = "; ".join(f"{r['label']}: " + ("none within the budgets" if r["trial"] is None else
                                          f"{_accuracy_cell(r)} at {human_count(r['macs'])} MACs")
                     for r in e["best"])
    return [f"Ensembles and crops: each candidate also as K in {e['models']} copies of its scaled network on N in "
            f"{e['crops']} crops ({e['method']}). Budgets apply as: "
            + "; ".join(f"{m}: {how}" for m, how in e["budgets"].items()) + f". Top-1 of a variant: {e['accuracy']}",
            f"Best within the budgets, per ensemble and crop count: {best}"]


def _outcome_lines(report: dict) -> list[str]:
    """Budget use and what stopped the refinement, failed trials, ties."""
    lines = []
    use = ", ".join(f"{b['text']}: {100 * report['budget_use'][b['metric']]:.1f}%" for b in report["budgets"])
    ref = report.get("refinement")
    if ref:
        lines.append(f"Budget used by the winner: {use}. Refinement: input {ref['from']['pixels']} -> "
                     f"{ref['to']['pixels']} px (stopped: {ref['resolution_stopped_by']}), width x{ref['from']['width']:.3f} "
                     f"-> x{ref['to']['width']:.3f} (stopped: {ref['width_stopped_by']})")
    else:
        lines.append(f"Budget used by the winner: {use}")
    if report.get("extrapolation"):
        lines.append(report["extrapolation"])
    failed = report.get("trials_failed") or []
    if failed:
        lines.append(f"Failed trials: {len(failed)} candidates could not be built, e.g. trial {failed[0]['number']}: "
                     f"{failed[0]['reason']}")
    if report.get("ties") is not None:
        t = report["ties"]
        lines.append(f"Ties: {t['count']} of the other {t['of']} feasible candidates have 80% intervals overlapping the "
                     "winner's: the estimator cannot tell them from it")
    return lines


def _objective_text(report: dict) -> str:
    if report["objective"] == "pareto":
        return "Pareto front of accuracy vs cost (winner: most accurate within the budgets)"
    if report["constraint"] == "hard":
        return "MnasNet reward ACC x (cost/T)^w, hard constraint (w = 0 within, -1 over; budgets also passed to Optuna as constraints)"
    return f"MnasNet reward ACC x (cost/T)^w, soft constraint (w = {report['soft_w']:g})"


def to_markdown(report: dict, charts: Optional[dict[str, str]] = None) -> str:
    w = report["winner"]
    cols = candidate_columns(report)
    out = [f"# Scaling search: {report['base']['name']} under {', '.join(b['text'] for b in report['budgets'])}", ""]
    out += [f"- {line}" for line in summary_lines(report)]
    out += [f"- Counting convention: {report['convention']}", ""]
    score = ("proxy score (rank only) " if w["accuracy_method"] == "proxy" else "estimated top-1 ") + _accuracy_cell(w)
    chosen = "" if w.get("models", 1) == w.get("crops", 1) == 1 else f"{_variant_label(w)} of the network at "
    out += ["## Chosen network", "",
            f"{chosen}depth x{w['depth']:.3f} as built ({w.get('blocks', 0)} repeated blocks: depth multiplier "
            f"x{w.get('depth_multiplier') or w['depth']:g} on the stage repeats, each rounded up), {_width_words(w)}, input "
            f"{w['pixels']}px: {w['macs']:,} MACs, {w['params']:,} parameters, {score} "
            f"({w['accuracy_method']}: {w['accuracy_detail']})", ""]
    out += ["## Best candidates", ""] + _md_table(report["ranked"], cols) + [""]
    out += ["## Pareto front (accuracy vs " + _primary_label(report) + ", feasible trials)", ""]
    out += _md_table(report["pareto"], cols) + [""]
    if report.get("ensembles"):
        out += ["## One bigger network or an ensemble? (the best of each within the budgets)", ""]
        out += ["| ensemble | trial | MACs | params | top-1 (est.) [80%] |", "|---|---|---|---|---|"]
        out += [f"| {r['label']} | " + ("- | - | - | none within the budgets |" if r["trial"] is None else
                f"{trial_label(report, {'number': r['trial'], 'study': r.get('study')})} | {r['macs']:,} | "
                f"{r['params']:,} | {_accuracy_cell(r)} |")
                for r in report["ensembles"]["best"]] + [""]
    best = (report.get("ensembles") or {}).get("best", [])
    if any(t["extrapolated"] for t in report["ranked"]) or any(r.get("extrapolated") for r in best):
        out += ["`*` extrapolated beyond the range the estimator was fitted on.", ""]
    if charts:
        out += ["## Charts", ""] + [f"![{title}]({path})" for title, path in charts.items()] + [""]
    return "\n".join(out)


def _primary_label(report: dict) -> str:
    return {"macs": "MACs", "params": "parameters", "latency": "latency", "memory": "memory"}[report["budgets"][0]["metric"]]


#: which candidate columns stay in a narrow terminal, most important first (by header's first word)
PRIORITY = ("trial", "top-1", "proxy", "depth", "width", "res", "ensemble", "MACs", "params", "memory", "latency")


def _rank(report: dict, header: str) -> int:
    """Trial and accuracy first, the budgets' own figures next, then the scaling, the other costs,
    and the reward (or objective) last."""
    budgets = {"macs": "MACs", "params": "params", "memory": "memory", "latency": "ms"}
    if any(budgets[b["metric"]] in header.split() for b in report["budgets"]):
        return 2
    first = header.split()[0]
    first = "latency" if first == report["device"] else first  # the latency column is named after the device
    return PRIORITY.index(first) if first in PRIORITY else len(PRIORITY)


def _table(title: str, rows: list[dict], cols):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for header, _ in cols:
        table.add_column(header.replace(" (", "\n("), justify="right", no_wrap=True)  # a cell is never split
    for r in rows:
        table.add_row(*[Text(f(r)) for _, f in cols])
    return table


def _fitting_columns(report: dict, cols, console) -> tuple[list, int]:
    """The columns, least important dropped first, until both tables fit the console's width; and
    the width they need."""
    from rich.measure import Measurement

    options = console.options.update_width(10_000)  # a measurement is capped at the width it is given

    def widest(keep) -> int:
        return max(Measurement.get(console, options, _table("", rows, keep)).maximum
                   for rows in (report["ranked"], report["pareto"]))

    keep = list(cols)
    for col in sorted(cols, key=lambda c: -_rank(report, c[0])):
        if widest(keep) <= console.width or len(keep) <= 3:
            break
        keep.remove(col)
    return keep, widest(keep)


def print_table(report: dict, console) -> None:
    """The conditions, then the candidates and the Pareto front as tables that fit the console's width
    (the width rule of ``scalelab.report.table``; the Markdown and JSON reports keep every column)."""
    for line in summary_lines(report):
        print_prose(console, line)
    cols = candidate_columns(report)
    shown, width = _fitting_columns(report, cols, console)
    for title, rows in (("Best candidates", report["ranked"]), ("Pareto front", report["pareto"])):
        console.print(_table(title, rows, shown), width=max(width, console.width))  # too wide even so: whole
    left = [h for h, f in cols if (h, f) not in shown]
    if left:
        print_prose(console, f"Left out to fit {console.width} columns: {', '.join(left)} (in the Markdown and JSON "
                             "reports)")
