"""Table entries for the operators that hold parameters (convolution, linear, batch and layer norm)
and scaled dot-product attention."""

from __future__ import annotations

from scalelab.importer.ops_tensor import OPERANDS
from scalelab.importer.table import Call, Unsupported, needs_kind


def pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def short(p: tuple[int, ...]) -> "int | list[int]":
    """7 for (7, 7): the spec takes both, one number reads better."""
    return p[0] if p[0] == p[1] else list(p)


def _conv2d(c: Call) -> list[dict]:
    """aten.conv2d(input, weight, bias, stride, padding, dilation, groups); padding may be 'same'/'valid'."""
    c.batch_first()
    if len(c.in_shape) != 3:
        raise Unsupported(f"a convolution over a {len(c.in_shape)}-d sample")
    c.state("weight")
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
             "norm": "none", "activation": "none"}]


def _linear(c: Call) -> list[dict]:
    """aten.linear(input, weight, bias): over a vector, or over the channels of a channels-last map."""
    c.batch_first()
    c.state("weight")
    out, bias = c.shape(c.arg("weight"))[0], c.state("bias") is not None
    if c.channels_last and len(c.in_shape) == 3:  # ConvNeXt's pointwise MLP
        needs_kind("channel_linear")
        return [{"kind": "channel_linear", "out": out, "bias": bias}]
    if len(c.in_shape) != 1:
        raise Unsupported(f"linear over the last axis of a {'x'.join(map(str, c.in_shape))} sample")
    return [{"kind": "linear", "out": out, "bias": bias}]


def _batch_norm(c: Call) -> list[dict]:
    """aten.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
    and _native_batch_norm_legit_no_training (no ``training``): eval-mode statistics."""
    c.batch_first()
    names = [c.state(k) for k in ("weight", "bias", "running_mean", "running_var")]
    if None in names or c.arg("training", False):
        raise Unsupported("batch norm without scale, shift or running statistics")
    if len(c.in_shape) != 3:
        raise Unsupported(f"batch norm over a {len(c.in_shape)}-d sample")
    return [{"kind": "batchnorm", "norm_eps": float(c.arg("eps", 1e-5))}]


def _layer_norm(c: Call) -> list[dict]:
    """aten.layer_norm(input, normalized_shape, weight, bias, eps): over the channels of a
    channels-last map (ConvNeXt's LayerNorm and LayerNorm2d)."""
    c.batch_first()
    shape = tuple(c.arg("normalized_shape"))
    affine = c.state("weight") is not None and c.state("bias") is not None
    if not (c.channels_last and len(c.in_shape) == 3 and shape == c.in_shape[-1:] and affine):
        raise Unsupported("layer norm other than over the channels of each position, with scale and shift")
    needs_kind("layer_norm")
    return [{"kind": "layer_norm", "norm_eps": float(c.arg("eps", 1e-5))}]


def _attention(c: Call) -> list[dict]:
    """aten.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
    enable_gqa) without a mask, dropout or grouped heads: q, k, v with the same leading axes."""
    c.batch_first()
    needs_kind("attention")
    if c.arg("attn_mask") is not None or c.arg("dropout_p", 0.0) or c.arg("enable_gqa", False):
        raise Unsupported("attention with a mask, dropout or grouped-query heads")
    qkv = [c.arg(name) for name in ("query", "key", "value")]
    if len({c.shape(t)[:-2] for t in qkv}) != 1:
        raise Unsupported("attention of q, k and v with different leading axes")
    scale = c.arg("scale")
    return [{"kind": "attention", OPERANDS: qkv, **({"causal": True} if c.arg("is_causal", False) else {}),
             **({"scale": float(scale)} if scale is not None else {})}]


def entries() -> dict:
    import torch

    aten = torch.ops.aten
    return {aten.conv2d.default: _conv2d, aten.conv2d.padding: _conv2d, aten.linear.default: _linear,
            aten.batch_norm.default: _batch_norm, getattr(aten, "_native_batch_norm_legit_no_training").default: _batch_norm,
            aten.layer_norm.default: _layer_norm, aten.scaled_dot_product_attention.default: _attention}
