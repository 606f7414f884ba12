"""One definition per layer kind: every registered kind defines every face, every consumer goes
through the registry, and a missing face or an unregistered layer is an error, never a default."""

from dataclasses import dataclass

import pytest

from scalelab.analysis.block_memory import inner_peak
from scalelab.analysis.latency import latency_class, predict_block
from scalelab.analysis.memory import training_memory
from scalelab.analysis.train_compute import training_compute
from scalelab.blocks import layers as L
from scalelab.blocks.layers import base
from scalelab.devices import load_profile
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

FACES = ("out_shape", "cost", "train_macs", "saved", "inner_peak", "latency", "torch_module")
WIRING = ("walk", "peak", "train", "module")


def test_every_registered_kind_defines_every_face():
    primitives = [cls for cls in L.REGISTRY.values() if issubclass(cls, L.Primitive)]
    wiring = [cls for cls in L.REGISTRY.values() if issubclass(cls, L.Wiring)]
    assert len(primitives) + len(wiring) == len(L.REGISTRY)
    assert {c.kind for c in wiring} == {"sequence", "residual", "parallel", "gate", "merge", "unpack"}
    for cls in primitives:
        missing = [f for f in FACES if getattr(cls, f) is getattr(L.Primitive, f)]
        assert missing == [], f"{cls.kind} lacks {missing}"
    for cls in wiring:
        assert all(f in vars(cls) for f in WIRING), cls.kind


@pytest.fixture
def half_defined():
    """A primitive kind registered with a shape rule and a cost only."""

    @dataclass(frozen=True)
    class HalfDefined(L.Primitive):
        kind = "half_defined"

        def out_shape(self, s):
            return s

        def cost(self, s, out):
            return L.LayerCost("half", node=self)

    L.register(HalfDefined)
    yield HalfDefined()
    del L.REGISTRY["half_defined"]
    base._CLASSES.discard(HalfDefined)


def test_a_missing_face_is_an_error_in_every_consumer(half_defined):
    layer = half_defined
    assert L.walk(layer, (2, 3, 3)).out == (2, 3, 3)  # the faces it has work
    with pytest.raises(L.MissingFace, match="'half_defined' defines no 'inner_peak' face"):
        inner_peak(layer, (2, 3, 3))
    with pytest.raises(L.MissingFace, match="no 'latency' face"):
        latency_class(layer)
    with pytest.raises(L.MissingFace, match="no 'latency' face"):
        predict_block(L.walk(layer, (2, 3, 3)).costs, load_profile("t4"), "fp32", 1)
    with pytest.raises(L.MissingFace, match="no 'torch_module' face"):
        from scalelab.build import to_torch

        to_torch(L.seq(layer))
    with pytest.raises(L.MissingFace, match="no 'train_macs' face"):
        layer.train_macs((2, 3, 3), (2, 3, 3))
    with pytest.raises(L.MissingFace, match="no 'saved' face"):
        layer.saved((2, 3, 3), (2, 3, 3), True, True, "cpu")


def test_an_unregistered_layer_is_an_error():
    @dataclass(frozen=True)
    class Stranger:
        def out_shape(self, s):
            return s

    with pytest.raises(L.UnknownLayer, match="Stranger is not a registered layer kind"):
        L.walk(L.seq(L.Activation("relu"), Stranger()), (2, 3, 3))
    with pytest.raises(L.UnknownLayer):
        inner_peak(Stranger(), (2, 3, 3))


def test_training_memory_and_compute_refuse_a_kind_without_their_face(half_defined, monkeypatch):
    network = resolve(parse_spec("name: t\ninput: {channels: 2, resolution: 3}\nblocks:\n"
                                 "  - {name: a, kind: conv, out: 2, kernel: 1}\n"))
    block = network.blocks["a"]
    monkeypatch.setattr(block, "layers", L.seq(block.layers, half_defined))
    with pytest.raises(L.MissingFace, match="no 'saved' face"):
        training_memory(network)
    with pytest.raises(L.MissingFace, match="no 'train_macs' face"):
        training_compute(network)


def test_cost_records_carry_their_layer():
    conv, bn, act = L.Conv(4, 4, (3, 3), padding=(1, 1)), L.BatchNorm(4), L.Activation("relu")
    residual = L.Residual(L.seq(conv, bn), post=act)
    gate = L.Gate(L.seq(L.AdaptiveAvgPool((1, 1)), L.Conv(4, 4, (1, 1)), L.Activation("sigmoid")))
    costs = L.walk(L.seq(residual, gate), (4, 5, 5)).costs
    assert [c.node for c in costs[:4]] == [conv, bn, residual, act]
    assert costs[2].label == "add" and costs[2].node is residual
    assert costs[-1].label == "mul" and costs[-1].node is gate
    assert [latency_class(c.node) for c in costs] == ["dense_conv", "norm", "elementwise", "elementwise",
                                                   "elementwise", "pointwise_conv", "elementwise", "elementwise"]


