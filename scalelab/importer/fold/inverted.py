"""Candidates for the inverted residuals: MBConv (1x1 expand, depthwise kxk, squeeze-excite, linear
1x1 project; MobileNet v2/v3, EfficientNet) and Fused-MBConv (full kxk expand, squeeze-excite,
linear 1x1 project; EfficientNetV2), with the identity shortcut where the region adds its input."""

from __future__ import annotations

from typing import Optional

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.common import first_exact, settings, single, stride_between
from scalelab.importer.fold.items import Item
from scalelab.importer.fold.se_forms import se_forms


def expansion(in_ch: int, hidden: int) -> dict:
    """``expand`` as a short ratio where it gives the expanded width (as the kind rounds it), else ``hidden``."""
    for digits in (0, 1, 2, 4, 6):
        ratio = round(hidden / in_ch, digits)
        if ratio >= 1 and int(round(in_ch * ratio)) == hidden:
            return {"expand": int(ratio) if ratio == int(ratio) else ratio}
    return {"hidden": hidden}


def _parts(region: list[Item]) -> "tuple[list, list[Item], bool] | None":
    """The convs, the squeeze-excites and whether the region ends adding its input; None where it
    holds anything else."""
    kinds = [i.kind for i in region]
    if set(kinds) - {"conv", "squeeze_excite", "add"} or kinds.count("add") > 1 or ("add" in kinds and kinds[-1] != "add"):
        return None
    return [settings(i) for i in region if i.kind == "conv"], [i for i in region if i.kind == "squeeze_excite"], "add" in kinds


def _common(region: list[Item], shape: Shape, activation: str, norm_eps: float) -> Optional[dict]:
    stride = stride_between(shape, region[-1].out_shape)
    if stride is None:
        return None
    return {"out": region[-1].out_shape[0], "stride": stride, "activation": activation, "norm_eps": norm_eps}


def _se_options(ses: list[Item], in_ch: int, gated: int, activation: str) -> list:
    return [0.0] if not ses else se_forms(ses[0], in_ch, gated, activation) if len(ses) == 1 else []


def mbconv(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    parts = _parts(region)
    if parts is None:
        return None
    convs, ses, adds = parts
    depthwise = [c for c in convs if c.out is not None and c.groups == c.out > 1]
    if len(depthwise) != 1 or len(convs) not in (2, 3):
        return None
    dw = depthwise[0]
    hidden = dw.out
    fields = _common(region, shape, dw.activation, dw.norm_eps)
    if fields is None or (len(convs) == 3) != (hidden != shape[0]):
        return None
    fields.update(expansion(shape[0], hidden), kernel=single(dw.kernel), skip=adds or fields["stride"] != 1
                  or shape[0] != fields["out"])
    candidates = [{"kind": "mbconv", **fields, "se": se} for se in _se_options(ses, shape[0], hidden, dw.activation)]
    return first_exact(candidates, region, shape, name, inputs)


def fused_mbconv(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    parts = _parts(region)
    if parts is None:
        return None
    convs, ses, adds = parts
    if len(convs) not in (1, 2) or convs[0].kernel == (1, 1) or convs[0].groups != 1 or convs[0].out is None:
        return None
    first = convs[0]
    fields = _common(region, shape, first.activation, first.norm_eps)
    if fields is None:
        return None
    hidden = first.out if len(convs) == 2 else shape[0]
    fields.update(expansion(shape[0], hidden), kernel=single(first.kernel), skip=adds or fields["stride"] != 1
                  or shape[0] != fields["out"])
    candidates = [{"kind": "fused_mbconv", **fields, "se": se} for se in _se_options(ses, shape[0], first.out, first.activation)]
    return first_exact(candidates, region, shape, name, inputs)
