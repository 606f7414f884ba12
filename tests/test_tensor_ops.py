"""The tensor-operation primitives (element-wise, reductions, softmax, views, copies, interpolation),
face by face against torch at several ranks: each one's built module gives the output shape its
``out_shape`` states, FlopCounterMode counts no multiply-accumulate forward or backward (as
``train_macs`` says), autograd keeps exactly the bytes the training-memory walk charges (its
``saved`` face, or a join's ``train``), and the eval module allocates the inner peak stated.
Other ops are checked against hand counts of each stated formula."""

import pytest
from tensor_examples import JOINS, KINDS, SINGLE

from scalelab.analysis.memory_training import SavedWalk
from scalelab.analysis.train_walk import Tensor
from scalelab.blocks import layers as L

torch = pytest.importorskip("torch")

BATCH = 3


def test_every_tensor_kind_has_examples():
    assert {name.split("/")[0] for name in [*SINGLE, *JOINS]} == KINDS
    assert KINDS <= set(L.REGISTRY)


def _inputs(shapes, grads):
    """Non-leaf inputs, as inside a network (needing a gradient where ``grads`` says so)."""
    leaves = [torch.randn(BATCH, *s, requires_grad=g) for s, g in zip(shapes, grads)]
    return [leaf * 1 for leaf in leaves]


def _kept_bytes(run):
    """Bytes of the distinct storages autograd keeps while ``run()`` runs."""
    kept = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    return out, sum(kept.values())


def _walk_bytes(layer, shapes, grads):
    """What the training-memory walk charges for ``layer`` (fp32, BATCH samples)."""
    walker = SavedWalk(trainable=True, batch=BATCH, nbytes=4, device="cpu")
    xs = [Tensor(s, g) for s, g in zip(shapes, grads)]
    walker.run(layer, xs if isinstance(layer, (L.Binary, L.Cat, L.Stack)) else xs[0])
    return walker.bytes


def _check_faces(layer, shapes, grads, module_input):
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.memory_probe import dispatch_peak

    arg = shapes if len(shapes) > 1 or isinstance(layer, (L.Binary, L.Cat, L.Stack)) else shapes[0]
    out = layer.out_shape(arg)
    module = layer.torch_module()
    xs = _inputs(shapes, grads)
    counter = FlopCounterMode(display=False)
    with counter:
        y, saved = _kept_bytes(lambda: module(module_input(xs)))
    assert tuple(y.shape) == (BATCH, *out)
    assert sum(p.numel() for p in module.parameters()) == layer.cost(arg, out).params == 0
    assert counter.get_total_flops() == 0 == layer.train_macs(arg, out).forward
    assert saved == _walk_bytes(layer, shapes, grads)
    backward = FlopCounterMode(display=False)
    with backward:
        y.sum().backward()
    assert backward.get_total_flops() == 0
    peak = dispatch_peak(lambda: module(module_input([torch.randn(BATCH, *s) for s in shapes])))
    assert peak == 4 * BATCH * (sum(L.elements(s) for s in shapes) + layer.inner_peak(arg, out).peak_elems)
    return out


@pytest.mark.parametrize("name", list(SINGLE))
def test_each_single_input_face_agrees_with_torch(name):
    layer, shape = SINGLE[name]
    _check_faces(layer, [shape], [True], lambda xs: xs[0])


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("name", list(JOINS))
def test_each_join_face_agrees_with_torch(name, grads):
    """Two or more inputs, each needing a gradient or not: the walk keeps what torch keeps."""
    layer, shapes = JOINS[name]
    _check_faces(layer, shapes, (grads * 2)[: len(shapes)], lambda xs: xs)


def test_a_tensor_used_twice_is_kept_once():
    """x * x: both factors are one storage, which autograd and the walk keep once."""
    layer = L.Binary("mul")
    x = _inputs([(4, 5)], [True])[0]
    _, saved = _kept_bytes(lambda: layer.torch_module()([x, x]))
    walker = SavedWalk(trainable=True, batch=BATCH, nbytes=4, device="cpu")
    t = Tensor((4, 5), True)
    walker.run(layer, [t, t])
    assert saved == walker.bytes == 4 * BATCH * 20


