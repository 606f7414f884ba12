"""Cross-checking a spec's analysis against the torch module built from it: every block's output
shape, parameters against torch, MACs against ``torch.utils.flop_counter.FlopCounterMode`` and
fvcore's conv and linear counts. Where a reference counts something else on purpose, the check
says what and whether that part agrees too (fvcore adds batchnorm and adaptive pooling)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scalelab.analysis import analyze
from scalelab.blocks.registry import OPAQUE_KINDS
from scalelab.errors import ScalelabError

if TYPE_CHECKING:
    from scalelab.analysis.costs import Analysis
    from scalelab.spec.model import Spec


@dataclass(frozen=True)
class Check:
    """One figure, scalelab's and a reference's, and whether they agree."""

    quantity: str
    scalelab: object
    reference: object
    source: str
    agrees: bool
    note: str = ""
    explained: bool = False  # the figures differ by what the reference counts on purpose, said in the note

    @property
    def verdict(self) -> str:
        return "explained" if self.explained else ("yes" if self.agrees else "NO")

    def as_dict(self) -> dict:
        return asdict(self)


def _layer_sum(analysis, layer: str, field: str) -> int:
    return sum(getattr(c, field) for b in analysis.blocks if not b.training_only for c in b.layers if c.label == layer)


def _shape_check(net, analysis, x) -> Check:
    import torch

    with torch.no_grad():
        outputs = net.forward_all(x)
    # every tensor a block gives: its output, or each of its several outputs (block.0, block.1, ...)
    expected = {t: shape for b in analysis.network.blocks.values()
                for t, shape in zip(b.tensors(), b.outputs or [b.out_shape])}
    wrong = [f"{t}: {tuple(shape)} vs {tuple(outputs[t].shape[1:])}"
             for t, shape in expected.items() if tuple(outputs[t].shape[1:]) != tuple(shape)]
    n = len(analysis.blocks)
    counted = f"{n} blocks" if len(expected) == n else f"{n} blocks, {len(expected)} outputs"
    return Check("block output shapes", counted, f"{len(expected) - len(wrong)} equal", "built module, forward pass",
                 not wrong, "; ".join(wrong[:3]) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""))


def _param_checks(net, analysis) -> list[Check]:
    inference = sum(p.numel() for m, aux in zip(net.blocks, net.training_only) if not aux for p in m.parameters())
    checks = [Check("parameters", analysis.total.params, inference, "torch: sum(p.numel())",
                    analysis.total.params == inference)]
    if any(net.training_only):
        heads = sum(p.numel() for m, aux in zip(net.blocks, net.training_only) if aux for p in m.parameters())
        checks.append(Check("training-only parameters", analysis.training_only_total.params, heads,
                            "torch: sum(p.numel())", analysis.training_only_total.params == heads,
                            "heads that run only in training (not in the inference total)"))
    return checks


def _flop_counter_check(net, analysis, x) -> Check:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    macs = counter.get_total_flops() // 2
    return Check("MACs", analysis.total.macs, macs, "FlopCounterMode total / 2", analysis.total.macs == macs)


def _fvcore_counts(net, x) -> tuple[dict, int, list]:
    """fvcore's count per operator, its total, and the operators it skips."""
    with warnings.catch_warnings():  # fvcore traces with torch.jit, which torch now warns about
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        counter = FlopCountAnalysis(net, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return dict(counter.by_operator()), counter.total(), sorted(counter.unsupported_ops())


def _fvcore_checks(net, analysis, x) -> list[Check]:
    by_op, total, skipped = _fvcore_counts(net, x)
    conv, linear = by_op.get("conv", 0), sum(by_op.get(k, 0) for k in ("linear", "addmm", "matmul"))
    ours_conv, ours_linear = _layer_sum(analysis, "conv", "macs"), _layer_sum(analysis, "linear", "macs")
    checks = [Check("conv MACs", ours_conv, conv, "fvcore 'conv'", ours_conv == conv),
              Check("linear MACs", ours_linear, linear, "fvcore 'linear' + 'addmm' + 'matmul'", ours_linear == linear)]
    batchnorm = _layer_sum(analysis, "batchnorm", "ops")
    extra = {k: v for k, v in by_op.items() if k not in ("conv", "linear", "addmm", "matmul")}
    why = {"batch_norm": f"2 per element, equal to scalelab's batchnorm other ops {batchnorm:,}" if
           extra.get("batch_norm") == batchnorm else f"scalelab's batchnorm other ops are {batchnorm:,}",
           "adaptive_avg_pool2d": "1 add per input element, counted by scalelab as pooling other ops"}
    parts = [f"{k} {v:,} ({why.get(k, 'not a MAC: scalelab counts it as other ops')})" for k, v in sorted(extra.items())]
    note = "fvcore adds " + " and ".join(parts) + " to the MACs" if parts else ""
    if skipped:
        note += ("; " if note else "") + "fvcore skips " + ", ".join(op.replace("aten::", "") for op in skipped[:6]) \
            + (f" and {len(skipped) - 6} more" if len(skipped) > 6 else "")
    # fvcore has no handle for scaled dot-product attention: it skips the attention's MACs
    unseen = _layer_sum(analysis, "attention", "macs") if "aten::scaled_dot_product_attention" in skipped else 0
    if unseen:
        note += f" (attention's {unseen:,} MACs among them)"
    explained = total != analysis.total.macs and total == analysis.total.macs + sum(extra.values()) - unseen \
        and extra.get("batch_norm", batchnorm) == batchnorm
    checks.append(Check("fvcore total", analysis.total.macs, total, "fvcore total", total == analysis.total.macs or explained,
                        note, explained))
    return checks


def verify(spec: "str | Path | Spec", resolution: "int | tuple[int, int] | None" = None
           ) -> tuple[Analysis, list[Check]]:
    """The analysis of ``spec`` and every cross-check against its built module (batch 1, eval mode)."""
    import torch

    from scalelab.build import build_module  # torch: only when a module is built

    analysis = analyze(spec, resolution=resolution)
    opaque = [b.name for b in analysis.network.blocks.values() if b.kind in OPAQUE_KINDS]
    if opaque:
        raise ScalelabError(f"{analysis.name}: {len(opaque)} opaque block(s) ({', '.join(opaque[:3])}) have no module "
                            "to build; there is nothing to verify them against")
    torch.manual_seed(0)
    net = build_module(analysis.network).eval()
    x = torch.randn(1, *analysis.input_shape)
    checks = [_shape_check(net, analysis, x), *_param_checks(net, analysis), _flop_counter_check(net, analysis, x),
              *_fvcore_checks(net, analysis, x)]
    return analysis, checks


def _figure(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def checks_table(analysis, checks: list[Check]) -> str:
    """One agreement table, then a line per disagreement or explanation."""
    shape = "x".join(map(str, analysis.input_shape))
    rows = [("check", "scalelab", "reference", "source", "agrees")]
    rows += [(c.quantity, _figure(c.scalelab), _figure(c.reference), c.source, c.verdict)
             for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"{analysis.name}: the spec's analysis against its built module, input {shape}, batch 1, eval mode", ""]
    lines += ["  ".join(cell.ljust(w) if i != 1 and i != 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
              for r in rows]
    notes = [f"- {c.quantity}: {c.note}" for c in checks if c.note]
    wrong = [c.quantity for c in checks if not c.agrees]
    lines += ["", *notes, "", f"MISMATCH in {', '.join(wrong)}" if wrong else "every check agrees"]
    return "\n".join(lines) + "\n"
