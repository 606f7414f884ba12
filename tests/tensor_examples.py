"""One example of each tensor-operation primitive, at several ranks (tests/test_tensor_ops.py checks
every face of each against torch; tests/test_layer_registry.py counts them as the examples of these
kinds)."""

import math

from scalelab.blocks import layers as L
from scalelab.blocks.layers.elementwise import SCALAR, UNARY

# (layer, per-sample input shape, or a list of shapes for the joins)
SINGLE = {
    **{f"unary/{op}": (L.Unary(op), (3, 4, 5)) for op in UNARY},
    **{f"unary/{op}": (L.Unary(op, scalar=1.5), (2, 7)) for op in SCALAR},
    "unary/clamp": (L.Unary("clamp", low=-0.5, high=0.5), (5,)),
    "unary/clamp-min": (L.Unary("clamp", low=0.0), (2, 3, 4, 5)),
    "reduce/sum": (L.Reduce("sum", (1,)), (3, 4, 5)),
    "reduce/mean-keepdim": (L.Reduce("mean", (-1, -2), keepdim=True), (3, 4, 5)),
    "reduce/amax": (L.Reduce("amax", (0,)), (6, 2)),
    "reduce/amin-keepdim": (L.Reduce("amin", (2,), keepdim=True), (2, 3, 4, 5)),
    "reduce/norm": (L.Reduce("norm", (0, 1)), (3, 4, 5)),
    "reduce/norm-inf": (L.Reduce("norm", (0,), p=math.inf), (7,)),
    "reduce/norm-1": (L.Reduce("norm", (-1,), keepdim=True, p=1.0), (4, 6)),
    "reduce/var": (L.Reduce("var", (1, 2)), (3, 4, 5)),
    "reduce/std-keepdim": (L.Reduce("std", (0,), keepdim=True, correction=0.0), (5, 3)),
    "softmax": (L.Softmax(-1), (6, 7)),
    "softmax/log": (L.Softmax(0, log=True), (3, 4, 5)),
    "reshape": (L.Reshape((12, -1)), (3, 4, 5)),
    "reshape/vector": (L.Reshape((2, 3)), (6,)),
    "permute": (L.Permute((2, 0, 1)), (3, 4, 5)),
    "permute/matrix": (L.Permute((-1, 0)), (2, 3)),
    "expand": (L.Expand((3, 4, 5)), (3, 1, 5)),
    "expand/new-axes": (L.Expand((2, 3, 4, -1)), (1, 5)),
    "slice": (L.Slice(1, 1, 7, 2), (3, 8, 5)),
    "slice/from-end": (L.Slice(-1, start=-3), (4, 6)),
    "select": (L.Select(1, -1), (3, 4, 5)),
    "select/to-scalar": (L.Select(0, 2), (6,)),
    "roll": (L.Roll((1, -2), (0, 2)), (3, 4, 5)),
    "roll/one": (L.Roll((3,), (-1,)), (7,)),
    "contiguous": (L.Contiguous(), (3, 4, 5)),
    "pad/constant": (L.Pad((1, 2, 0, 1), value=0.5), (3, 4, 5)),
    "pad/crop": (L.Pad((-1, 1)), (4, 6)),
    "pad/reflect": (L.Pad((1, 1, 2, 2), "reflect"), (3, 6, 6)),
    "pad/replicate": (L.Pad((2, 1), "replicate"), (4, 5)),
    "pad/circular": (L.Pad((1, 1, 1, 1), "circular"), (2, 5, 5)),
    "interpolate/nearest": (L.Interpolate("nearest", scale=(2.0,)), (3, 4, 4)),
    "interpolate/nearest-exact": (L.Interpolate("nearest-exact", size=(7, 5)), (3, 4, 4)),
    "interpolate/nearest-3d": (L.Interpolate("nearest", scale=(2.0,)), (2, 3, 4, 4)),
    "interpolate/linear": (L.Interpolate("linear", scale=(1.5,), align_corners=True), (3, 8)),
    "interpolate/bilinear": (L.Interpolate("bilinear", size=(5, 9)), (3, 4, 4)),
    "interpolate/bicubic": (L.Interpolate("bicubic", scale=(2.0, 0.5)), (2, 4, 6)),
}
JOINS = {
    "binary/mul": (L.Binary("mul"), [(3, 4, 5), (5,)]),
    "binary/add-alpha": (L.Binary("add", alpha=2.0), [(2, 6), (2, 6)]),
    "binary/sub": (L.Binary("sub", alpha=0.5), [(4, 1, 5), (3, 1)]),
    "binary/div": (L.Binary("div"), [(4, 1, 5), (3, 1)]),
    "binary/maximum": (L.Binary("maximum"), [(2, 3), (2, 3)]),
    "binary/minimum": (L.Binary("minimum"), [(1, 3), (4, 1)]),
    "binary/pow": (L.Binary("pow"), [(3, 4), (4,)]),
    "cat": (L.Cat(0), [(2, 5), (3, 5), (1, 5)]),
    "cat/last": (L.Cat(-1), [(3, 4, 5), (3, 4, 2)]),
    "stack": (L.Stack(1), [(3, 4), (3, 4)]),
    "stack/last": (L.Stack(-1), [(2, 3, 4), (2, 3, 4), (2, 3, 4)]),
}
KINDS = {"unary", "binary", "reduce", "softmax", "reshape", "permute", "expand", "slice", "select", "roll",
         "contiguous", "cat", "stack", "pad", "interpolate"}
