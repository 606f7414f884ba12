"""``matmul`` (torch.matmul on per-sample shapes, 1-d operands, broadcast leading axes), face by face
against its module with each input needing a gradient or not; a token-mixing spec whose training
memory and compute equal one real training step (saved_tensors_hooks, FlopCounterMode)."""

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

SHAPES = {
    "matrices": [(5, 4), (4, 3)],
    "batched": [(2, 5, 4), (2, 4, 3)],
    "vector-left": [(4,), (4, 3)],
    "vector-right": [(5, 4), (4,)],
    "dot": [(4,), (4,)],
    "broadcast-both": [(2, 1, 5, 4), (3, 4, 6)],
    "broadcast-left": [(5, 4), (3, 4, 2)],
    "broadcast-right": [(3, 5, 4), (4, 2)],
}


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)], ids=["both", "a", "b"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_matmul_face_by_face(name, grads):
    check_faces(L.Matmul(), SHAPES[name], False, grads)


def test_matmul_shapes_and_counts_by_hand():
    def walk(shapes):
        w = L.walk(L.Matmul(), shapes)
        return w.out, w.costs[0].macs

    assert walk(SHAPES["broadcast-both"]) == ((2, 3, 5, 6), 2 * 3 * 5 * 4 * 6)
    assert walk(SHAPES["vector-left"]) == ((3,), 4 * 3)
    assert walk(SHAPES["dot"]) == ((), 4)
    # a broadcast operand is copied to the full leading axes for the product, and kept so
    saved = L.Matmul().saved(SHAPES["broadcast-left"], (3, 5, 2), False, (True, True), "cpu")
    assert saved == L.Saved(inputs=(False, True), per_sample_elements=3 * 5 * 4)
    with pytest.raises(L.ShapeError, match="matmul of 5x4 and 3x2: 4 columns against 3 rows"):
        L.Matmul().out_shape([(5, 4), (3, 2)])
    with pytest.raises(L.ShapeError, match="the leading axes 2 and 3 do not broadcast"):
        L.Matmul().out_shape([(2, 5, 4), (3, 4, 2)])


# Token mixing: queries and keys from linear layers, a score matrix, its rows mixing the values
SPEC = """
name: mixing
input: {channels: 3, resolution: 4}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, norm: none, activation: none}
  - {name: tokens, kind: reshape, shape: [8, 16]}
  - {name: q, kind: linear, out: 16, flatten: false}
  - {name: k, kind: linear, out: 16, flatten: false, from: tokens}
  - {name: kt, kind: permute, dims: [1, 0]}
  - {name: scores, kind: matmul, from: [q, kt]}
  - {name: mixed, kind: matmul, from: [scores, tokens]}
  - {name: pooled, kind: matmul, from: [mixed, kt]}
"""


def test_a_spec_with_matmuls_runs_and_counts_as_torch():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = resolve(parse_spec(SPEC))
    assert [network.blocks[b].out_shape for b in ("scores", "mixed")] == [(8, 8), (8, 16)]
    assert network.blocks["scores"].costs[0].macs == 8 * 16 * 8
    net = build_module(network).eval()
    x = torch.randn(2, 3, 4, 4)
    t = net.blocks[0](x).reshape(2, 8, 16)
    q, k = net.blocks[2](t), net.blocks[3](t)
    torch.testing.assert_close(net(x), (q @ k.transpose(1, 2)) @ t @ k.transpose(1, 2))


@pytest.mark.parametrize("freeze_until", [None, "stem"])
def test_training_memory_and_compute_equal_a_real_step(freeze_until):
    pytest.importorskip("torch")
    from test_train_compute import counted

    from scalelab.analysis.memory import training_memory
    from scalelab.analysis.memory_probe import training_step
    from scalelab.analysis.train_compute import training_compute
    from scalelab.analysis.train_walk import frozen_prefix

    network = resolve(parse_spec(SPEC))
    model = training_memory(network, batch=2, freeze_until=freeze_until)
    assert model.saved_bytes == training_step(network, "sgd", batch=2, freeze_until=freeze_until)["saved_bytes"]
    result = training_compute(network, batch=2, frozen=frozen_prefix(network, freeze_until))
    matmuls = [r for r in result.layers if r.label == "matmul"]
    real = counted(network, 2, freeze_until)
    assert real["aten.bmm"] == 2 * sum(r.forward_macs + r.grad_input_macs for r in matmuls)
    # three products of 8 * 16 * 8 MACs; each input's gradient one more, but the frozen tokens' (mixed's b)
    gradients = 6 if freeze_until is None else 5
    assert real["aten.bmm"] == 2 * 2 * (3 + gradients) * 8 * 16 * 8


def test_matmul_takes_two_inputs():
    with pytest.raises(ScalelabError, match="matmul takes two inputs"):
        resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 4}\nblocks:\n"
                           "  - {name: a, kind: conv, out: 4, kernel: 1}\n  - {name: b, kind: conv, out: 4, kernel: 1}\n"
                           "  - {name: c, kind: conv, out: 4, kernel: 1}\n  - {name: m, kind: matmul, from: [a, b, c]}\n"))


@pytest.mark.parametrize("name", ["matmul"])
def test_the_registry_example(name):
    from compute_examples import SEVERAL

    layer, shapes = SEVERAL[name]
    check_faces(layer, shapes, False, True)


def test_matmul_is_a_matrix_product_to_a_device():
    assert L.latency_of(L.Matmul()) == (L.LatencyClass.LINEAR, None)
