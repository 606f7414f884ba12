"""Memory and latency for an analysis report: extra columns (through the report's column
extension point) and the network-level figures (inference peak, training totals, how latencies were
obtained) that every output format carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from scalelab.analysis.latency import predict_latency
from scalelab.analysis.measure import measure_latency
from scalelab.analysis.memory import (
    ATTENTION_KERNELS, INFERENCE_KERNELS, best_order, fallback_note, inference_memory, training_memory,
)
from scalelab.devices import load_profile
from scalelab.report import Column, human_bytes


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass
class DeviceFigures:
    """What --device, --dtype, --measure and --mode add to an analysis."""

    columns: list[Column] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # for JSON: figures with units and conditions
    extra_totals: list = field(default_factory=list)  # rows after the total: (label, values)


def device_figures(network, *, dtype: str, batch: int, device: Optional[str], measure: bool,
                   mode: str, optimizer: str, freeze_until: Optional[str], measure_on: str = "cpu",
                   use_cache: bool = True, allow_noisy: bool = False, attention_kernel: str = "math") -> DeviceFigures:
    out = DeviceFigures()
    memory = inference_memory(network, dtype, batch, attention_kernel=attention_kernel)
    out.columns.append(Column("weight_bytes", "Weights", f"bytes of weights at {dtype}",
                              lambda b, ctx: memory.blocks[b.name].weight_bytes if b.name in memory.blocks else None,
                              human_bytes))
    out.columns.append(Column("alive_bytes", "Alive", "bytes of activations alive at the block's inner peak (the network "
                              "input, tensors kept for later blocks, the block's inputs, temporaries and output)",
                              lambda b, ctx: memory.blocks[b.name].alive_bytes if b.name in memory.blocks else None,
                              human_bytes, summed=False))
    out.columns.append(Column("block_peak_bytes", "Block peak", "bytes the block's own layers hold at once "
                              "(temporaries and output)",
                              lambda b, ctx: memory.blocks[b.name].inner_peak_bytes if b.name in memory.blocks else None,
                              human_bytes, summed=False))
    better = best_order(network, dtype, batch, state_limit=20_000, attention_kernel=attention_kernel)
    out.notes.append(
        f"Inference memory ({dtype}, batch {batch}): weights {human_bytes(memory.weight_bytes)}, activation peak "
        f"{human_bytes(memory.peak_bytes)} at block {memory.peak_block} in the spec's execution order, total "
        f"{human_bytes(memory.total_bytes)}; model: {memory.model}. Lowest peak over execution orders "
        f"({'exact search' if better.exact else 'greedy'}): {human_bytes(better.peak_bytes)}"
        + ("" if better.peak_bytes >= memory.peak_bytes else f" with order {' -> '.join(better.order)}")
        + (f"; attention run by {INFERENCE_KERNELS[memory.attention_kernel]}{fallback_note(memory.math_blocks)}."
           if memory.attention_kernel else "."))
    out.data["memory"] = {
        "unit": "bytes", "dtype": dtype, "batch": batch, "model": memory.model,
        "weight_bytes": memory.weight_bytes, "peak_activation_bytes": memory.peak_bytes,
        "peak_block": memory.peak_block, "total_bytes": memory.total_bytes,
        "lowest_peak_bytes": better.peak_bytes, "lowest_peak_order": list(better.order),
        "lowest_peak_exact": better.exact, "attention_kernel": memory.attention_kernel,
        "attention_math_blocks": memory.math_blocks,
    }
    if mode == "train":
        if freeze_until is not None:
            freeze_until = network.block_named(freeze_until, "--freeze-until")  # a stage: its last block
        # what autograd saves differs by device kind (dropout's mask): the profile's kind, else this CPU
        kind = load_profile(device).kind if device is not None else "cpu"
        _training(out, training_memory(network, dtype, batch, optimizer, freeze_until, device=kind,
                                       attention_kernel=attention_kernel))
    prediction = None
    if device is not None:
        prediction = predict_latency(network, device, dtype, batch)
        out.columns.append(Column("predicted_ms", "Pred. ms", f"milliseconds, each {prediction.error_text}, predicted by "
                                  f"{prediction.method}",
                                  lambda b, ctx: prediction.blocks[b.name].ms if b.name in prediction.blocks else None,
                                  _ms))
        out.notes.append(f"Predicted latency on {prediction.device} ({dtype}, batch {batch}): "
                         f"{prediction.total_ms:.3f} ms {prediction.error_text}, by {prediction.method}.")
        low, high = prediction.band()
        out.data["predicted_latency"] = {"unit": "milliseconds", "device": prediction.device, "dtype": dtype,
                                         "batch": batch, "total_ms": prediction.total_ms, "method": prediction.method,
                                         "regime": prediction.regime, "error": prediction.error,
                                         "error_basis": prediction.error_basis, "band_ms": [low, high]}
    if measure:
        measured = _measured(out, network, dtype, batch, measure_on, use_cache, allow_noisy)
        if prediction is not None:
            _prediction_error(out, prediction, measured)
    return out


def _prediction_error(out: DeviceFigures, prediction, measured) -> None:
    """How far the prediction is from what was just measured: the predictor reports its own error."""
    from statistics import median

    network = abs(prediction.total_ms - measured.network.median_ms) / measured.network.median_ms
    per_block = [abs(prediction.blocks[n].ms - t.median_ms) / t.median_ms
                 for n, t in measured.blocks.items() if n in prediction.blocks and t.median_ms > 0]
    block_text = f", per-block median {100 * median(per_block):.1f}% over {len(per_block)} blocks" if per_block else ""
    out.notes.append(f"Prediction error against this measurement: network {100 * network:.1f}%{block_text} "
                     f"(absolute percentage error; the profile's figures, not this machine's, unless it was calibrated here).")
    out.data["prediction_error"] = {"unit": "fraction of measured", "network": network,
                                    "per_block_median": median(per_block) if per_block else None}


def _training(out: DeviceFigures, tm) -> None:
    def per_block(attr):
        return lambda b, ctx: getattr(tm.blocks[b.name], attr) if b.name in tm.blocks else None

    for key, header, unit in (("gradient_bytes", "Grads", "bytes of gradients"),
                              ("optimizer_bytes", "Opt. state", f"bytes of {tm.optimizer} optimizer state"),
                              ("saved_bytes", "Saved acts", "bytes of activations saved for backward"),
                              ("training_bytes", "Train total", "bytes: weights + gradients + optimizer state + saved activations")):
        out.columns.append(Column(key, header, unit, per_block("total_bytes" if key == "training_bytes" else key), human_bytes))
    frozen = f", frozen up to {tm.freeze_until}" if tm.freeze_until else ""
    out.notes.append(
        f"Training memory ({tm.dtype}, batch {tm.batch}, {tm.optimizer}{frozen}; training-only blocks included): "
        f"weights {human_bytes(tm.weight_bytes)}, gradients {human_bytes(tm.gradient_bytes)}, optimizer state "
        f"{human_bytes(tm.optimizer_bytes)}, saved activations {human_bytes(tm.saved_bytes)}, total "
        f"{human_bytes(tm.total_bytes)}; saved activations follow what torch's autograd keeps per layer"
        + (f", attention run by {ATTENTION_KERNELS[tm.attention_kernel]}{fallback_note(tm.math_blocks)}."
           if tm.attention_kernel else "."))
    out.data["training_memory"] = {
        "unit": "bytes", "dtype": tm.dtype, "batch": tm.batch, "optimizer": tm.optimizer, "freeze_until": tm.freeze_until,
        "weight_bytes": tm.weight_bytes, "gradient_bytes": tm.gradient_bytes, "optimizer_bytes": tm.optimizer_bytes,
        "saved_activation_bytes": tm.saved_bytes, "total_bytes": tm.total_bytes, "attention_kernel": tm.attention_kernel,
        "attention_math_blocks": tm.math_blocks,
    }


def _measured(out: DeviceFigures, network, dtype: str, batch: int, on: str, use_cache: bool = True,
              allow_noisy: bool = False):
    m = measure_latency(network, on, dtype, batch, use_cache=use_cache, allow_noisy=allow_noisy)
    assert m.network is not None  # timed whole: measure_latency's default (whole=True)
    out.columns.append(Column("measured_ms", "Meas. ms", f"milliseconds, median {m.method}; the total row "
                              "sums the blocks timed alone, the row after it times the network whole",
                              lambda b, ctx: m.blocks[b.name].median_ms if b.name in m.blocks else None, _ms))
    out.columns.append(Column("measured_cached", "Cached", "whether the timing comes from the cache of an earlier "
                              "run (--no-cache measures again)",
                              lambda b, ctx: m.blocks[b.name].cached if b.name in m.blocks else None,
                              lambda v: "-" if v is None else ("yes" if v else ""), summed=False))
    out.columns.append(Column("measured_spread_ms", "Spread ms", "milliseconds, inter-quartile range of the measured runs",
                              lambda b, ctx: m.blocks[b.name].spread_ms if b.name in m.blocks else None, _ms, summed=False))
    blocks_sum = sum(t.median_ms for t in m.blocks.values())
    cached = sum(t.cached for t in m.blocks.values()) + bool(m.network.cached)
    out.extra_totals.append(("Network timed whole", {"measured_ms": m.network.median_ms,
                                                     "measured_cached": m.network.cached,
                                                     "measured_spread_ms": m.network.spread_ms}))
    cache_text = (f" {cached} of {len(m.blocks) + 1} timings come from the cache of an earlier run, measured under "
                  f"that run's load (--no-cache measures again)." if cached else "")
    out.notes.append(f"Measured latency: the network timed whole {m.network.median_ms:.3f} ms (inter-quartile range "
                     f"{m.network.spread_ms:.3f} ms); the blocks timed alone sum to {blocks_sum:.3f} ms (each pays its "
                     f"own launch and cache warm-up).{cache_text} Conditions: "
                     + ", ".join(f"{k} {v}" for k, v in m.conditions.items()) + ".")
    out.data["measured_latency"] = {"unit": "milliseconds", "network_median_ms": m.network.median_ms,
                                    "network_spread_ms": m.network.spread_ms, "network_cached": m.network.cached,
                                    "sum_of_blocks_alone_ms": blocks_sum, "cached_timings": cached,
                                    "method": m.method, "conditions": m.conditions, "noisy": m.network.noisy,
                                    "competing_load_cpus": m.network.other_cpus}
    return m
