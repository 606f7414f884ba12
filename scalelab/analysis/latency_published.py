"""Published PyTorch-eager measurements (``scalelab/devices/published/*.csv``, one file per source with its
citation in its header comments) as rows a device profile can be fitted on and checked against.

Each row is one network at one resolution, GPU, precision and batch, with the time per batch its
published average throughput implies (batch / throughput: NVIDIA's 'Latency Avg' column includes
outliers, e.g. EfficientNet-B0 AMP batch 256 on A100: 39.05 ms average, 25.0 ms from 10,239 img/s).
A published network is resolved to a zoo spec (resnet50), a compound scaling of one (EfficientNet-B4
from B0), or a zoo spec with its stage repeats changed (ResNeXt-101 32x4d from ResNeXt-50 32x4d);
one scalelab cannot build (EfficientNet-WideSE) is named in ``skipped``, never guessed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from scalelab.graph import resolve
from scalelab.graph.network import Network
from scalelab.scaling.efficientnet import efficientnet
from scalelab.spec import Spec, parse_spec
from scalelab.spec.load import load_spec, zoo_path

#: the GPU names the sources use -> the shipped profile
GPUS = {"T4": "t4", "A100": "a100", "RTX 4090": "rtx4090"}
#: the sources' precisions -> scalelab's --dtype (NVIDIA's 'Mixed Precision' and timm's --amp are autocast)
PRECISIONS = {"FP32": "fp32", "TF32": "tf32", "AMP": "amp"}
#: timm's model names for the zoo's networks
TIMM_NAMES = {"mobilenetv2_100": "mobilenet_v2", "mobilenetv3_large_100": "mobilenet_v3_large",
              "mobilenetv3_small_100": "mobilenet_v3_small", "mobilenetv1_100": "mobilenet_v1",
              "regnety_004": "regnet_y_400mf"}


@dataclass(frozen=True)
class PublishedRow:
    source: str  # the CSV's stem
    network: str  # as the source names it
    resolution: int
    profile: str  # the shipped profile of its GPU
    dtype: str
    batch: int
    ms: float  # time per batch: 1000 * batch / throughput

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.network, self.resolution, self.dtype)


def published_dir() -> Path:
    return Path(str(resources.files("scalelab.devices") / "published"))


def _lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def load_rows(path: Path) -> list[PublishedRow]:
    """One source's rows: NVIDIA's layout (network, gpu, precision, ...) or timm's (model, infer_*: RTX 4090, AMP)."""
    rows = []
    for r in _lines(path):
        if "model" in r:  # timm's benchmark CSV
            rows.append(PublishedRow(path.stem, r["model"], int(r["infer_img_size"]), "rtx4090", "amp",
                                     int(r["infer_batch_size"]),
                                     1e3 * int(r["infer_batch_size"]) / float(r["infer_samples_per_sec"])))
        else:
            rows.append(PublishedRow(path.stem, r["network"], int(r["resolution"]), GPUS[r["gpu"]],
                                     PRECISIONS[r["precision"]], int(r["batch"]),
                                     1e3 * int(r["batch"]) / float(r["throughput_img_s"])))
    return rows


def all_rows() -> list[PublishedRow]:
    return [row for path in sorted(published_dir().glob("*.csv")) for row in load_rows(path)]


def _zoo(name: str) -> Callable[[], Spec]:
    def build() -> Spec:
        return load_spec(name)
    return build


def _resnext101(se: bool) -> Spec:
    """ResNeXt-101 32x4d (Xie et al. 2017: stages 3, 4, 23, 3) from the zoo's ResNeXt-50 32x4d; with
    ``se``, SE-ResNeXt (Hu et al. 2018, reduction 16), its squeeze-excite after the grouped conv, where
    scalelab's bottleneck puts it (the paper's is after the last 1x1: the same kernels, on fewer channels)."""
    text = zoo_path("resnext50_32x4d").read_text(encoding="utf-8").replace("repeat: 6,", "repeat: 23,")
    if se:
        text = text.replace("groups: 32}", "groups: 32, se: 0.0625}")
    return parse_spec(text, "resnext101_32x4d")


def _efficientnet(variant: str) -> Callable[[], Spec]:
    def build() -> Spec:
        return efficientnet(variant)
    return build


def builder(name: str) -> Optional[Callable[[], Spec]]:
    """How to build a published network's spec; None where scalelab cannot build it."""
    special = {"resnext101-32x4d": lambda: _resnext101(False), "se-resnext101-32x4d": lambda: _resnext101(True),
               "efficientnet-b0": _zoo("efficientnet_b0"), "efficientnet-b4": _efficientnet("b4"),
               "efficientnet_b4": _efficientnet("b4")}
    if name in special:
        return special[name]
    zoo = TIMM_NAMES.get(name, name)
    return _zoo(zoo) if zoo_path(zoo).is_file() else None


@lru_cache(maxsize=None)
def network(name: str, resolution: int) -> Network:
    build = builder(name)
    assert build is not None, name
    return resolve(build(), resolution)


def usable(rows: list[PublishedRow]) -> tuple[list[PublishedRow], list[str]]:
    """The rows whose network scalelab builds, and the names of those it cannot (skipped, said so)."""
    kept = [r for r in rows if builder(r.network) is not None]
    skipped = sorted({r.network for r in rows if builder(r.network) is None})
    return kept, skipped
