"""A zero-cost accuracy proxy: SynFlow (Tanaka et al. 2020, "Pruning neural networks without any
data by iteratively conserving synaptic flow"), used as a training-free architecture score by
Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS").

The score ranks candidates; it is not an accuracy, so the estimate's ``top1`` is None and its
``score`` holds log10 of the synaptic flow. torch is imported here only.
"""

from __future__ import annotations

import math

from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy.estimate import AccuracyEstimate
from scalelab.scaling.compound import scale_spec
from scalelab.spec import Spec


def synflow(spec: Spec, resolution: int = 64, batch: int = 1, seed: int = 0) -> float:
    """log10 of sum |theta * dR/dtheta| with every weight replaced by its absolute value, an input of
    ones and R the sum of the outputs, computed in float64 in eval mode (batchnorm uses its initial
    running statistics, so the score does not depend on the batch). Deterministic for a seed."""
    import torch

    from scalelab.build import build_module  # torch: only when a module is built

    if resolution < 1 or batch < 1:
        raise ScalelabError(f"proxy resolution and batch must be positive, got {resolution} and {batch}")
    threads = torch.get_num_threads()
    # A small probe gains nothing from threads, and a search may score several candidates at once:
    # one thread avoids oversubscribing the cores (which slows such small ops down a hundredfold).
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_module(spec, resolution)
        net = net.double().eval()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        net.zero_grad()
        x = torch.ones((batch, spec.input.channels, resolution, resolution), dtype=torch.float64)
        net(x).sum().backward()
        total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    finally:
        torch.set_num_threads(threads)
    if not math.isfinite(total) or total <= 0:
        raise ScalelabError(f"the synflow score of {spec.name} overflowed at {resolution}px; try a smaller proxy resolution")
    return math.log10(total)


def proxy_estimate(base: Spec, depth: float, width: float, pixels: int, *, resolution_px: int = 64,
                   batch: int = 1, seed: int = 0):
    """Score the scaled network at a small probe resolution: ``resolution_px`` times the
    resolution multiplier, so candidates keep their relative input sizes."""
    probe = max(8, int(round(resolution_px * pixels / base.input.resolution[0])))
    scaled = scale_spec(base, depth, width, probe)
    probe = scaled.input.resolution[0]  # rounded as the spec needs (whole patches: a ViT's, MobileViT's)
    score = synflow(scaled, probe, batch, seed)
    detail = (f"synflow zero-cost proxy (Tanaka et al. 2020) of {base.name} scaled by depth x{depth:g}, "
              f"width x{width:g}, probed at {probe}px, batch {batch}, seed {seed}: log10 score {score:.3f}; "
              "for ranking only, not an accuracy")
    return AccuracyEstimate(None, "proxy", detail, extrapolated=False, score=score)
