"""Real-shaped networks for latency calibration: zoo networks cut to reduced depth (each stage's repeats
capped, a few named blocks dropped) and run at a resolution of their own, so that the fit sees layers at
the channel counts, spatial sizes, kernels and groupings real networks have (stems on 224-pixel
inputs, 512- to 2048-channel 1x1 convolutions on 7x7 maps, depthwise convolutions on 112x112 maps,
inception branches, squeeze-excite on real widths), which the random synthetic set
(``scalelab.devices.synthetic``, widths up to 320) does not reach.

The zoo networks calibration validates on (``HELD_OUT``) are never a source here, at any depth or
resolution: the error reported on them is a held-out one. Pure data: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.errors import ScalelabError
from scalelab.spec.load import load_spec
from scalelab.spec.model import Spec, Stage

#: zoo networks that calibration validates on and therefore never fits on: dense, grouped, depthwise,
#: squeeze-excite, channel-shuffle and multi-branch, all quick on a CPU
HELD_OUT = ("resnet18", "mobilenet_v2", "efficientnet_b0", "shufflenet_v2_x1_0", "regnet_y_400mf", "googlenet")


@dataclass(frozen=True)
class Source:
    """One real-shaped network: the zoo network ``zoo`` with each stage repeated at most ``repeat``
    times and the blocks named in ``drop`` left out, at ``resolution`` pixels."""

    zoo: str
    repeat: int
    resolution: int
    drop: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        cut = "-".join(self.drop)
        return f"{self.zoo}_r{self.repeat}_{self.resolution}" + (f"_without_{cut}" if cut else "")


#: the real-shaped calibration set: every source family the held-out networks' layers come from
#: (basic and bottleneck residual stages, grouped bottlenecks, separable and inverted-residual stages
#: with and without squeeze-excite, fused inverted residuals, dense concatenation, inception branches,
#: small CIFAR maps), at reduced depth so that the whole set times in seconds
SOURCES = (
    Source("resnet34", 1, 224),
    Source("plain34", 2, 192),
    Source("resnet50", 1, 224),
    Source("resnet50", 1, 160),
    Source("resnet101", 2, 192),
    Source("resnext50_32x4d", 1, 192),
    Source("resnext50_32x4d", 2, 160),
    Source("wide_resnet50_2", 1, 128),
    Source("mobilenet_v1", 1, 224),
    Source("mobilenet_v1", 2, 160),
    Source("mobilenet_v1", 1, 192),
    Source("mobilenet_v3_large", 1, 224),
    Source("mobilenet_v3_large", 2, 192),
    Source("mobilenet_v3_small", 1, 224),
    Source("mobilenet_v3_small", 2, 256),
    Source("efficientnet_v2_s", 1, 192),
    Source("efficientnet_v2_s", 2, 160),
    Source("densenet121", 2, 224),
    Source("densenet121", 1, 192),
    Source("googlenet_paper", 1, 224, ("lrn1", "lrn2", "inception4b", "inception4c", "inception4d")),
    Source("googlenet_paper", 1, 192, ("lrn1", "lrn2", "inception3b", "inception4e", "inception5a")),
    Source("resnet56", 1, 32),
    Source("resnet110", 2, 32),
    Source("vgg16_bn", 1, 96, ("avgpool", "fc6", "drop6", "fc7", "drop7")),
    Source("vgg16_bn", 1, 128, ("avgpool", "fc6", "drop6", "fc7", "drop7")),
)


def _cut(spec: Spec, source: Source) -> Spec:
    blocks: list = []  # stages and blocks, as the spec lists them
    for entry in spec.blocks:
        if isinstance(entry, Stage):
            blocks.append(entry.model_copy(update={"repeat": min(entry.repeat, source.repeat)}))
        elif getattr(entry, "name", None) not in source.drop and not getattr(entry, "training_only", False):
            blocks.append(entry)  # training-only heads never run at inference (and may hang off a dropped block)
    missing = set(source.drop) - {getattr(e, "name", None) for e in spec.blocks}
    if missing:
        raise ScalelabError(f"real-shaped network {source.name}: {source.zoo} has no block {', '.join(sorted(missing))}")
    return spec.model_copy(update={"name": source.name, "blocks": blocks,
                                   "input": spec.input.model_copy(update={"resolution": (source.resolution,) * 2})})


def real_shaped_specs(held_out: tuple[str, ...] = HELD_OUT, sources: tuple[Source, ...] = SOURCES) -> list[Spec]:
    """The real-shaped calibration networks, leaving out every source cut from a held-out network (so
    that a network validated on is never fitted on, at any depth or resolution)."""
    return [_cut(load_spec(source.zoo), source) for source in sources if source.zoo not in held_out]