def test_activation_names_are_listed_once():
    from scalelab.blocks.base import _FUNCTIONS

    assert _FUNCTIONS == tuple(L.ACTIVATIONS)
    with pytest.raises(ValueError, match="unknown activation 'gelu6'"):
        L.Activation("gelu6")


@pytest.mark.parametrize("fn", list(L.ACTIVATIONS))
def test_each_activation_builds_its_module_and_saves_what_torch_saves(fn):
    """Build the activation's module, run it on an input that needs a gradient, and see which of
    input and output autograd keeps (saved_tensors_hooks); the ``saved`` face must say the same."""
    torch = pytest.importorskip("torch")
    layer = L.Activation(fn)
    module = layer.torch_module()
    assert type(module).__name__ == L.ACTIVATIONS[fn].torch_name
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    h = x * 1  # a non-leaf input, as inside a network
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        y = module(h)
    ptrs = {t.untyped_storage().data_ptr() for t in kept}
    saved = layer.saved((3, 4, 4), (3, 4, 4), False, True, "cpu")
    assert (saved.input, saved.output) == (h.untyped_storage().data_ptr() in ptrs, y.untyped_storage().data_ptr() in ptrs)
    assert L.walk(layer, (3, 4, 4)).costs[0].ops == L.ACTIVATIONS[fn].ops * 48


def test_dropout_saves_per_device_kind():
    drop = L.Dropout(0.5)
    assert drop.saved((8,), (8,), False, True, "cpu") == L.Saved(per_sample_elements=8)  # float noise, input dtype
    assert drop.saved((8,), (8,), False, True, "gpu") == L.Saved(per_sample_bytes=8)  # bool mask
    assert L.Dropout(0.0).saved((8,), (8,), False, True, "cpu").view
    with pytest.raises(ScalelabError, match="unknown device kind 'tpu'"):
        drop.saved((8,), (8,), False, True, "tpu")


# One example of every registered primitive kind (a new kind must add one: see the coverage test).
EXAMPLES = {
    "conv": [L.Conv(4, 6, (3, 3), (2, 2), (1, 1)), (4, 9, 9)],
    "conv/grouped+bias+reflect": [L.Conv(4, 8, (3, 3), padding=(1, 1), groups=2, bias=True, padding_mode="reflect"),
                                  (4, 7, 7)],
    "conv/1d-dilated+circular": [L.Conv(4, 6, (3,), (2,), (2,), (2,), groups=2, padding_mode="circular"), (4, 9)],
    "linear": [L.Linear(12, 5), (12,)],
    "linear/tokens": [L.Linear(12, 5), (7, 12)],
    "batchnorm": [L.BatchNorm(4), (4, 5, 5)],
    "batchnorm/sequence": [L.BatchNorm(4), (4, 7)],
    "group_norm": [L.GroupNorm(2, 4), (4, 5, 5)],
    "instance_norm": [L.InstanceNorm(4, affine=True), (4, 5, 5)],
    "layer_norm_trailing": [L.TrailingLayerNorm((5,)), (4, 5)],
    "rms_norm": [L.RMSNorm((5,)), (4, 5)],
    "lrn": [L.LocalResponseNorm(5), (8, 5, 5)],
    "activation": [L.Activation("silu"), (4, 5, 5)],
    "prelu": [L.PReLU(4), (4, 5, 5)],
    "pool": [L.Pool("max", (3, 3), (2, 2), (1, 1)), (4, 9, 9)],
    "pool/avg": [L.Pool("avg", (3, 3), (2, 2), (1, 1), ceil_mode=True), (4, 8, 8)],
    "adaptive_avgpool": [L.AdaptiveAvgPool((2, 2)), (4, 6, 6)],
    "adaptive_avgpool/global": [L.AdaptiveAvgPool((1, 1)), (4, 6, 6)],
    "flatten": [L.Flatten(), (4, 3, 3)],
    "dropout": [L.Dropout(0.5), (4, 3, 3)],
    "zeropad": [L.ZeroPadShortcut(2, 8), (4, 6, 6)],
    "layernorm": [L.LayerNorm(4, 1e-6), (4, 5, 5)],
    "channel_linear": [L.ChannelLinear(4, 6), (4, 5, 5)],
    "layerscale": [L.LayerScale(4, 0.5), (4, 5, 5)],
    "channel_slice": [L.ChannelSlice(1, 3), (4, 5, 5)],
    "channel_shuffle": [L.ChannelShuffle(2), (4, 5, 5)],
    "layerscale_trailing": [L.TrailingLayerScale(5, 0.5), (4, 5)],
}


