"""Fit a GPU profile's unknowns on published PyTorch-eager rows (``latency_published``) and measure its
held-out error per regime.

Fitted: the host's time per operation (``host_us``), the achievable fractions of peak compute and of
the bandwidth, and the efficiencies of the depthwise and grouped convolutions where the rows hold
such layers. The datasheet figures (peaks, bandwidth) stay as published. The objective is the mean
absolute log error over the rows (every network and batch counts alike, however long it takes),
minimised by Nelder & Mead's downhill simplex in log space (restarted from its result, as their
paper advises; numpy only).

The model is ``scalelab.analysis.latency`` exactly: each (network, resolution, dtype) is predicted once
at batch 1 and 2 with the shipped profile, and a change of unknowns rescales its compute and memory
terms (compute ~ 1 / (achievable x efficiency), memory ~ 1 / achievable bandwidth, weights read once
per batch, activations per sample); the queue (latency.queue) is the closed form
end = max_k (issued_k + sum of device times from k on).

Held-out error: each network's rows are predicted by a fit on the other networks' rows (leave one
network out); per regime the median absolute error (predicted / published - 1) over those rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Callable

from scalelab.analysis.latency import LatencyPrediction, LayerTime, predict_latency, regime
from scalelab.analysis.latency_published import PublishedRow, all_rows, network, usable
from scalelab.blocks.layers import KERNEL_CLASSES, LatencyClass
from scalelab.devices import DeviceProfile, load_profile, profile_names
from scalelab.devices.profile import RegimeError, parse_profile, profiles_dir
from scalelab.graph.network import Network

if TYPE_CHECKING:
    import numpy as np

#: the per-class efficiencies fitted where the rows' networks hold such layers
EFFICIENCY_CLASSES = (LatencyClass.DEPTHWISE_CONV, LatencyClass.GROUPED_CONV)
SCALARS = ("host_us", "achievable_compute", "achievable_bandwidth")
#: where every fit starts (whatever the profile holds now, so that refitting gives the same figures)
START = {"host_us": 20.0, "achievable_compute": 0.5, "achievable_bandwidth": 0.8}
START_EFFICIENCY = 0.2


@dataclass(frozen=True)
class Ops:
    """One (network, resolution, dtype) on the base profile: per op, its class, compute ms at batch 1,
    memory ms of its weights and per sample, fixed device ms."""
    classes: "np.ndarray"
    compute: "np.ndarray"
    weights: "np.ndarray"
    per_sample: "np.ndarray"
    overhead: "np.ndarray"


def ops_of(key: tuple[str, int, str], base: DeviceProfile, networks: "Callable[[str, int], Network]" = network) -> Ops:
    import numpy as np

    name, resolution, dtype = key
    one, two = (predict_latency(networks(name, resolution), base, dtype, b) for b in (1, 2))

    def kernels(p: LatencyPrediction) -> list[LayerTime]:
        return [t for b in p.blocks.values() for t in b.layers if t.latency_class is not LatencyClass.FREE]
    k1, k2 = kernels(one), kernels(two)
    classes = np.array([KERNEL_CLASSES.index(t.latency_class) for t in k1])
    per_sample = np.array([b.memory_ms - a.memory_ms for a, b in zip(k1, k2)])
    return Ops(classes, np.array([t.compute_ms for t in k1]), np.array([t.memory_ms for t in k1]) - per_sample,
               per_sample, np.array([t.overhead_ms for t in k1]))


def with_unknowns(base: DeviceProfile, x: dict) -> DeviceProfile:
    """The base profile with fitted values ``x`` (scalars and efficiency.<class>)."""
    efficiency = dict(base.efficiency)
    efficiency.update({LatencyClass(k.split(".")[1]): v for k, v in x.items() if k.startswith("efficiency.")})
    return base.model_copy(update={**{k: v for k, v in x.items() if k in SCALARS}, "efficiency": efficiency})


def predict_ms(ops: Ops, batch: int, base: DeviceProfile, fitted: DeviceProfile) -> float:
    """latency.predict_latency(...).total_ms for ``fitted``, from the ops timed on ``base``."""
    return _end(ops, batch, _scales(base, fitted))


def _scales(base: DeviceProfile, fitted: DeviceProfile) -> tuple:
    """What a change of unknowns multiplies: compute per class, memory, and the host's time per op."""
    import numpy as np

    ratio = np.array([base.class_efficiency(c) / fitted.class_efficiency(c) for c in KERNEL_CLASSES])
    return (ratio * base.achievable_compute / fitted.achievable_compute,
            base.achievable_bandwidth / fitted.achievable_bandwidth, fitted.host_us / 1e3, fitted.combine)


