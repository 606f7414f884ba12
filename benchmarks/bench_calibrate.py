"""`scalelab calibrate` on this machine as a user runs it, for the CPU-calibration section of
benchmarks/latency.md: its wall time with the validation, the load around it, what it fitted on, the
fit's errors, each held-out zoo network's measured and predicted time, and the stability of what it kept.

    .venv/bin/python benchmarks/bench_latency.py --calibrate-only    # rewrites that section of latency.md

Goals: under 3 minutes on 2 cores with the validation; median error on the held-out zoo networks at most 15%.
"""

from __future__ import annotations

import os
import time

CALIBRATE_SECTION = "## CPU calibration: wall time, what it kept, and its error on real networks"


def _network_table(c: dict) -> list[str]:
    """Per held-out network: measured ms, predicted ms (measured x (1 + error)) and the signed error."""
    rows = ["| held-out network | measured ms | predicted ms | error |", "|---|---:|---:|---:|"]
    for name, error in c["validation_errors"].items():
        ms = c.get("validation_measured_ms", {}).get(name)
        measured, predicted = (f"{ms:.2f}", f"{ms * (1 + error):.2f}") if ms else ("-", "-")
        rows.append(f"| {name} | {measured} | {predicted} | {error:+.1%} |")
    return rows


def _fit_lines(c: dict) -> list[str]:
    real = c.get("real_shaped_networks", 0)
    split = (f" (real-shaped {c['fit_median_error_real_shaped']:.1%}, synthetic {c['fit_median_error_synthetic']:.1%})"
             if "fit_median_error_real_shaped" in c else "")
    fitted_on = (f"{real} real-shaped networks (`scalelab.devices.real_shaped`: the zoo's "
                 f"{', '.join(c['real_shaped_from'])} cut to one or two blocks per stage at resolutions of their own) "
                 f"and {c['synthetic_networks']} synthetic networks (`scalelab.devices.synthetic`)") if real else \
        f"{c['synthetic_networks']} synthetic networks"
    return [f"Fitted on {fitted_on}, timed whole in one interleaved set: the fit's median error "
            f"{c['fit_median_error']:.1%}{split}, max {c['fit_max_error']:.1%}, leave-one-out median "
            f"{c['held_out_median_error']:.1%}."]


def ablation(state: dict) -> list[str]:
    """The same timings fitted three ways, each judged on the held-out zoo networks: what the real-shaped
    networks change (the rows: the real-shaped networks first, then the synthetic ones)."""
    from statistics import median

    from scalelab.analysis.calibrate import floors_of
    from scalelab.analysis.latency_fit import features, fit, predict_seconds
    from scalelab.graph import resolve
    from scalelab.spec import load_spec

    peak, rows, real = state["peak_flops"]["fp32"], state["rows"], state["real_shaped"]
    held = {name: features(resolve(load_spec(name))) for name in state["validation_ms"]}
    lines = ["| fitted on | " + " | ".join(held) + " | median |", "|---|" + "---:|" * (len(held) + 1)]
    for label, chosen in (("synthetic networks only", rows[real:]), ("real-shaped networks only", rows[:real]),
                          ("both (what calibrate writes)", rows)):
        unknowns = fit(chosen, floors_of(state), peak)
        errors = [predict_seconds(*held[n], unknowns, peak) / (ms / 1e3) - 1 for n, ms in state["validation_ms"].items()]
        lines.append(f"| {label} ({len(chosen)}) | " + " | ".join(f"{e:+.1%}" for e in errors)
                     + f" | {median(abs(e) for e in errors):.1%} |")
    return lines


def calibrate_section(args) -> list[str]:
    """`scalelab calibrate` timed on this machine as a user runs it (fresh caches: calibrate uses none), with the
    load around it, the stability of what it kept, and its validation on zoo networks never fitted on."""
    import torch

    from scalelab.analysis.calibrate import calibrate

    torch.set_num_threads(args.threads)
    load_before, started = os.getloadavg(), time.time()
    state: dict = {}
    profile = calibrate(args.device, name="bench-calibrated", allow_noisy=args.allow_noisy, keep=state)
    how = f"`benchmarks/bench_latency.py --calibrate-only{' --allow-noisy' if args.allow_noisy else ''}`"
    return section_lines(profile, state, time.time() - started, (load_before, os.getloadavg()), how)


