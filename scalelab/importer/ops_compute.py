"""Table entries for the operators that hold parameters (convolution, linear, the norms), matrix
products and scaled dot-product attention."""

from __future__ import annotations

from scalelab.importer.ops_tensor import OPERANDS
from scalelab.importer.table import Call, Unsupported, needs_kind
from scalelab.importer.weight_side import standardised, zeroed_bias


def pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def short(p: tuple[int, ...]) -> "int | list[int]":
    """7 for (7, 7): the spec takes both, one number reads better."""
    return p[0] if p[0] == p[1] else list(p)


def _conv2d(c: Call) -> list[dict]:
    """aten.conv2d(input, weight, bias, stride, padding, dilation, groups); padding may be 'same'/'valid';
    the weight a parameter or standardised from one (weight_side.py)."""
    c.batch_first()
    if len(c.in_shape) != 3:
        raise Unsupported(f"a convolution over a {len(c.in_shape)}-d sample")
    std = standardised(c)
    if std is None:
        c.weight()
    weight = c.shape(c.arg("weight"))  # a parameter: no batch axis
    kernel, dilation = pair(weight[2:]), pair(c.arg("dilation", 1))
    padding = c.arg("padding", 0)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        if any(d * (k - 1) % 2 for k, d in zip(kernel, dilation)):
            raise Unsupported("'same' padding with an even kernel pads unevenly")
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    padding = pair(padding)
    same = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return [{"kind": "conv", "out": weight[0], "kernel": short(kernel), "stride": short(pair(c.arg("stride", 1))),
             "padding": "same" if padding == same else short(padding), "dilation": short(dilation),
             "groups": c.arg("groups", 1), "bias": c.state("bias") is not None, "padding_mode": "zeros",
             "norm": "none", "activation": "none", **(std or {})}]


def _conv1d(c: Call) -> list[dict]:
    """aten.conv1d(input, weight, bias, stride, padding, dilation, groups) on (channels, length)."""
    c.batch_first()
    if len(c.in_shape) != 2:
        raise Unsupported(f"a 1-d convolution over a {len(c.in_shape)}-d sample")
    needs_kind("conv1d")
    c.weight()
    weight = c.shape(c.arg("weight"))
    kernel, dilation = weight[2], _one(c.arg("dilation", 1))
    padding = c.arg("padding", 0)
    if padding == "same" and dilation * (kernel - 1) % 2:
        raise Unsupported("'same' padding with an even kernel pads unevenly")
    if padding not in ("same", "valid"):
        padding = "same" if _one(padding) * 2 == dilation * (kernel - 1) else _one(padding)
    return [{"kind": "conv1d", "out": weight[0], "kernel": kernel, "stride": _one(c.arg("stride", 1)),
             "padding": padding, "dilation": dilation, "groups": c.arg("groups", 1),
             "bias": c.state("bias") is not None, "norm": "none", "activation": "none"}]


def _one(v) -> int:
    return v if isinstance(v, int) else int(v[0])


def _linear(c: Call) -> list[dict]:
    """aten.linear(input, weight, bias): over the last axis of any rank (the batch on another axis,
    alone or merged into one: nn.MultiheadAttention's (L*B, E)), or over the channels of a
    channels-last map."""
    c.weight()
    zeroed = zeroed_bias(c)
    out, bias = c.shape(c.arg("weight"))[0], zeroed is not None or c.state("bias") is not None
    if zeroed and c.channels_last:
        raise Unsupported("its bias is computed, not a parameter")
    if c.channels_last and len(c.in_shape) == 3:  # ConvNeXt's pointwise MLP
        c.batch_first()
        needs_kind("channel_linear")
        return [{"kind": "channel_linear", "out": out, "bias": bias}]
    place = c.place(c.node.args[0])
    if place is not None and place.axis == c.rank() - 1:
        raise Unsupported("linear over the batch axis")
    if c.channels_last:
        raise Unsupported("linear over a channels-last map other than its channels")
    return [{"kind": "linear", "out": out, "bias": bias, **({"flatten": False} if len(c.in_shape) == 3 else {}),
             **({"bias_zeroed": list(zeroed)} if zeroed else {})}]


def _batch_norm(c: Call) -> list[dict]:
    """aten.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
    and _native_batch_norm_legit_no_training (no ``training``): eval-mode statistics."""
    c.batch_first()
    names = [c.state(k) for k in ("weight", "bias", "running_mean", "running_var")]
    if None in names or c.arg("training", False):
        raise Unsupported("batch norm without scale, shift or running statistics")
    if len(c.in_shape) not in (1, 2, 3) or c.channels_last:
        raise Unsupported(f"batch norm over a {len(c.in_shape)}-d sample")
    return [{"kind": "batchnorm", "norm_eps": float(c.arg("eps", 1e-5))}]


def _layer_norm(c: Call) -> list[dict]:
    """aten.layer_norm(input, normalized_shape, weight, bias, eps): over the channels of a
    channels-last map (ConvNeXt's LayerNorm and LayerNorm2d), or over the trailing axes."""
    shape = tuple(c.arg("normalized_shape"))
    weight, bias = c.state("weight") is not None, c.state("bias") is not None
    eps = float(c.arg("eps", 1e-5))
    needs_kind("layer_norm")
    if c.channels_last:
        c.batch_first()
        if len(c.in_shape) != 3 or shape != c.in_shape[-1:] or not (weight and bias):
            raise Unsupported("layer norm other than over the channels of each position, with scale and shift")
        return [{"kind": "layer_norm", "norm_eps": eps}]
    _trailing(c, len(shape))
    if bias and not weight:
        raise Unsupported("layer norm with a shift and no scale")
    return [{"kind": "layer_norm", "norm_eps": eps, "trailing": len(shape), "affine": weight, "bias": bias and weight}]