def _end(ops: Ops, batch: int, scales: tuple) -> float:
    import numpy as np

    compute_scale, memory_scale, host_ms, combine = scales
    compute = batch * ops.compute * compute_scale[ops.classes]
    memory = (ops.weights + batch * ops.per_sample) * memory_scale
    device = (compute + memory if combine == "sum" else np.maximum(compute, memory)) + ops.overhead
    issued = host_ms * np.arange(1, len(device) + 1)
    from_here = np.cumsum(device[::-1])[::-1]  # sum of device times from op k to the last
    return float(np.max(issued + from_here))


def _loss(rows: list[PublishedRow], table: dict, base: DeviceProfile, x: dict) -> float:
    scales = _scales(base, with_unknowns(base, x))
    return sum(abs(math.log(_end(table[r.key], r.batch, scales) / r.ms)) for r in rows) / len(rows)


def unknowns(rows: list[PublishedRow], table: dict) -> dict:
    """The starting values of what is fitted (START, whatever the profile holds now, so that refitting gives
    the same figures): the scalars, and each efficiency class the rows' networks hold."""
    x = dict(START)
    if all(r.batch >= 64 for r in rows):
        del x["host_us"]  # invisible at large batch: the profile's own (borrowed) figure stays
    held = {KERNEL_CLASSES[i] for r in rows for i in table[r.key].classes}
    for c in EFFICIENCY_CLASSES:
        if c in held:
            x[f"efficiency.{c}"] = START_EFFICIENCY
    return x


def fit(rows: list[PublishedRow], base: DeviceProfile, table: dict) -> dict:
    """Nelder-Mead in log space from START, restarted from its result until a restart gains nothing;
    fractions and efficiencies stay in (0, 1] (a trial beyond 1 is clipped to 1)."""
    import numpy as np

    x = unknowns(rows, table)
    names = list(x)
    capped = np.array([name != "host_us" for name in names])

    def loss(v: "np.ndarray") -> float:
        v = np.where(capped, np.minimum(v, 0.0), v)
        return _loss(rows, table, base, dict(zip(names, np.exp(v).tolist())))
    point = np.log(np.array([x[n] for n in names]))
    best = loss(point)
    for _ in range(4):
        point, value = nelder_mead(loss, point)
        if value > best - 1e-6:
            break
        best = value
    point = np.where(capped, np.minimum(point, 0.0), point)
    return dict(zip(names, np.exp(point).tolist()))


def nelder_mead(f: "Callable[[np.ndarray], float]", start: "np.ndarray", step: float = 0.5, iterations: int = 400) -> "tuple[np.ndarray, float]":
    """The downhill simplex (Nelder & Mead 1965, standard coefficients 1, 2, 0.5, 0.5)."""
    import numpy as np

    simplex = [start] + [start + step * np.eye(len(start))[i] for i in range(len(start))]
    values = [f(p) for p in simplex]
    for _ in range(iterations):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < 1e-7:
            break
        centre = np.mean(simplex[:-1], axis=0)
        reflected = centre + (centre - simplex[-1])
        r = f(reflected)
        if r < values[0]:
            expanded = centre + 2 * (centre - simplex[-1])
            e = f(expanded)
            simplex[-1], values[-1] = (expanded, e) if e < r else (reflected, r)
        elif r < values[-2]:
            simplex[-1], values[-1] = reflected, r
        else:
            contracted = centre + 0.5 * (simplex[-1] - centre)
            c = f(contracted)
            if c < values[-1]:
                simplex[-1], values[-1] = contracted, c
            else:  # shrink towards the best
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (p - simplex[0]) for p in simplex[1:]]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    i = int(np.argmin(values))
    return simplex[i], values[i]