def section_lines(profile, state: dict, seconds: float, loads: tuple, how: str) -> list[str]:
    """The section for one calibration: ``state`` what it measured (calibrate's ``keep``), ``how`` what ran it."""
    from scalelab.analysis.calibrate import VALIDATION

    (load_before, load_after), c = loads, profile.calibration
    return [
        CALIBRATE_SECTION,
        "",
        f"Written by {how} "
        f"({c['device_name']}, {c['threads']} threads, torch {c['torch']}): `scalelab.analysis.calibrate.calibrate`, "
        f"the floors, the calibration networks, the fit and the validation on {len(VALIDATION)} zoo networks never "
        f"fitted on, nor any network cut from them ({', '.join(VALIDATION)}), timed whole, each network's timing "
        "measured afresh (calibrate uses no cache).",
        "",
        f"**Wall time {seconds:.0f} s** (goal: under 3 minutes with the validation). Load average (1/5/15 min) "
        f"before {', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)} on "
        f"{os.cpu_count()} cores; competing load during the timings {c['competing_load_cpus']:.2f} CPUs (limit 0.5).",
        "",
        f"**Median error on the held-out real networks: {c['validation_median_error']:.1%}** (goal: at most 15%).",
        "",
        *_network_table(c),
        "",
        *_fit_lines(c),
        "",
        "The same timings fitted on each set alone and on both, signed error on each held-out network (predicted / "
        "measured - 1) and the median absolute error:",
        "",
        *ablation(state),
        "",
        f"What it kept: each timing the lowest round median, settled to {c['kept_figure_unsettled']:.1%} between the "
        f"odd and the even rounds (tolerance {c['settle_tolerance']:.0%}, limit 5%) after {c['timing_rounds']} rounds; "
        f"the rounds themselves disagreed by {c['round_disagreement']:.0%}."
        + (f" The profile says: {c['warning']}." if "warning" in c else " No warning: the profile is not marked noisy."),
        "",
        *CALIBRATE_HISTORY,
        "",
    ]


