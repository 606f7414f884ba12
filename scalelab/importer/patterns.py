"""Runs of captured operators that one block states exactly: squeeze-excite (Hu et al. 2018), channel
shuffle and split (ShuffleNet, Zhang et al. 2018; Ma et al. 2018), and the permutes between
channels-first and channels-last maps (ConvNeXt)."""

from __future__ import annotations

from scalelab.blocks import KINDS
from scalelab.importer.capture import BatchMerged, Captured, scope_of
from scalelab.importer.ops_activation import folds
from scalelab.importer.table import Call, Unsupported, handler_of


def _is(node, *names: str) -> bool:
    """Whether ``node`` calls one of the ATen operators named (any overload, in-place or not)."""
    packet = getattr(getattr(node, "target", None), "_overloadpacket", None)
    return node.op == "call_function" and packet is not None and packet.__name__.rstrip("_") in names


def activation_of(node, cap: Captured) -> "str | None":
    """The activation function ``node`` applies, if it is one without parameters beyond the defaults."""
    handler = handler_of(node.target)
    if handler is None:
        return None
    try:
        fields = handler(Call(node, cap))
    except Unsupported:
        return None
    return folds(fields[0]) if isinstance(fields, list) and len(fields) == 1 else None


def _pointwise_conv(node, cap: Captured) -> bool:
    if not _is(node, "conv2d") or node.args[1] not in cap.state:
        return False
    call = Call(node, cap)
    weight = cap.shape_of(node.args[1])
    return (weight is not None and weight[2:] == (1, 1) and call.arg("groups", 1) == 1
            and call.arg("bias") in cap.state and call.arg("stride", 1) in (1, [1, 1])
            and call.arg("padding", 0) in (0, [0, 0], "valid", "same") and call.arg("dilation", 1) in (1, [1, 1]))


def _se_chain(gate, x, cap: Captured) -> "list | None":
    """The nodes pool, conv, act, conv, gate if ``gate`` computes squeeze-excite weights of ``x``."""
    chain = [gate]
    for _ in range(4):
        if chain[-1].op != "call_function" or not chain[-1].args or not hasattr(chain[-1].args[0], "op"):
            return None
        chain.append(chain[-1].args[0])
    gate_act, conv2, act, conv1, pool = chain
    if pool.op != "call_function" or not pool.args or pool.args[0] is not x or any(len(n.users) != 1 for n in chain):
        return None
    pooled = _is(pool, "adaptive_avg_pool2d") or (_is(pool, "mean") and Call(pool, cap).arg("keepdim", False)
                                                  and {d % 4 for d in Call(pool, cap).arg("dim")} == {2, 3})
    if not pooled or activation_of(gate_act, cap) not in ("sigmoid", "hardsigmoid"):
        return None
    if activation_of(act, cap) in (None, "none") or not (_pointwise_conv(conv1, cap) and _pointwise_conv(conv2, cap)):
        return None
    if cap.shape_of(pool) != (cap.shape_of(x)[0], 1, 1) or cap.shape_of(gate) != cap.shape_of(pool):  # type: ignore[index]  # x is a map
        return None
    return [pool, conv1, act, conv2, gate_act]


def find_squeeze_excite(cap: Captured) -> tuple[dict, set]:
    """Product node -> (fields, input, member scopes, inner nodes) of every squeeze-excite, and the nodes inside."""
    found, absorbed = {}, set()
    for node in cap.nodes():
        if not _is(node, "mul") or len(node.args) != 2:
            continue
        for gate, x in (node.args, node.args[::-1]):
            try:
                chain = _se_chain(gate, x, cap) if hasattr(gate, "op") and hasattr(x, "op") else None
                per_sample = bool(chain) and cap.batch_axis(x) == 0
            except BatchMerged:  # a product on a tensor whose batch is merged into an axis: no gate
                continue
            if chain and per_sample:
                pool, conv1, act, _, gate_act = chain
                fields = {"kind": "squeeze_excite", "squeeze": cap.shape_of(conv1.args[1])[0],  # type: ignore[index]  # a weight
                          "activation": activation_of(act, cap), "gate": activation_of(gate_act, cap)}
                found[node] = (fields, x, [scope_of(n) for n in chain], chain)
                absorbed.update(chain)
                break
    return found, absorbed