def held_out_predictions(rows: list[PublishedRow], base: DeviceProfile, table: dict) -> list[tuple[PublishedRow, float]]:
    """Leave one network out: each row with its prediction (ms) by a fit on the other networks' rows."""
    out = []
    for name in sorted({r.network for r in rows}):
        fitted = with_unknowns(base, fit([r for r in rows if r.network != name], base, table))
        out += [(r, predict_ms(table[r.key], r.batch, base, fitted)) for r in rows if r.network == name]
    return out


def held_out(rows: list[PublishedRow], base: DeviceProfile, table: dict) -> dict[str, list[float]]:
    """Per regime, each row's absolute error (predicted / published - 1) under a fit on the other networks."""
    errors: dict[str, list[float]] = {"host_bound": [], "transition": [], "device_bound": []}
    for r, predicted in held_out_predictions(rows, base, table):
        errors[regime(r.batch)].append(abs(predicted / r.ms - 1))
    return errors


def table_for(rows: list[PublishedRow], base: DeviceProfile, networks: "Callable[[str, int], Network]" = network) -> dict:
    """Each row's (network, resolution, dtype) on ``base``; ``networks`` resolves a name at a resolution
    (default: the published networks' builders; ``calibrate --from-table`` passes its own)."""
    return {key: ops_of(key, base, networks) for key in {r.key for r in rows}}


def stated(median_error: float) -> float:
    """The error a regime states: its held-out median rounded up to the next 5%."""
    return max(0.05, math.ceil(median_error / 0.05 - 1e-9) * 0.05)


def summary(errors: list[float]) -> "float | None":
    return median(errors) if errors else None


# --------------------------------------------------------------------------------------------------
# The shipped profiles: fitted where published rows exist, a wide stated error where none do

#: the error a regime without published eager data states
NO_DATA_ERROR = 0.5
SIGNIFICANT = 4  # fitted values are written with 4 significant digits


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


def regime_errors(errors: dict[str, list[float]], rows: list[PublishedRow], what: str) -> dict:
    """Per regime: stated error, held-out median, rows, networks and how it was found (or that there is no data)."""
    out = {}
    for name, values in errors.items():
        kept = [r for r in rows if regime(r.batch) == name]
        if values:
            networks = len({r.network for r in kept})
            basis = (f"held-out median error {median(values):.1%} over {len(values)} published rows of {networks} networks "
                     f"(leave one network out; {what})")
            out[name] = RegimeError(stated=stated(median(values)), median=round(median(values), 4), rows=len(values),
                                    networks=networks, basis=basis)
        else:
            out[name] = RegimeError(stated=NO_DATA_ERROR, basis=f"no published eager data in this regime ({what}): "
                                    f"a wide stated error, not measured")
    return out


def fit_profile(base: DeviceProfile, rows: list[PublishedRow], sources: str,
                borrowed_host_us: "float | None" = None, networks: "Callable[[str, int], Network]" = network
                ) -> DeviceProfile:
    """The profile with its unknowns fitted on ``rows`` (all of them) and its held-out error per regime;
    host_us borrowed where no row is below batch 64 (the host cost is invisible at large batch)."""
    errors: dict[str, list[float]] = {"host_bound": [], "transition": [], "device_bound": []}
    x: dict = {}
    if rows:
        table = table_for(rows, base, networks)
        if all(r.batch >= 64 for r in rows):
            base = base.model_copy(update={"host_us": borrowed_host_us or 0.0})
        x = fit(rows, base, table)
        errors = held_out(rows, base, table)
    x = {k: _round(v) for k, v in x.items()}
    if borrowed_host_us is not None and "host_us" not in x:
        x["host_us"] = _round(borrowed_host_us)
    fitted = with_unknowns(base, x)
    what = f"sources: {sources}" if rows else "no published eager rows for this GPU"
    return fitted.model_copy(update={"errors": regime_errors(errors, rows, what),
                                     "sources": {**fitted.sources, **_fitted_sources(x, rows, sources)}})


