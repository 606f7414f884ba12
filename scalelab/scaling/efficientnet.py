"""The EfficientNet family B0-B7 (Tan & Le, ICML 2019), built by compound-scaling the zoo's
``efficientnet_b0`` spec with each variant's published coefficients.

The coefficients are data, not alpha^phi: the published variants round phi's multipliers by hand
(Table/code of the official tensorflow/tpu ``efficientnet_params``). Resolutions follow torchvision,
whose parameter and MAC figures the variants reproduce exactly: they equal the paper's except B2,
which torchvision evaluates at 288 (the paper and the official code use 260).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scalelab.errors import ScalelabError, did_you_mean
from scalelab.scaling.compound import scale_spec
from scalelab.spec.dump import spec_data
from scalelab.spec.load import load_spec
from scalelab.spec.model import Spec


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    resolution: int  # torchvision's evaluation size
    paper_resolution: int  # the paper's (Table 2) and official code's
    dropout: float  # before the classifier
    paper_top1: float  # ImageNet top-1, Tan & Le 2019 Table 2
    torchvision_top1: float  # acc@1 of torchvision's IMAGENET1K_V1 weights at ``resolution``


#: official coefficients (tensorflow/tpu efficientnet_builder.efficientnet_params; torchvision
#: efficientnet_b0..b7), paper top-1 (Table 2) and torchvision's weights' acc@1
VARIANTS: dict[str, Variant] = {
    "b0": Variant(1.0, 1.0, 224, 224, 0.2, 77.1, 77.692),
    "b1": Variant(1.0, 1.1, 240, 240, 0.2, 79.1, 78.642),
    "b2": Variant(1.1, 1.2, 288, 260, 0.3, 80.1, 80.608),
    "b3": Variant(1.2, 1.4, 300, 300, 0.3, 81.6, 82.008),
    "b4": Variant(1.4, 1.8, 380, 380, 0.4, 82.9, 83.384),
    "b5": Variant(1.6, 2.2, 456, 456, 0.4, 83.6, 83.444),
    "b6": Variant(1.8, 2.6, 528, 528, 0.5, 84.0, 84.008),
    "b7": Variant(2.0, 3.1, 600, 600, 0.5, 84.3, 84.122),
}


def _variant_key(variant: str) -> str:
    key = str(variant).lower().removeprefix("efficientnet").lstrip("-_")
    if key not in VARIANTS:
        raise ScalelabError(f"unknown EfficientNet variant '{variant}'{did_you_mean(key, VARIANTS)}; "
                            f"known: {', '.join(VARIANTS)}")
    return key


def efficientnet(variant: str, base: Optional[Spec] = None, *, paper_resolution: bool = False) -> Spec:
    """EfficientNet-B``n`` (``"b3"``, ``"B3"`` or ``"efficientnet_b3"``) from the B0 spec (default:
    the zoo's ``efficientnet_b0``): depth and width multipliers, the variant's resolution (torchvision's;
    ``paper_resolution=True`` gives B2 at 260) and its dropout rate."""
    key = _variant_key(variant)
    v = VARIANTS[key]
    base = base if base is not None else load_spec("efficientnet_b0")
    size = v.paper_resolution if paper_resolution else v.resolution
    scaled = scale_spec(base, v.depth, v.width, size, name=f"efficientnet_{key}")
    data = spec_data(scaled)
    data["blocks"] = [_with_dropout(entry, v.dropout) for entry in data["blocks"]]
    where = "the paper's" if paper_resolution or v.resolution == v.paper_resolution else "torchvision's (the paper uses 260)"
    data["description"] = (
        f"EfficientNet-{key.upper()} (Tan & Le 2019): EfficientNet-B0 scaled by depth x{v.depth:g}, "
        f"width x{v.width:g}, input {size} ({where} resolution), dropout {v.dropout}. "
        "Channels rounded to multiples of 8 (never below 90%), repeats rounded up, as the official "
        "implementation and torchvision do."
    )
    same_as_torchvision = size == v.resolution
    # both evaluate one centre crop at the network's input size, trained on ImageNet-1k alone
    protocol = {"crops": 1, "resolution": size, "pretraining": "none", "distillation": "none"}
    data["reference"] = (
        {"top1": v.torchvision_top1, "dataset": "ImageNet-1k", "protocol": protocol,
         "source": f"torchvision EfficientNet_{key.upper()}_Weights.IMAGENET1K_V1 at {size}"}
        if same_as_torchvision else
        {"top1": v.paper_top1, "dataset": "ImageNet-1k", "protocol": protocol, "source": "Tan & Le 2019, Table 2"}
    )
    return Spec.model_validate(data)


def _with_dropout(entry: dict, p: float) -> dict:
    """The classifier's dropout rate grows with the variant (0.2 for B0 ... 0.5 for B7)."""
    if entry.get("kind") == "dropout":
        return {**entry, "p": p}
    return entry


__all__ = ["VARIANTS", "Variant", "efficientnet"]
