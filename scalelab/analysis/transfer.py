"""Transfer learning with cached features: run the frozen part once over the data, store what the
trained part reads from it, and train on the stored features (the course notes' advice for small
datasets: "precompute till the last frozen layer, then train the rest on it").

  * cached tensors: the outputs of frozen blocks that a trained block reads (for a chain frozen
    through block X, X's output);
  * one-time work: the forward pass of the frozen blocks those tensors need;
  * epoch work: the trained blocks' forward and backward (``scalelab.analysis.training``); nothing
    flows back into a cached input.

Side by side: training without a cache runs the frozen forward again every epoch. A cache fixes each
image's frozen features, so random augmentation of the input is lost (one cached copy per view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import networkx as nx

from scalelab.analysis.memory import dtype_bytes
from scalelab.analysis.train_walk import frozen_prefix
from scalelab.analysis.training import training_compute
from scalelab.blocks.layers import elements
from scalelab.errors import ScalelabError
from scalelab.graph import INPUT, Network


@dataclass(frozen=True)
class Transfer:
    freeze_until: str
    dtype: str
    cached_blocks: tuple[str, ...]
    cached_feature_bytes_per_image: int
    one_time_macs_per_image: int
    epoch_macs_per_image: int  # trained part, forward + backward, reading the cache
    uncached_epoch_macs_per_image: int  # the same step without a cache: frozen forward every epoch
    images: Optional[int] = None
    epochs: Optional[int] = None

    def as_dict(self) -> dict:
        out: dict = {
            "unit": "multiply-accumulates per image; bytes", "freeze_until": self.freeze_until, "dtype": self.dtype,
            "cached_blocks": list(self.cached_blocks),
            "cached_feature_bytes_per_image": self.cached_feature_bytes_per_image,
            "one_time_macs_per_image": self.one_time_macs_per_image,
            "epoch_macs_per_image": self.epoch_macs_per_image,
            "without_cache": {"epoch_macs_per_image": self.uncached_epoch_macs_per_image},
        }
        if self.images is not None:
            n, e = self.images, self.epochs or 1
            cached = n * self.one_time_macs_per_image + e * n * self.epoch_macs_per_image
            plain = e * n * self.uncached_epoch_macs_per_image
            out.update({"images": n, "epochs": e, "total_macs": cached,
                        "disk_bytes": n * self.cached_feature_bytes_per_image})
            out["without_cache"].update({"total_macs": plain, "disk_bytes": 0})
            out["speedup"] = plain / cached
        return out


def cached_blocks(network: Network, frozen: set[str]) -> list[str]:
    """Frozen blocks whose output a trained block reads, in execution order."""
    read = {src for b in network.blocks.values() if b.name not in frozen for src in b.sources}
    return [name for name in network.blocks if name in frozen and name in read]


def cached_elements(network: Network, frozen: set[str]) -> int:
    """Elements per image of the frozen tensors a trained block reads: each output of a split that
    is read, nothing for a source (a weight, the same for every image)."""
    read = {t for b in network.blocks.values() if b.name not in frozen for t in b.inputs}
    return sum(elements(shape) for b in network.blocks.values() if b.name in frozen and not b.source
               for t, shape in zip(b.tensors(), b.outputs or [b.out_shape]) if t in read)


def transfer_costs(network: Network, freeze_until: Optional[str], dtype: str = "fp32",
                   images: Optional[int] = None, epochs: Optional[int] = None) -> Transfer:
    if freeze_until is None:
        raise ScalelabError("--cache-features needs --freeze-until BLOCK: the frozen part whose output is cached")
    for what, value in (("--images", images), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise ScalelabError(f"{what}: at least 1, got {value}")
    if epochs is not None and images is None:
        raise ScalelabError("--epochs needs --images N: the totals are for N images over the epochs")
    frozen = frozen_prefix(network, freeze_until)
    cached = cached_blocks(network, frozen)
    if not cached:
        raise ScalelabError(f"--cache-features: no trained block reads a block frozen through '{freeze_until}'")
    needed = set(cached).union(*(nx.ancestors(network.graph, c) for c in cached)) - {INPUT}
    step = training_compute(network, 1, freeze_until)
    return Transfer(
        freeze_until, dtype, tuple(cached),
        dtype_bytes(dtype) * cached_elements(network, frozen),
        sum(step.blocks[n].forward_macs for n in needed),
        step.trained_macs(),  # a trained block reading a frozen output computes no gradient into it
        step.total_macs,
        images, epochs,
    )