def test_a_tensor_shared_by_the_batch_broadcasts_and_joins():
    """A tensor of batch axis 1 (one for the whole batch, as a learned tensor is) broadcasts against
    the batch in binary and is expanded to it in cat, each per sample as the shapes state."""
    x, shared = torch.randn(BATCH, 4, 6), torch.randn(1, 6)
    assert torch.equal(L.Binary("mul").torch_module()([x, shared]), x * shared)
    token = torch.randn(1, 1, 6)
    joined = L.Cat(0).torch_module()([token, x])
    assert tuple(joined.shape) == (BATCH, *L.Cat(0).out_shape([(1, 6), (4, 6)])) == (BATCH, 5, 6)
    assert torch.equal(joined[:, 0], token[:, 0].expand(BATCH, 6)) and torch.equal(joined[:, 1:], x)


# Other ops, by hand from each stated formula (n input elements, m output elements)
@pytest.mark.parametrize("layer, shape, ops", [
    (L.Unary("exp"), (3, 4, 5), 60),  # one per element
    (L.Unary("rsqrt"), (3, 4, 5), 120),  # a root and a divide
    (L.Unary("rdiv", scalar=2.0), (2, 7), 28),  # a reciprocal and a product
    (L.Unary("remainder", scalar=2.0), (2, 7), 56),  # divide, floor, multiply, subtract
    (L.Unary("clamp", low=0.0, high=6.0), (5,), 10),  # a compare per bound
    (L.Unary("clamp", high=6.0), (5,), 5),
    (L.Reduce("sum", (1,)), (3, 4, 5), 60),  # an add per input element
    (L.Reduce("mean", (1, 2)), (3, 4, 5), 60 + 3),  # the adds, a divide per output
    (L.Reduce("norm", (0,)), (4, 6), 2 * 24 + 6),  # |x|^p and an add per input, a root per output
    (L.Reduce("var", (0,)), (4, 6), 4 * 24 + 2 * 6),
    (L.Reduce("std", (0,)), (4, 6), 4 * 24 + 3 * 6),
    (L.Softmax(-1), (6, 7), 5 * 42),
    (L.Softmax(-1, log=True), (6, 7), 5 * 42 + 6),  # a log per row of 7
    (L.Roll((1,), (0,)), (3, 4), 12),  # a copy per element
    (L.Pad((1, 1, 1, 1)), (2, 3, 3), 2 * 5 * 5),  # a write per output element
    (L.Interpolate("nearest", scale=(2.0,)), (2, 3, 3), 2 * 6 * 6),
    (L.Interpolate("bilinear", scale=(2.0,)), (2, 3, 3), 7 * 2 * 6 * 6),  # 4 multiplies, 3 adds
    (L.Interpolate("bicubic", size=(4, 4)), (2, 3, 3), 31 * 2 * 4 * 4),  # 16 multiplies, 15 adds
    (L.Interpolate("linear", size=(5,)), (2, 3), 3 * 2 * 5),  # 2 multiplies, 1 add
    (L.Permute((1, 0)), (3, 4), 0),  # a view
    (L.Reshape((-1,)), (3, 4), 0),
    (L.Select(0, 1), (3, 4), 0),
])
def test_other_ops_by_hand(layer, shape, ops):
    assert L.walk(layer, shape).costs[0].ops == ops


@pytest.mark.parametrize("layer, shapes, ops", [
    (L.Binary("mul"), [(3, 1, 5), (4, 1)], 60),  # one per output element of the broadcast 3x4x5
    (L.Binary("sub", alpha=2.0), [(4,), (4,)], 8),  # a multiply and a subtract
    (L.Cat(1), [(2, 3), (2, 5)], 16),  # a copy per output element
    (L.Stack(0), [(2, 3)] * 3, 18),
])
def test_join_ops_by_hand(layer, shapes, ops):
    assert L.walk(layer, shapes).costs[0].ops == ops