def test_every_example_and_wiring_node_gives_a_latency_class():
    relu = L.Activation("relu")
    nodes = [layer for layer, _ in EXAMPLES.values()] + [
        L.Residual(relu), L.Parallel((relu, relu)), L.Gate(relu), L.Merge("add"), L.Merge("concat")]
    for node in nodes:
        latency_class, width = L.latency_of(node)
        assert isinstance(latency_class, L.LatencyClass), node
        # the thin-kernel rule's width is the output channels (features) of a matrix product, else None
        products = {L.Conv: "out_ch", L.ChannelLinear: "out_ch", L.Linear: "out_features"}
        assert width == (getattr(node, products[type(node)]) if type(node) in products else None), node


@pytest.fixture
def misspelled():
    """A primitive kind whose latency face returns a bare, misspelled string."""

    @dataclass(frozen=True)
    class Misspelled(L.Primitive):
        kind = "misspelled"
        out_shape = L.Activation.out_shape
        cost = L.Activation.cost
        train_macs = base.no_macs
        inner_peak = base.fresh_output

        def latency(self):
            return "elementwsie", None

    L.register(Misspelled)
    yield Misspelled()
    del L.REGISTRY["misspelled"]
    base._CLASSES.discard(Misspelled)


def test_a_misspelled_latency_class_is_an_error(misspelled):
    with pytest.raises(TypeError, match="'misspelled' gives the latency class 'elementwsie'; its latency face must "
                                        "return a LatencyClass"):
        L.latency_of(misspelled)
    with pytest.raises(TypeError, match="'elementwsie'"):
        latency_class(misspelled)


def test_every_primitive_kind_has_an_example():
    # an opaque layer stands for an operation of unknown cost: no module to compare (tests/test_import.py);
    # a source takes no input and a split gives a tuple: tests/test_sources_and_outputs.py checks their faces
    from tensor_examples import JOINS, SINGLE  # tests/test_tensor_ops.py checks the tensor operations' faces
    from compute_examples import SEVERAL  # tests/test_compute_matmul.py and _attention.py check theirs
    from swin_strategies import LAYERS as WINDOWED  # tests/test_swin.py checks the windowed layers' faces
    from position_strategies import LAYERS as POSITIONS  # tests/test_positions.py and _masked_attention.py check theirs

    # read after the imports above, which register the layers they name
    primitives = {k for k, cls in L.REGISTRY.items() if issubclass(cls, L.Primitive)}
    examples = {name.split("/")[0] for name in [*EXAMPLES, *SINGLE, *JOINS, *SEVERAL, *WINDOWED, *POSITIONS]}
    assert examples == primitives - {"opaque", "param", "split", "unbind"}


@pytest.mark.parametrize("trained,input_grad", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_face_agrees_with_its_torch_module(name, trained, input_grad):
    """Each primitive's faces against its own built module (CPU, fp32, batch 3), with and without
    trained weights and an input that needs a gradient: output shape,
    parameters, forward and backward MACs (FlopCounterMode / 2), the bytes autograd saves (saved_tensors_hooks,
    distinct storages, parameters excluded) and the eval inner peak (the dispatch-mode count of
    memory_probe)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.memory_probe import dispatch_peak

    layer, shape = EXAMPLES[name]
    if not layer.has_weights and not (trained and input_grad):
        pytest.skip("without weights only the input's need for a gradient matters")
    batch, out = 3, layer.out_shape(shape)
    module = layer.torch_module().train()
    for p in module.parameters():
        p.requires_grad_(trained)
    leaf = torch.randn(batch, *shape, requires_grad=input_grad)
    x = leaf * 1  # a non-leaf input (needing a gradient if the leaf does), as inside a network
    params = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    assert tuple(y.shape[1:]) == out
    cost = layer.cost(shape, out)
    assert cost.params == sum(p.numel() for p in module.parameters())
    assert 2 * batch * layer.train_macs(shape, out).forward == counter.get_total_flops() == 2 * batch * cost.macs
    face = layer.saved(shape, out, trained, input_grad, "cpu")
    n_in, n_out = L.elements(shape), L.elements(out)
    expected = (batch * (4 * (n_in * face.input + n_out * face.output + face.per_sample_elements) + face.per_sample_bytes)
                + face.fixed_bytes)
    assert sum(saved.values()) == expected
    backward = FlopCounterMode(display=False)
    with backward:
        y.sum().backward()
    macs = layer.train_macs(shape, out)
    groups = layer.groups if isinstance(layer, L.Conv) else 1  # torch's grouped weight-gradient overcount
    assert backward.get_total_flops() == 2 * batch * (macs.grad_input * input_grad + groups * macs.grad_weight * trained)
    module.eval()  # the input is made inside the counted pass, so it is counted once (a view adds nothing)
    peak = dispatch_peak(lambda: module(torch.randn(batch, *shape)))
    assert peak == 4 * batch * (n_in + layer.inner_peak(shape, out).peak_elems)
