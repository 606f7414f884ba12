"""The profile ``scalelab calibrate`` writes, from what it measured and fitted: the fitted figures, their
sources, the conditions of the measurement (its noise, the fit's errors and the held-out zoo networks'
error), and the warning an unreliable fit carries into every prediction."""

from __future__ import annotations

import statistics
from typing import Optional

from scalelab.analysis.latency_fit import OVERHEAD_CLASSES, RATE_CLASSES, THIN_CLASSES
from scalelab.analysis.measure import conditions_for
from scalelab.analysis.noise import SETTLE, Noise, NoiseLimits
from scalelab.blocks.layers import LatencyClass
from scalelab.devices.profile import DeviceProfile


def _figures(state: dict) -> dict:
    """Profile fields from the fitted unknowns: rate_k as efficiency x peak, half_k, overheads."""
    u, peak = state["unknowns"], state["peak_flops"]["fp32"]
    overhead = {kind: round(1e6 * u[("overhead", kind)], 2) for kind in OVERHEAD_CLASSES}
    return {
        "efficiency": {k: float(f"{1 / (u[('inv_rate', k)] * peak):.4g}") for k in RATE_CLASSES},
        "half_efficiency_channels": {k: round(u[("thin", k)] / u[("inv_rate", k)], 2) for k in THIN_CLASSES},
        "launch_overhead_us": overhead.pop(LatencyClass.ELEMENTWISE),  # the generic figure: norms, merges, activations
        "overhead_us": overhead,
        "memory_bandwidth": float(f"{1 / u[('inv_bandwidth', '')]:.4g}"),
    }


def _conditions(state: dict, device: str, count: int) -> dict:
    """What the profile records of its measurement: the fit's errors, the validation's, and the noise."""
    import platform

    conditions = conditions_for(device, "fp32", 1, False)
    conditions["host"] = platform.node()
    conditions["synthetic_networks"] = count
    if state.get("real_shaped"):
        conditions["real_shaped_networks"] = state["real_shaped"]
        conditions["real_shaped_from"] = state["real_shaped_from"]  # the zoo networks the fit saw, cut down
    conditions["fit_median_error"] = round(statistics.median(state["fit_errors"]), 4)
    conditions["fit_max_error"] = round(max(state["fit_errors"]), 4)
    real = state.get("real_shaped", 0)
    if real and len(state["fit_errors"]) > real:  # the rows: the real-shaped networks first, then the synthetic
        conditions["fit_median_error_real_shaped"] = round(statistics.median(state["fit_errors"][:real]), 4)
        conditions["fit_median_error_synthetic"] = round(statistics.median(state["fit_errors"][real:]), 4)
    conditions["held_out_median_error"] = round(statistics.median(state["held_out_errors"]), 4)
    if "validation" in state:
        conditions["validation_median_error"] = round(statistics.median(abs(e) for e in state["validation"].values()), 4)
        conditions["validation_errors"] = {k: round(v, 4) for k, v in state["validation"].items()}
        if "validation_ms" in state:
            conditions["validation_measured_ms"] = {k: round(v, 3) for k, v in state["validation_ms"].items()}
    noise = state["noise"]
    conditions["competing_load_cpus"] = round(noise.other_cpus, 3)
    conditions["kept_figure_unsettled"] = round(noise.spread, 4)  # the stability of what was kept
    conditions["settle_tolerance"] = SETTLE
    conditions["timing_rounds"] = state.get("rounds", 0)
    conditions["round_disagreement"] = round(noise.disagreement, 4)
    return conditions


def _warning(conditions: dict, noise: Noise, limits: NoiseLimits, max_held_out_error: float) -> Optional[str]:
    problems = noise.problems(limits)
    warnings = [f"measured on a noisy machine ({'; '.join(problems)})"] if problems else []
    for key, what in (("held_out_median_error", "leave-one-out median error"),
                      ("validation_median_error", "median error on the held-out zoo networks")):
        if conditions.get(key, 0.0) > max_held_out_error:
            warnings.append(f"{what} {conditions[key]:.0%} exceeds the {max_held_out_error:.0%} limit")
    return "UNRELIABLE PROFILE: " + "; ".join(warnings) + ": predictions from it may be far off" if warnings else None


def _validation_error(conditions: dict) -> dict:
    """The error predictions at small batch carry: the median over the held-out zoo networks."""
    from scalelab.analysis.latency_eager_fit import stated
    from scalelab.devices.profile import RegimeError

    if "validation_median_error" not in conditions:
        return {}
    errors, median = conditions["validation_errors"], conditions["validation_median_error"]
    basis = (f"median error {median:.1%} over {len(errors)} zoo networks timed whole on this machine at batch 1 and "
             f"never fitted on ({', '.join(errors)}; calibrate's validation)")
    return {"host_bound": RegimeError(stated=round(stated(median), 4), median=median, rows=len(errors), networks=len(errors),
                                      basis=basis)}


def fitted_on(conditions: dict) -> str:
    """'25 real-shaped networks (cut from resnet34, ...) and 36 synthetic networks'."""
    synthetic = f"{conditions['synthetic_networks']} synthetic networks"
    if not conditions.get("real_shaped_networks"):
        return synthetic
    return (f"{conditions['real_shaped_networks']} real-shaped networks (cut from the zoo's "
            f"{', '.join(conditions['real_shaped_from'])}) and {synthetic}")


def build_profile(state: dict, name: str, device: str, count: int, limits: NoiseLimits, max_held_out_error: float
             ) -> DeviceProfile:
    """The profile: fitted figures, their sources, and the conditions, errors and warnings."""
    conditions = _conditions(state, device, count)
    warning = _warning(conditions, state["noise"], limits, max_held_out_error)
    if warning:
        conditions["warning"] = warning
    held_out = conditions["held_out_median_error"]
    validated = (f", median error on {len(conditions['validation_errors'])} held-out zoo networks "
                 f"{conditions['validation_median_error']:.1%}") if "validation_errors" in conditions else ""
    how = f"measured by `scalelab calibrate` on {conditions['device_name']} ({device}, {conditions['threads']} threads, torch {conditions['torch']})"
    fitted = (f"{how}: non-negative least squares (relative error) of per-layer time = flops / rate x (1 + half / n) + "
              f"bytes / bandwidth + fixed cost, summed over layers, on {fitted_on(conditions)} timed whole "
              f"(median error of the fit {conditions['fit_median_error']:.1%}, leave-one-out {held_out:.1%}{validated})")
    return DeviceProfile(
        name=name,
        description=f"calibrated: {conditions['device_name']} ({device}, {conditions['threads']} threads)",
        kind="gpu" if device.startswith("cuda") else "cpu",
        peak_flops={k: float(f"{v:.4g}") for k, v in state["peak_flops"].items()},
        achievable_compute=1.0,
        achievable_bandwidth=1.0,
        combine="sum",
        **_figures(state),
        errors=_validation_error(conditions),
        sources={"peak_flops": f"{how}: fastest square matrix multiply (the floor of every fitted time per FLOP)",
                 "efficiency": f"{fitted}: fitted rate over peak",
                 "half_efficiency_channels": f"{how}: fitted with the efficiency",
                 "overhead_us": f"{how}: fitted with the efficiency; each at least the kind's time on tiny inputs",
                 "launch_overhead_us": f"{how}: fitted with the efficiency (elementwise layers and merges)",
                 "memory_bandwidth": f"{how}: fitted with the efficiency; at most the bandwidth of batchnorm and ReLU "
                                     "over in-cache activations"},
        calibration=conditions,
    )
