"""Every activation function with its parameters, face by face against torch's module, at several
ranks; the spec's ``activation`` kind and the ``activation:`` field of other kinds."""

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

# (function, parameters): every function, the parameterised ones with non-default values
CASES = [(fn, {}) for fn in L.ACTIVATIONS] + [
    ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5}), ("celu", {"alpha": 2.0}),
    ("gelu", {"approximate": "tanh"}), ("hardtanh", {"min_val": -2.0, "max_val": 3.0}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}), ("hardshrink", {"lambd": 0.3}), ("softshrink", {"lambd": 0.1}),
    ("rrelu", {"lower": 0.1, "upper": 0.2}), ("threshold", {"threshold": 0.1, "value": -1.0}),
    ("glu", {}), ("glu", {"dim": 0}),
]
SHAPES = [(12,), (6, 10), (4, 5, 6)]


def _torch_reference(fn, args):
    """The torch module written from torch's own names, not from the table."""
    from torch import nn

    name = {"relu": "ReLU", "relu6": "ReLU6", "sigmoid": "Sigmoid", "tanh": "Tanh", "silu": "SiLU", "gelu": "GELU",
            "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish", "leaky_relu": "LeakyReLU", "elu": "ELU",
            "celu": "CELU", "selu": "SELU", "hardtanh": "Hardtanh", "softplus": "Softplus", "mish": "Mish",
            "softsign": "Softsign", "logsigmoid": "LogSigmoid", "tanhshrink": "Tanhshrink", "hardshrink": "Hardshrink",
            "softshrink": "Softshrink", "rrelu": "RReLU", "threshold": "Threshold", "glu": "GLU"}[fn]
    return getattr(nn, name)(**args)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("fn,args", CASES, ids=lambda v: str(v) if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()))
def test_each_activation_face_by_face(fn, args, shape):
    torch = pytest.importorskip("torch")
    layer = L.Activation.of(fn, **args)
    module = layer.torch_module()
    ref = _torch_reference(fn, {**args, **({"dim": args["dim"] + 1} if "dim" in args else {})})
    assert type(module) is type(ref) and repr(module) == repr(ref)
    x = torch.randn(2, *shape)
    torch.testing.assert_close(module.eval()(x), ref.eval()(x))
    check_faces(layer, shape, trained=False, input_grad=True)


def test_logsigmoid_keeps_no_buffer_on_a_gpu():
    layer = L.Activation("logsigmoid")
    assert layer.saved((8,), (8,), False, True, "cpu") == L.Saved(input=True, per_sample_elements=8)
    assert layer.saved((8,), (8,), False, True, "gpu") == L.Saved(input=True)


def test_gelu_tanh_counts_its_own_formula():
    # cube (2), scale, add, scale, tanh (5 as the tanh activation counts it), add, multiply, halve
    assert L.walk(L.Activation.of("gelu", approximate="tanh"), (10,)).costs[0].ops == (2 + 1 + 1 + 1 + 5 + 1 + 1 + 1) * 10
    assert L.walk(L.Activation("gelu"), (10,)).costs[0].ops == 5 * 10


@pytest.mark.parametrize("trained,input_grad", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("prelu,shape", [(L.PReLU(), (5,)), (L.PReLU(4, 0.1), (4, 6)), (L.PReLU(4), (4, 3, 5))])
def test_prelu_face_by_face(prelu, shape, trained, input_grad):
    check_faces(prelu, shape, trained, input_grad)


def test_prelu_slopes_must_match_the_channels():
    with pytest.raises(L.ShapeError, match="prelu with 4 slopes needs 4 channels, got 3x5"):
        L.PReLU(4).out_shape((3, 5))


def _network(blocks, channels=4, resolution=6):
    return resolve(parse_spec(f"name: t\ninput: {{channels: {channels}, resolution: {resolution}}}\nblocks:\n"
                              + "".join(f"  - {b}\n" for b in blocks)))


def test_parameterised_activations_in_a_spec():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = _network([
        "{name: leaky, kind: activation, function: leaky_relu, negative_slope: 0.2}",
        "{name: clamp, kind: activation, function: hardtanh, min_val: -0.5, max_val: 0.5}",
        "{name: slopes, kind: activation, function: prelu, per_channel: true, init: 0.1}",
        "{name: one_slope, kind: activation, function: prelu}",
        "{name: gated, kind: activation, function: glu, dim: 0}",
        "{name: conv, kind: conv, out: 2, kernel: 3, activation: elu, norm: none}",
        "{name: tail, kind: activation, function: gelu, approximate: tanh}",
    ])
    blocks = network.blocks
    assert blocks["slopes"].costs[0].params == 4 and blocks["one_slope"].costs[0].params == 1
    assert blocks["gated"].out_shape == (2, 6, 6)
    assert [c.label for c in blocks["conv"].costs] == ["conv", "elu"]
    net = build_module(network).eval()
    x = torch.randn(2, 4, 6, 6)
    F = torch.nn.functional
    h = F.hardtanh(F.leaky_relu(x, 0.2), -0.5, 0.5)
    h = F.prelu(F.prelu(h, torch.full((4,), 0.1)), torch.full((1,), 0.25))
    h = F.glu(h, dim=1)
    conv = net.blocks[5][0]
    h = F.gelu(F.elu(conv(h)), approximate="tanh")
    torch.testing.assert_close(net(x), h)


@pytest.mark.parametrize("block,message", [
    ("{kind: activation, function: relu, negative_slope: 0.1}", "activation 'relu' takes no parameters, not negative_slope"),
    ("{kind: activation, function: leaky_relu, alpha: 0.1}", "activation 'leaky_relu' takes negative_slope, not alpha"),
    ("{kind: activation, function: threshold, value: 0.0}", "activation 'threshold' needs threshold"),
    ("{kind: activation, function: gelu, approximate: fast}", "approximate"),
    ("{kind: activation, function: elu, per_channel: true}", "per_channel is prelu's, not elu's"),
    ("{kind: conv, out: 4, activation: prelu}", "activation"),
    ("{kind: activation, function: gelu6}", "function"),
])
def test_bad_activation_parameters_are_refused(block, message):
    with pytest.raises(ScalelabError, match=message):
        _network([block])


def test_bad_activation_parameters_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "bad.yaml"
    spec.write_text("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n"
                    "  - {name: act, kind: activation, function: leaky_relu, alpha: 0.1}\n")
    result = CliRunner().invoke(app, ["analyze", str(spec)])
    assert result.exit_code == 2
    assert "leaky_relu" in result.output and "alpha" in result.output and "Traceback" not in result.output
