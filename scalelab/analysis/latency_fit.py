"""The latency model fitted on whole networks, written so that it is linear in its unknowns.

Per layer of latency class k (``scalelab.analysis.latency`` computes exactly this from the fitted profile)::

    time = flops / rate_k * (1 + half_k / n) + bytes / bandwidth + overhead_k

with n the layer's output channels (thin matrix multiplies are slower per FLOP; only the classes in
THIN_CLASSES have a half) and classes without a fitted rate (norms, elementwise layers, merges) computing
at the peak. A network's time is the sum over its layers, so it is linear in the unknowns
1/rate_k, half_k/rate_k, 1/bandwidth and overhead_k: one row per network, fitted by non-negative
least squares on relative error (each row divided by the measured time). Every unknown has a floor
measured separately (no layer computes faster than the matrix-multiply peak, moves bytes faster than
the elementwise bandwidth, or costs less than its class does on a tiny input alone); the fit finds
how far above its floor each one sits. numpy only (no scipy): Lawson & Hanson's active-set NNLS
("Solving Least Squares Problems", 1974, ch. 23).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalelab.analysis.memory import dtype_bytes
from scalelab.blocks.layers import KERNEL_CLASSES, LatencyClass, latency_of
from scalelab.graph.network import Network

if TYPE_CHECKING:
    import numpy as np

#: the classes whose compute rate is fitted; norms and elementwise layers compute at the peak
RATE_CLASSES = (LatencyClass.DENSE_CONV, LatencyClass.POINTWISE_CONV, LatencyClass.GROUPED_CONV,
                LatencyClass.DEPTHWISE_CONV, LatencyClass.STRIDED_DEPTHWISE_CONV, LatencyClass.LINEAR, LatencyClass.POOL)
THIN_CLASSES = (LatencyClass.DENSE_CONV, LatencyClass.POINTWISE_CONV)
OVERHEAD_CLASSES = KERNEL_CLASSES  # every class that launches a kernel has a fixed cost
#: (unknown, class): what each column of the design matrix multiplies
COLUMNS = ([("inv_rate", k) for k in RATE_CLASSES] + [("thin", k) for k in THIN_CLASSES]
           + [("overhead", k) for k in OVERHEAD_CLASSES] + [("inv_bandwidth", "")])
#: one timed network: (its features, the FLOPs it computes at the peak, the measured seconds)
Row = tuple[dict, float, float]


def features(network: Network, dtype: str = "fp32") -> tuple[dict, float]:
    """Per column, the network's sum of flops, flops / n, layer counts and bytes (batch 1); and the
    FLOPs of layers without a fitted rate (they compute at the peak)."""
    found = dict.fromkeys(COLUMNS, 0.0)
    at_peak = 0.0
    for block in network.inference_blocks():
        for cost in block.costs:
            latency_class, width = latency_of(cost.node)
            if latency_class is LatencyClass.FREE:
                continue
            flops = 2 * cost.macs + cost.ops
            if latency_class in RATE_CLASSES:
                found[("inv_rate", latency_class)] += flops
                if latency_class in THIN_CLASSES:
                    assert width is not None  # a thin class is a matrix product, whose latency face gives its width
                    found[("thin", latency_class)] += flops / width
            else:
                at_peak += flops
            found[("overhead", latency_class)] += 1
            found[("inv_bandwidth", "")] += dtype_bytes(dtype) * (cost.params + cost.in_elems + cost.out_elems)
    return found, at_peak


def nnls(a: np.ndarray, b: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """argmin ||a x - b|| subject to x >= 0 (Lawson & Hanson's active-set method)."""
    import numpy as np

    _, n = a.shape
    x, passive = np.zeros(n), np.zeros(n, dtype=bool)
    for _ in range(3 * n):
        gradient = a.T @ (b - a @ x)
        if passive.all() or gradient[~passive].max() <= tol:
            break
        passive[np.argmax(np.where(passive, -np.inf, gradient))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            shrink = passive & (z <= tol)
            step = np.min(x[shrink] / (x[shrink] - z[shrink]))
            x = x + step * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
    return x


def fit(rows: list[Row], floors: dict, peak: float) -> dict:
    """Fit the unknowns (column -> value) on rows of (features, FLOPs at peak, measured seconds),
    each unknown at least its floor (column -> value)."""
    import numpy as np

    a = np.array([[f[c] for c in COLUMNS] for f, _, _ in rows])
    floor = np.array([floors.get(c, 0.0) for c in COLUMNS])
    measured = np.array([t for _, _, t in rows])
    known = np.array([p / peak for _, p, _ in rows]) + a @ floor
    # relative error: each network counts alike, however long it takes
    weighted, target = a / measured[:, None], (measured - known) / measured
    scale = np.linalg.norm(weighted, axis=0)
    scale[scale == 0] = 1.0  # an unknown no row uses stays at its floor
    above = nnls(weighted / scale, target) / scale
    return {c: float(v) for c, v in zip(COLUMNS, floor + above)}


def predict_seconds(found: dict, at_peak: float, unknowns: dict, peak: float) -> float:
    return at_peak / peak + sum(found[c] * unknowns[c] for c in COLUMNS)