#: calibrate runs recorded by hand, with their conditions (the section above is rewritten by each run)
CALIBRATE_HISTORY = [
    "Runs recorded while this was built:",
    "",
    "- Before (the noise check that refused on round-to-round disagreement): the issue that asked for this reports 2 "
    "minutes on an idle 2-core VM (competing load 0.01 CPUs) ending in a refusal, 'repeated rounds of timings disagree "
    "by 31% (limit 10%)'; here, at a 1-minute load average of 0.4-1.0 and 2.00 CPUs of competing load, it refused "
    "after 13 s (4 attempts, 7 s of waiting); with --allow-noisy at load 5-11 it had not finished after 26 min.",
    "- After, with --allow-noisy at a load average of 5-8 (1.30-1.44 CPUs of competing load, two OpenMP threads "
    "descheduled at every barrier): 1196 s, the kept timings unsettled (192%), fit median error 45.9%, validation "
    "median error 51.7%: written with the UNRELIABLE PROFILE warning, as it should be; without --allow-noisy it "
    "refuses on the competing load.",
    "- Fitted on the 36 synthetic networks alone, on a quiet machine (AMD EPYC, load average 0.7, 0.01 CPUs of "
    "competing load): 69 s with the validation, no warning; the held-out networks' median error 18.7% (resnet18 "
    "+24.3%, mobilenet_v2 +36.5%, efficientnet_b0 +13.0%, shufflenet_v2_x1_0 +8.6%, regnet_y_400mf +5.4%, googlenet "
    "+26.6%), the synthetic fit 7.8%, leave-one-out 12.1%.",
    "- Why the real networks were predicted slow (a development run at a quiet moment: load average 1.0-2.0 with the "
    "run itself, 0.03-0.07 CPUs of competing load; the same floors and timings as calibrate, on the 36 synthetic "
    "networks, the first 14 real-shaped ones and the 6 held-out ones): fitted on the synthetic set alone, the held-out "
    "median error was 16.7% (resnet18 +25%, mobilenet_v2 +32%, efficientnet_b0 +5%, shufflenet_v2_x1_0 +9%, "
    "regnet_y_400mf +1%, googlenet +27%) and the real-shaped networks were predicted 11-59% slow (median 35%; only "
    "wide_resnet50_2 fast). That fit put costs of the small synthetic networks into figures real layers do not pay: "
    "the one linear layer of each synthetic network took a fixed 0.75 ms (102 times its floor) and ran at 1/86 of the "
    "peak, standing in for a cost per network (fitted on both sets, both sit at their floors). Fitted on both sets the same "
    "timings gave 6.6% on the held-out networks (resnet18 +21%, mobilenet_v2 +26%, efficientnet_b0 +4%, "
    "shufflenet_v2_x1_0 +1%, regnet_y_400mf +9%, googlenet +2%), the real-shaped networks 7.5%, the synthetic 8.4%. "
    "Extra unknowns tried on the same timings (strided dense convolutions apart, thin-input stems apart, weight bytes "
    "apart from activation bytes, a cost per depthwise channel) did not lower the held-out error of the fit on both "
    "sets, so the model kept its form. resnet18 and mobilenet_v2 stayed predicted slow by about a fifth; for resnet18 "
    "the second block of each stage (none of those 14 cut networks had one) ran at 78% of the peak (its 1.85 GFLOP in "
    "the 13.3 ms resnet18 took beyond resnet34 cut to one block per stage), against 65% fitted for dense convolutions; "
    "the real-shaped set now also holds networks with two blocks per stage.",
    "- The floors took about 66 s of that run, 55 s of it bf16 and fp16 matrix multiplies the CPU only emulates "
    "(0.9 GFLOP/s: 2.3 s per 1024 multiply, 12 runs each); timed on a quarter-size multiply when that slow, they take "
    "13 s, which pays for the 25 real-shaped networks.",
    "- With the 25 real-shaped and 36 synthetic networks, under competing load (load average 5-10): without "
    "--allow-noisy it refused after 9 s (1.62 CPUs of competing load, 4 attempts), as it should; with --allow-noisy "
    "(1.4-1.5 CPUs competing) 690 s, the kept timings unsettled by 79%, fit median error 30.9%, held-out 35.7%, "
    "marked UNRELIABLE PROFILE: noise, not the fit (the held-out networks measured 4-11 times their quiet times). "
    "- Why the held-out networks were still predicted slow by 11-19% in three quiet runs (and by 8% in a fourth): "
    "each calibration network was timed in bursts of two runs per round among 60 others, and the first run of a "
    "burst finds the caches full of the other networks' weights and activations. Timed in the same process, the "
    "held-out networks took 10-30% longer that way than in bursts of five or each in a loop of its own (mobilenet_v2 "
    "24.8 against 17.5 and 19.6 ms, shufflenet_v2_x1_0 20.0 against 15.8 and 18.2 ms), the calibration networks a "
    "median 20% longer (up to 41%). The fit learnt those cold runs, while the held-out networks, timed after them in "
    "a set of six, ran warmer. Now each network runs five times per round (the median is a warm run, as a user's "
    "measurement is) and the held-out networks are timed in the same interleaved set as the calibration networks, so "
    "that the machine's drift between two sets of timings is not read as the model's error. Four development runs "
    "after the change (load average 1.6-1.9 with the runs themselves): held-out median error 7.6%, 8.5%, 8.8% and "
    "8.0%, shufflenet_v2_x1_0 predicted fast by 21-23% in each (its channel split and shuffle), the others within "
    "14%; 44-68 s each.",
    "The figures at the top of this section come from the run its first line names; the goals (wall time under 3 "
    "minutes, held-out median error at most 15%) are for `benchmarks/bench_latency.py --calibrate-only` on a quiet "
    "machine.",
]