def test_views_are_free_and_say_so():
    for layer in (L.Reshape((-1,)), L.Permute((1, 0)), L.Expand((2, 3)), L.Slice(1, 1), L.Select(0, 0)):
        assert L.latency_of(layer) == (L.LatencyClass.FREE, None)
        assert layer.inner_peak((1, 3), layer.out_shape((1, 3))).peak_elems == 0
        assert layer.saved((1, 3), layer.out_shape((1, 3)), False, True, "cpu").view
    assert L.latency_of(L.Contiguous())[0] is L.LatencyClass.ELEMENTWISE  # a copy launches a kernel


@pytest.mark.parametrize("layer, shape, message", [
    (L.Permute((0, 0, 1)), (2, 3, 4), "permute: dims [0, 0, 1] name an axis of 2x3x4 twice"),
    (L.Permute((1, 0)), (2, 3, 4), "permute dims [1, 0] must name each of the 3 axes of 2x3x4 once"),
    (L.Reshape((5, -1)), (2, 3, 4), "cannot reshape 2x3x4 (24 elements) to 5x-1: 24 is no multiple of 5"),
    (L.Reshape((5, 5)), (2, 3, 4), "cannot reshape 2x3x4 (24 elements) to 5x5 (25 elements)"),
    (L.Expand((4, 3)), (2, 3), "cannot expand 2x3 to 4x3: axis 0 has size 2, and only size 1 expands"),
    (L.Slice(0, 5), (3, 4), "slice [5::1] of axis 0 (size 3) of 3x4 is empty"),
    (L.Select(2, 0), (3, 4), "select: dim 2 is out of range for 3x4 (valid: -2..1)"),
    (L.Select(0, 3), (3, 4), "select: index 3 is out of range for axis 0 of 3x4 (size 3)"),
    (L.Softmax(0), (), "softmax: dim 0 is out of range for a scalar (rank 0)"),
    (L.Pad((3, 3), "reflect"), (2, 3), "reflect padding 3 is too large for an axis of 3"),
    (L.Pad((1, 1, 1, 1), "replicate"), (2, 3, 4, 5), "replicate padding pads the last 1 to 3 axes"),
    (L.Pad((-2, -2)), (2, 3), "pad [-2, -2] leaves axis 1 of 2x3 empty"),
    (L.Interpolate("bilinear", scale=(2.0,)), (3, 8), "bilinear interpolation takes (channels, *spatial) with 2"),
    (L.Interpolate("nearest", scale=(0.1,)), (3, 8), "interpolating 3x8 by [0.1] leaves an empty axis"),
    (L.Roll((1, 2), (0,)), (3, 4), "roll needs one shift per dim"),
])
def test_impossible_shapes_are_named(layer, shape, message):
    with pytest.raises(L.ShapeError) as info:
        L.walk(layer, shape)
    assert message in str(info.value)


@pytest.mark.parametrize("layer, shapes, message", [
    (L.Binary("add"), [(3, 4), (5,)], "binary add: cannot broadcast 3x4 and 5 (sizes 4 and 5 meet at axis 1 of the result)"),
    (L.Binary("mul"), [(3, 4)] * 3, "binary mul takes two inputs (a mul b), got 3"),
    (L.Cat(0), [(2, 3), (2, 4)], "cannot concatenate 2x3 and 2x4 along axis 0: every other axis must agree"),
    (L.Stack(0), [(2, 3), (3, 2)], "cannot stack 2x3 and 3x2: the shapes must be equal"),
    (L.Stack(3), [(2, 3), (2, 3)], "stack: dim 3 is out of range for 2x3 (valid: -3..2)"),
])
def test_impossible_joins_are_named(layer, shapes, message):
    with pytest.raises(L.ShapeError) as info:
        L.walk(layer, shapes)
    assert message in str(info.value)


def test_a_reshape_torch_would_copy_is_refused_by_the_built_module():
    from scalelab.errors import ScalelabError

    permuted = torch.randn(BATCH, 3, 4).permute(0, 2, 1)
    with pytest.raises(ScalelabError, match="put a contiguous block before it"):
        L.Reshape((12,)).torch_module()(permuted)
    copy = L.Contiguous().torch_module()(permuted)
    assert torch.equal(L.Reshape((12,)).torch_module()(copy), permuted.reshape(BATCH, 12))