def _shuffle(node, cap: Captured):
    """(input, groups, inner nodes) if ``node`` ends view(n, g, c/g, h, w), transpose(1, 2),
    [contiguous], view(n, c, h, w): torchvision's channel_shuffle."""
    if not _is(node, "view", "reshape", "_unsafe_view"):
        return None
    inner, current = [], node.args[0]
    if _is(current, "contiguous", "clone"):
        inner.append(current)
        current = current.args[0]
    if not (_is(current, "transpose") and sorted(d % 5 for d in current.args[1:3]) == [1, 2]):
        return None
    inner.append(current)
    grouped = current.args[0]
    if not _is(grouped, "view", "reshape", "_unsafe_view"):
        return None
    inner.append(grouped)
    x = grouped.args[0]
    five, shape = cap.full_shape(grouped), cap.shape_of(x)
    if five is None or shape is None or len(shape) != 3 or cap.shape_of(node) != shape or len(five) != 5:
        return None
    if five[0] != -1 or five[1:] != (five[1], shape[0] // five[1], *shape[1:]) or any(len(n.users) != 1 for n in inner):
        return None
    return x, five[1], inner


def find_channel_shuffle(cap: Captured) -> tuple[dict, set]:
    """Final view node -> (fields, input, members, inner nodes) of every channel shuffle, and the nodes inside."""
    found: dict = {}
    absorbed: set = set()
    if "channel_shuffle" not in KINDS:
        return found, absorbed  # left to the table, which refuses the view and transpose by name
    for node in cap.nodes():
        try:
            match = _shuffle(node, cap)
        except BatchMerged:  # a view of a tensor whose batch is merged into an axis: no shuffle
            continue
        if match:
            x, groups, inner = match
            found[node] = ({"kind": "channel_shuffle", "groups": groups}, x, [], inner[::-1])
            absorbed.update(inner)
    return found, absorbed


def channel_split(node, cap: Captured) -> "int | None":
    """The number of pieces if ``node`` chunks a feature map along its channels, as ``channel_split`` states."""
    if not (_is(node, "chunk") and "channel_split" in KINDS):
        return None
    call = Call(node, cap)
    parts, dim = call.arg("chunks"), call.arg("dim", 0)
    shape = cap.shape_of(node.args[0])
    if not isinstance(parts, int) or shape is None or len(shape) != 3 or dim % 4 != 1 or cap.batch_axis(node.args[0]) != 0:
        return None
    return parts


#: operators that read a channels-last map as the spec's channels-first one (ConvNeXt's block)
CHANNELS_LAST_READERS = ("linear", "layer_norm", "add", "mul", "sub", "div", "gelu", "relu", "silu", "sigmoid",
                         "hardswish", "tanh", "dropout", "clone", "contiguous", "alias", "detach", "getitem")


def _stays_channels_first(node) -> bool:
    """Whether every operation reading the permuted map, until a permute takes it back, can read it
    as the spec's channels-first map. Else (Swin's windows cut from the (h, w, c) map, an output
    left channels-last) the permute is a permute the spec states."""
    todo, seen = list(node.users), set()
    while todo:
        n = todo.pop()
        if n in seen or not hasattr(n.meta.get("val"), "shape") and n.op != "output":
            continue  # a size read from the map is no reader
        seen.add(n)
        if _is(n, "permute"):
            if [d % 4 for d in n.args[1]] != [0, 3, 1, 2]:
                return False
            continue
        packet = getattr(getattr(n, "target", None), "_overloadpacket", None)
        name = packet.__name__ if packet is not None else getattr(n.target, "__name__", "")
        if n.op == "output" or name.rstrip("_") not in CHANNELS_LAST_READERS:
            return False
        todo.extend(n.users)
    return True


def permute_layout(node, cap: Captured, channels_last: bool) -> "str | None":
    """'last' for a permute of a feature map to (h, w, c) the spec reads as the channels-first map,
    'first' for the way back, else None."""
    if not _is(node, "permute"):
        return None
    dims = [d % 4 for d in Call(node, cap).arg("dims")]
    try:
        if cap.batch_axis(node.args[0]) != 0 or len(cap.shape_of(node.args[0]) or ()) != 3:
            return None
    except BatchMerged:  # a permute of a tensor whose batch is merged into an axis moves it whole
        return None
    if dims == [0, 2, 3, 1] and not channels_last:
        return "last" if _stays_channels_first(node) else None
    if dims == [0, 3, 1, 2] and channels_last:
        return "first"
    return None
