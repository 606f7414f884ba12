"""Weight standardisation found by data flow: a conv's weight computed from parameters alone, as timm's
StdConv2d and ScaledStdConv2d compute it (``F.batch_norm`` in training mode on the weight reshaped to
(1, out, fan-in), scaled by ``gain * scale`` or not, reshaped back), becomes the conv's
``weight_standardization`` field. The capture holds that batch norm as ``aten.batch_norm`` or, where
the program was decomposed, as the first output of ``_native_batch_norm_legit.no_stats``. Any other
computed weight stays refused by name. A linear bias computed from a bias parameter by zeroing one
slice of it (Swin V2's qkv, whose keys take no bias) becomes the linear's ``bias_zeroed``."""

from __future__ import annotations

import math
import operator

from scalelab.importer.table import Call, Unsupported

#: the source's state a standardised conv holds, in the order its torch module's state dict lists them
STATE = "_state"

_VIEWS = ("reshape", "reshape_as", "view", "_unsafe_view")
_COMPUTED = "its weight is computed, not a parameter"


def _packet(node) -> str:
    packet = getattr(getattr(node, "target", None), "_overloadpacket", None)
    return packet.__name__ if packet is not None and getattr(node, "op", "") == "call_function" else ""


def _unview(node):
    while _packet(node) in _VIEWS:
        node = node.args[0]
    return node


def _batch_norm(node) -> "dict | None":
    """The arguments by schema name of the batch norm ``node`` is the result of, None if it is none."""
    if getattr(node, "target", None) is operator.getitem and node.args[1] == 0:
        node = node.args[0]
        if _packet(node) != "_native_batch_norm_legit":
            return None
    elif _packet(node) != "batch_norm":
        return None
    names = [a.name for a in getattr(node.target, "_schema").arguments]  # the ATen schema, as Call.arg reads it
    return {**dict(zip(names, node.args)), **node.kwargs, "node": node}


def _param(c: Call, node) -> str:
    """The source's name of a parameter, through views of it; Unsupported for anything else."""
    node = _unview(node)
    if node not in c.cap.state or c.cap.state[node] not in c.cap.trainable:
        raise Unsupported(_COMPUTED)
    return c.cap.state[node]


def _gamma(scale: float, fan_in: int) -> float:
    """The gamma for which ``gamma * fan_in ** -0.5`` (timm's and the spec module's scale) is
    ``scale`` to the last bit: the quotient, or a float next to it."""
    gamma = scale * fan_in ** 0.5
    for candidate in (gamma, math.nextafter(gamma, math.inf), math.nextafter(gamma, -math.inf)):
        if candidate * fan_in ** -0.5 == scale:
            return candidate
    raise Unsupported("its weight standardisation scales by a factor no gamma / sqrt(fan-in) gives")


def _gain(c: Call, weight, fan_in: int) -> "tuple[str, float] | None":
    """The gain parameter and gamma batch norm scales by (a parameter times a number, or the
    parameter alone: gamma = sqrt(fan-in)), None without one."""
    if weight is None:
        return None
    weight = _unview(weight)
    if _packet(weight) == "mul" and isinstance(weight.args[1], (int, float)):
        return _param(c, weight.args[0]), _gamma(float(weight.args[1]), fan_in)
    return _param(c, weight), _gamma(1.0, fan_in)


def standardised(c: Call) -> "dict | None":
    """The conv's ``weight_standardization`` field when its weight is standardised, with the
    source state in module order under ``STATE``; None when the weight is a parameter."""
    weight = c.arg("weight")
    if weight in c.cap.state:
        return None
    args = _batch_norm(_unview(weight))
    if args is None or not args.get("training") or \
            any(args.get(k) is not None for k in ("bias", "running_mean", "running_var")):
        raise Unsupported(_COMPUTED)
    source = _param(c, args["input"])
    shape = c.cap.full_shape(args["input"]) or ()
    if len(shape) != 3 or shape[0] != 1:  # (1, out, fan-in): one set of statistics per output channel
        raise Unsupported(_COMPUTED)
    fan_in = int(shape[2])
    gain = _gain(c, args.get("weight"), fan_in)
    fields = {"eps": float(args.get("eps", 1e-5)), "gain": gain is not None,
              **({"gamma": gain[1]} if gain else {})}
    bias = c.state("bias")
    return {"weight_standardization": fields,
            STATE: [source, *([bias] if bias else []), *([gain[0]] if gain else [])]}


def zeroed_bias(c: Call) -> "tuple[int, int] | None":
    """(start, stop) where the call's bias is its bias parameter with that slice zeroed and nothing
    else changed, as computing it from stand-in values of the parameter shows; None where the bias
    is a parameter (or absent), Unsupported where it is computed any other way."""
    import torch  # the importer runs torch

    from scalelab.importer.positions import evaluate, reads

    bias = c.arg("bias")
    if bias is None or bias in c.cap.state:
        return None
    sources = reads(c.cap, bias)
    if len(sources) != 1 or c.cap.state[sources[0]] not in c.cap.trainable:
        raise Unsupported("its bias is computed, not a parameter")
    values = c.cap.values[c.cap.state[sources[0]]]
    stand_in = torch.arange(1, values.numel() + 1, dtype=values.dtype).reshape(values.shape)
    got = evaluate(c.cap, bias, {sources[0]: stand_in})
    zero = (got == 0).nonzero().flatten().tolist() if got.shape == stand_in.shape and got.dim() == 1 else []
    if not zero or zero != list(range(zero[0], zero[-1] + 1)) or \
            not torch.equal(got, stand_in.masked_fill(got == 0, 0)):
        raise Unsupported("its bias is computed, not a parameter")
    return zero[0], zero[-1] + 1