def _trailing(c: Call, n: int) -> None:
    """Refuse a norm over trailing axes that include the batch's (alone or merged into one)."""
    place = c.place(c.node.args[0])
    if place is not None and place.axis >= c.rank() - n:
        raise Unsupported("a norm over the batch axis")


def _rms_norm(c: Call) -> list[dict]:
    """aten.rms_norm(input, normalized_shape, weight, eps)."""
    needs_kind("rms_norm")
    n = len(c.arg("normalized_shape"))
    _trailing(c, n)
    eps = c.arg("eps")
    return [{"kind": "rms_norm", "trailing": n, "affine": c.state("weight") is not None,
             **({"norm_eps": float(eps)} if eps is not None else {})}]


def _group_norm(c: Call) -> list[dict]:
    """aten.group_norm(input, num_groups, weight, bias, eps, cudnn_enabled), channels on axis 1."""
    c.batch_first()
    needs_kind("group_norm")
    weight, bias = c.state("weight"), c.state("bias")
    if (weight is None) != (bias is None):
        raise Unsupported("group norm with only one of scale and shift")
    return [{"kind": "group_norm", "groups": c.arg("num_groups"), "norm_eps": float(c.arg("eps", 1e-5)),
             "affine": weight is not None}]


def _instance_norm(c: Call) -> list[dict]:
    """aten.instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum,
    eps, cudnn_enabled) with the statistics of each sample (torch's default, no running statistics)."""
    c.batch_first()
    needs_kind("instance_norm")
    weight, bias = c.state("weight"), c.state("bias")
    if not c.arg("use_input_stats", True) or c.state("running_mean") is not None or (weight is None) != (bias is None):
        raise Unsupported("instance norm with running statistics or only one of scale and shift")
    return [{"kind": "instance_norm", "norm_eps": float(c.arg("eps", 1e-5)), "affine": weight is not None}]


def _matmul(c: Call) -> list[dict]:
    """aten.matmul / mm / bmm (self, other): torch.matmul on per-sample operands; each operand's batch
    axis, alone or merged into one (Swin's windows), must line up with the output's (a parameter
    operand becomes a ``param`` block)."""
    needs_kind("matmul")
    a, b = c.arg("self"), c.arg("mat2", c.arg("other"))
    if not all(c.in_line(t) for t in (a, b)):
        raise Unsupported("a product whose operands hold the batch on different axes")
    if c.channels_last:
        raise Unsupported("a product of a channels-last feature map")
    return [{"kind": "matmul", OPERANDS: [a, b]}]


def _attention(c: Call) -> list[dict]:
    """aten.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
    enable_gqa) without dropout or grouped heads: q, k, v with the same leading axes, the batch on one
    of them (alone, or merged into one: MobileViT's patches); an additive float mask (a position bias:
    CoAtNet) makes it ``masked_attention``, the mask its fourth input."""
    mask = c.arg("attn_mask")
    kind = "attention" if mask is None else "masked_attention"
    needs_kind(kind)
    if c.arg("dropout_p", 0.0) or c.arg("enable_gqa", False) or (mask is not None and c.arg("is_causal", False)):
        raise Unsupported("attention with dropout, grouped-query heads, or both a mask and causality")
    if mask is not None and getattr(mask.meta.get("val"), "dtype", None) is not None and \
            not mask.meta["val"].dtype.is_floating_point:
        raise Unsupported("attention with a boolean mask")
    qkv = [c.arg(name) for name in ("query", "key", "value")]
    place = c.place(c.node)
    if not all(c.in_line(t) for t in [*qkv, *([mask] if mask is not None else [])]) or place is None \
            or place.axis >= c.rank(c.node) - 2:
        raise Unsupported("attention whose q, k and v hold the batch elsewhere than on a leading axis")
    if len({c.shape(t)[:-2] for t in qkv}) != 1:
        raise Unsupported("attention of q, k and v with different leading axes")
    scale = c.arg("scale")
    return [{"kind": kind, OPERANDS: qkv + ([mask] if mask is not None else []),
             **({"causal": True} if c.arg("is_causal", False) else {}),
             **({"scale": float(scale)} if scale is not None else {})}]


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    return {aten.conv2d.default: _conv2d, aten.conv2d.padding: _conv2d, aten.linear.default: _linear,
            aten.batch_norm.default: _batch_norm, getattr(aten, "_native_batch_norm_legit_no_training").default: _batch_norm,
            aten.layer_norm.default: _layer_norm, aten.conv1d.default: _conv1d, aten.conv1d.padding: _conv1d,
            aten.rms_norm.default: _rms_norm, aten.group_norm.default: _group_norm,
            aten.instance_norm.default: _instance_norm, aten.matmul.default: _matmul, aten.mm.default: _matmul,
            aten.bmm.default: _matmul, aten.scaled_dot_product_attention.default: _attention}
