"""Shared test helpers. torch is imported inside the fixtures only, so tests that check the analysis
path stays free of torch can share this file."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: packages the analysis path must never import
HEAVY = ("torch", "torchvision", "fvcore", "optuna", "matplotlib", "ptflops")


def _run_fresh(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter; return its stdout and the HEAVY packages it imported."""
    probe = (f"{code}\nimport sys as _sys\n"
             f"print('HEAVY', sorted({{m.split('.')[0] for m in _sys.modules}} & {set(HEAVY)!r}), file=_sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    heavy_line = [line for line in result.stderr.splitlines() if line.startswith("HEAVY ")][-1]
    return result.stdout, eval(heavy_line[len("HEAVY "):])


@pytest.fixture(scope="session")
def run_fresh():
    """``run_fresh(code) -> (stdout, heavy packages imported)``."""
    return _run_fresh


@pytest.fixture(scope="session")
def cli_fresh():
    """``cli_fresh([...]) -> (stdout, heavy packages imported)``: the CLI in a fresh interpreter."""
    return lambda args: _run_fresh(f"from scalelab.cli import app\napp({list(args)!r}, standalone_mode=False)")


def _count_params(module) -> int:
    """Trainable parameters of a torch module, the way torchvision's docs count them."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _flop_counter_macs(module, x) -> int:
    """MACs of one forward pass by ``torch.utils.flop_counter`` (it counts 2 FLOPs per multiply-add
    of conv, linear and matmul, bias excluded)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


@pytest.fixture(scope="session")
def count_params():
    return _count_params


@pytest.fixture(scope="session")
def flop_counter_macs():
    return _flop_counter_macs


@pytest.fixture(scope="session")
def torchvision_model():
    """Build each torchvision model once per session: ``torchvision_model("resnet50", aux_logits=False)``.
    Models are built without weights (nothing is downloaded) and put in eval mode."""
    import torch
    import torchvision

    cache: dict = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(weights=None, **kwargs)
            cache[key] = model.eval()
        return cache[key]

    return get


def _reference_macs(module, x) -> int:
    """The reference figure an import must equal: FlopCounterMode's total / 2 for one eval-mode
    forward pass, with grad enabled and the math attention kernel (under no_grad, or with the fused
    CPU kernels, FlopCounterMode counts scaled_dot_product_attention and nn.MultiheadAttention's
    fast path as zero)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


@pytest.fixture(scope="session")
def reference_macs():
    """``reference_macs(module, x)``: the MACs an imported spec must count (see _reference_macs)."""
    return _reference_macs
