"""What `analyze` adds for the course's practical advice: training compute (``--mode train``),
cached features for transfer learning (``--cache-features``), ensembles and multi-crop
(``--ensemble``, ``--crops``). Each part gives words for every format (notes), data for JSON
(figures), and per-block columns where it has them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from scalelab.analysis.ensemble import RULES, ensemble_figures, parse_ensemble
from scalelab.analysis.training import RULE, training_compute
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.report import Column, human_bytes, human_count
from scalelab.spec import load_spec


@dataclass
class Extra:
    columns: list[Column] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def add(self, other: "Extra") -> "Extra":
        self.columns += other.columns
        self.notes += other.notes
        self.data.update(other.data)
        return self


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def ensemble_extra(ens, batch: int) -> Extra:
    """The combined per-image figures of an ensemble and/or multi-crop, with each member's."""
    total = ens.total()
    # counts are whole multiples of the batch; bytes and latency are for the batch of batch x crops images
    per_image = {"params": total["params"], **{k: total[k] // batch for k in ("macs", "other_ops", "averaging_ops")}}
    members = [{"name": m.name, "params": m.params, "weight_bytes": m.weight_bytes, "macs": m.macs,
                "other_ops": m.other_ops, "activation_peak_bytes": m.activation_peak_bytes,
                "training_bytes": m.training_bytes, "predicted_ms": m.predicted_ms, "top1": m.top1,
                "top1_source": m.top1_source} for m in ens.members]
    accuracy = ens.accuracy()
    data = {"models": ens.models, "crops": ens.crops, "batch": ens.batch, "rules": RULES,
            "units": {"macs": "multiply-accumulates per batch of images (all crops)", "other_ops": "operations per batch",
                      "averaging_ops": "operations per batch", "predicted_ms": "milliseconds per batch",
                      "*_bytes": "bytes", "params": "parameters"},
            "total": total, "per_image": per_image, "members": members,
            "accuracy": None if accuracy is None else {
                "top1": accuracy.top1, "interval_80": [accuracy.low, accuracy.high], "error_ratio": accuracy.error_ratio,
                "extrapolated": accuracy.extrapolated, "method": accuracy.detail}}
    names = " + ".join(m.name for m in ens.members)
    words = (f"Ensemble of {ens.models} ({names}) x {ens.crops} crop{'s' if ens.crops > 1 else ''}, per image: "
             f"params {human_count(total['params'])}, MACs {human_count(per_image['macs'])}, other ops "
             f"{human_count(per_image['other_ops'])} (+ {human_count(per_image['averaging_ops'])} averaging); weights "
             f"{human_bytes(total['weight_bytes'])}, activation peak {human_bytes(total['activation_peak_bytes'])} at "
             f"batch {ens.batch} x {ens.crops} crops, training memory {human_bytes(total['training_bytes'])} at batch "
             f"{ens.batch}")
    if total["predicted_ms"] is not None:
        words += f", predicted latency {_ms(total['predicted_ms'])} per batch of {ens.batch} x {ens.crops} crops"
    notes = [words + ".", f"Ensemble and crop rules: {RULES}"]
    if accuracy is not None:
        notes.append(f"Ensemble top-1 estimate: {accuracy.top1:.2f} [80%: {accuracy.low:.2f}, {accuracy.high:.2f}] by "
                     f"{accuracy.detail}.")
    else:
        notes.append("Ensemble top-1: not estimated (a member has no published top-1 in its spec's reference).")
    return Extra(notes=notes, data={"ensemble": data})


def training_extra(network, batch: int, freeze_until: Optional[str]) -> Extra:
    """Per-block backward and training-step MACs, and the totals of one step."""
    tc = training_compute(network, batch, freeze_until)

    def per_block(attr):
        return lambda b, ctx: getattr(tc.blocks[b.name], attr) if b.name in tc.blocks else None

    columns = [Column("backward_macs", "Bwd MACs", "multiply-accumulates of the backward pass (input + weight gradients)",
                      per_block("backward_macs")),
               Column("train_macs", "Train MACs", "multiply-accumulates of one training step (forward + backward)",
                      per_block("total_macs"))]
    frozen = f", frozen through {freeze_until}" if freeze_until else ""
    note = (f"Training compute (batch {batch}{frozen}; training-only blocks included): forward "
            f"{human_count(tc.forward_macs)} MACs, backward {human_count(tc.backward_macs)} (input gradients "
            f"{human_count(tc.input_grad_macs)}, weight gradients {human_count(tc.weight_grad_macs)}), total "
            f"{human_count(tc.total_macs)} MACs per step; forward other ops {human_count(tc.forward_ops)} (their backward "
            f"not counted). Rule: {RULE}.")
    return Extra(columns, [note], {"training_compute": tc.as_dict()})


def transfer_extra(network, freeze_until: Optional[str], dtype: str, images: Optional[int], epochs: Optional[int]) -> Extra:
    from scalelab.analysis.transfer import transfer_costs  # networkx: only when asked for transfer costs

    t = transfer_costs(network, freeze_until, dtype, images, epochs)
    data = t.as_dict()
    words = (f"Cached features (frozen through {freeze_until}, {dtype}): {human_bytes(t.cached_feature_bytes_per_image)} "
             f"per image ({', '.join(t.cached_blocks)}); one-time {human_count(t.one_time_macs_per_image)} MACs per image "
             f"(the frozen forward); then {human_count(t.epoch_macs_per_image)} MACs per image per epoch (trained part, "
             f"forward + backward), against {human_count(t.uncached_epoch_macs_per_image)} without the cache")
    if images is not None:
        words += (f". For {images:,} images x {data['epochs']} epochs: {human_count(data['total_macs'])} MACs and "
                  f"{human_bytes(data['disk_bytes'])} on disk, against {human_count(data['without_cache']['total_macs'])} "
                  f"MACs without the cache (x{data['speedup']:.3g} less work)")
    note = words + ". A cache fixes each image's frozen features: random augmentation needs one cached copy per view."
    return Extra(notes=[note], data={"transfer": data})


def analyze_extra(network, spec: str, *, batch: int, dtype: Optional[str], device: Optional[str], optimizer: str,
                  mode: str, freeze_until: Optional[str], crops: int, ensemble: Optional[str],
                  cache_features: bool = False, images: Optional[int] = None, epochs: Optional[int] = None) -> Extra:
    """Everything the advice options add to an analysis (empty when none is given)."""
    extra = Extra()
    if mode == "train":
        extra.add(training_extra(network, batch, freeze_until))
    if cache_features or images is not None or epochs is not None:
        if mode != "train" or not cache_features:
            raise ScalelabError("--cache-features, --images and --epochs go with --mode train --freeze-until BLOCK "
                                "--cache-features")
        extra.add(transfer_extra(network, freeze_until, dtype or "fp32", images, epochs))
    if crops != 1 or ensemble is not None:
        names = parse_ensemble(ensemble, spec)
        networks = [network if n == spec else resolve(load_spec(n), tuple(network.input_shape[1:])) for n in names]
        extra.add(ensemble_extra(ensemble_figures(networks, crops=crops, batch=batch, dtype=dtype or "fp32",
                                                  device=device, optimizer=optimizer), batch))
    return extra