def _fitted_sources(x: dict, rows: list[PublishedRow], sources: str) -> dict:
    fitted = sorted(k for k in x if k != "host_us" or any(r.batch < 64 for r in rows))
    out = {}
    if fitted and rows:
        out["assumptions"] = ("launch overhead and the per-kind efficiencies not listed under 'fitted' are typical "
                              "eager-mode values, not datasheet figures; calibrate for exact ones")
        out["fitted"] = (f"{', '.join(fitted)}: fitted on {len(rows)} published PyTorch-eager rows ({sources}; "
                         f"scalelab/devices/published) by scalelab.analysis.latency_eager_fit")
    if "host_us" in x and "host_us" not in fitted:
        out["host_us"] = ("not measurable from these rows (no published small-batch eager data for this GPU): the mean "
                          "of the t4 and a100 fits, whose hosts may differ from yours")
    return out


def shipped_profiles() -> dict[str, DeviceProfile]:
    """Every shipped GPU profile refitted: t4 and a100 (small and large batch), rtx4090 (large batch only),
    then the others (no published eager data), host_us borrowed from the t4 and a100 fits."""
    rows, _ = usable(all_rows())
    out = {}
    for name in ("t4", "a100"):
        mine = [r for r in rows if r.profile == name]
        out[name] = fit_profile(load_profile(name), mine, _source_names(mine))
    host = (out["t4"].host_us + out["a100"].host_us) / 2
    for name in profile_names():
        base = load_profile(name)
        if name in out or base.kind != "gpu":
            continue
        mine = [r for r in rows if r.profile == name]
        out[name] = fit_profile(base, mine, _source_names(mine), borrowed_host_us=host)
    return out


def _source_names(rows: list[PublishedRow]) -> str:
    return ", ".join(sorted({r.source for r in rows}))


MARK = "  # written by `python -m scalelab.analysis.latency_eager_fit` from here on"
PATCHED = ("achievable_compute", "achievable_bandwidth", "efficiency", "host_us")


def profile_text(original: str, profile: DeviceProfile) -> str:
    """The profile's YAML: the original text (datasheet figures as written) with the fitted values in
    place, the fitted sources appended to ``sources`` (its last key) and the errors after it."""
    import json

    import yaml

    text = original.split(MARK)[0].rstrip("\n")
    lines = [line for line in text.splitlines() if not line.startswith(PATCHED[3] + ":")]
    values = {"achievable_compute": profile.achievable_compute, "achievable_bandwidth": profile.achievable_bandwidth,
              "efficiency": "{" + ", ".join(f"{k}: {v:g}" for k, v in profile.efficiency.items()) + "}"}
    lines = [f"{line.split(':')[0]}: {values[line.split(':')[0]]}" if line.split(":")[0] in values else line
             for line in lines]
    lines = [f"  assumptions: {json.dumps(profile.sources['assumptions'])}" if line.startswith("  assumptions:") else line
             for line in lines]
    added = {k: v for k, v in profile.sources.items() if f"  {k}:" not in text}
    dump = yaml.safe_dump({"sources": added} if added else {}, sort_keys=False, width=120)
    tail = yaml.safe_dump({"host_us": profile.host_us,
                           "errors": {k: e.model_dump(exclude_none=True) for k, e in profile.errors.items()}},
                          sort_keys=False, width=120)
    extra = "".join(line + "\n" for line in dump.splitlines()[1:]) if added else ""
    return "\n".join(lines) + "\n" + MARK + "\n" + extra + tail


def main() -> None:
    """python -m scalelab.analysis.latency_eager_fit: refit and rewrite the shipped GPU profiles."""
    for name, profile in shipped_profiles().items():
        path = profiles_dir() / f"{name}.yaml"
        text = profile_text(path.read_text(encoding="utf-8"), profile)
        assert parse_profile(text, str(path)) == profile, name  # the text says exactly what was fitted
        path.write_text(text, encoding="utf-8")
        print(name, {k: (e.median, e.stated) for k, e in profile.errors.items()})


if __name__ == "__main__":
    main()
