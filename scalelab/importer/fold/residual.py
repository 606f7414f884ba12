"""Candidates for the residual kinds (He et al. 2016): the basic block (two 3x3 convs) and the
bottleneck (1x1, 3x3 with groups and an optional squeeze-excite, 1x1), read off the region's convs."""

from __future__ import annotations

from typing import Optional

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.common import first_exact, settings, stride_between
from scalelab.importer.fold.exact import fold_as
from scalelab.importer.fold.items import Item
from scalelab.importer.fold.se_forms import se_forms


def _body_convs(region: list[Item]) -> list:
    """The region's convs, in order (a projection shortcut's among them: exactness tells them apart)."""
    return [settings(item) for item in region if item.kind == "conv"]


def _common(region: list[Item], shape: Shape) -> Optional[dict]:
    adds = [item for item in region if item.kind == "add"]
    convs = _body_convs(region)
    stride = stride_between(shape, region[-1].out_shape)
    if not convs or stride is None or len(adds) != 1 or region[-1] is not adds[0]:
        return None
    first = next((c for c in convs if c.activation != "none"), convs[0])  # not a projection shortcut
    post = settings(adds[0]).activation
    if first.norm == "none" or first.activation == "none" or post != first.activation:
        return None
    return {"out": region[-1].out_shape[0], "stride": stride, "activation": first.activation, "norm_eps": first.norm_eps}


def residual(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    fields = _common(region, shape)
    if fields is None or [i.kind for i in region].count("conv") not in (2, 3):
        return None
    return first_exact([{"kind": "residual", **fields, "shortcut": s} for s in ("B", "C")], region, shape, name, inputs)


def _se_values(region: list[Item], in_ch: int, mid: int, activation: str) -> "list | None":
    ses = [item for item in region if item.kind == "squeeze_excite"]
    if len(ses) > 1:
        return None
    return se_forms(ses[0], in_ch, mid, "relu" if activation == "none" else activation) if ses else [0.0]


def bottleneck(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    fields = _common(region, shape)
    convs = _body_convs(region)
    if fields is None or len(convs) not in (3, 4):
        return None
    grouped = [c for c in convs if c.kernel != (1, 1)]
    if len(grouped) != 1 or grouped[0].out is None:
        return None
    mid, groups = grouped[0].out, grouped[0].groups
    ses = _se_values(region, shape[0], mid, fields["activation"])
    if ses is None:
        return None
    candidates = [{"kind": "bottleneck", **fields, "mid": mid, "groups": groups, "se": se, "stride_on": on,
                   "shortcut": s} for se in ses for on in ("conv3x3", "conv1x1") for s in ("B", "C")]
    return first_exact(candidates, region, shape, name, inputs)


def group_widths(items: list[Item]) -> None:
    """Bottlenecks whose group count changes from block to block while the channels per group stay
    the same write ``group_width`` (RegNet), so that a stage repeats one setting and width scaling
    keeps the group width."""
    grouped = [i for i in items if i.folded and i.kind == "bottleneck" and i.fields.get("groups", 1) > 1]
    counts = {i.fields["groups"] for i in grouped}
    widths = {i.fields["mid"] // i.fields["groups"] for i in grouped}
    if len(counts) < 2 or len(widths) != 1:
        return
    for item in grouped:
        fields = {k: v for k, v in item.fields.items() if k != "groups"}
        fields["group_width"] = item.fields["mid"] // item.fields["groups"]
        inner = {t for m in item.members for t in m.tensors()}
        source = next(t for m in item.members for t in m.inputs if t not in inner)  # as the region read it
        folded = fold_as(fields, item.members, item.in_shape, item.name, [source])  # type: ignore[arg-type]
        if folded is not None:
            item.fields, item.layers, item.node = folded.fields, folded.layers, folded.node
