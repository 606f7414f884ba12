"""Memory: inference peaks of hand-made graphs (worked out by hand below), best orders, and
training memory against what torch holds after a real backward and optimizer step."""

import pytest

from scalelab.analysis.memory import best_order, inference_memory, training_memory
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

# 1x1 convs without norm or activation: output = out channels x 4 x 4, params = in*out + out (bias).
CONV = "kind: conv, kernel: 1, norm: none, activation: none"


def net(blocks: str, channels: int = 1):
    return resolve(parse_spec(f"name: t\ninput: {{channels: {channels}, resolution: 4}}\nblocks:\n{blocks}"))


CHAIN = net(f"""
  - {{name: a, {CONV}, out: 2}}
  - {{name: b, {CONV}, out: 4}}
  - {{name: c, {CONV}, out: 1}}
""")


def test_chain_peak():
    # elements: input 16, a 32, b 64, c 16. Steps: a 16+32=48 (input freed after), b 32+64=96, c 64+16=80.
    m = inference_memory(CHAIN)
    assert (m.peak_bytes, m.peak_block) == (96 * 4, "b")
    assert [m.blocks[n].alive_bytes for n in "abc"] == [48 * 4, 96 * 4, 80 * 4]
    # params a 1*2+2=4, b 2*4+4=12, c 4*1+1=5 -> 21
    assert m.weight_bytes == 21 * 4
    assert m.total_bytes == 21 * 4 + 96 * 4
    half = inference_memory(CHAIN, dtype="fp16", batch=3)
    assert (half.peak_bytes, half.weight_bytes) == (96 * 2 * 3, 21 * 2)
    assert half.blocks["b"].activation_bytes == 64 * 2 * 3


def test_residual_keeps_its_input_alive():
    # a 64, b 128, c 64, add 64. Steps: a 16+64=80; b a64+b128=192; c a64+b128+c64=256 (b freed
    # after); add a64+c64+add64=192.
    m = inference_memory(net(f"""
  - {{name: a, {CONV}, out: 4}}
  - {{name: b, {CONV}, out: 8}}
  - {{name: c, {CONV}, out: 4}}
  - {{name: sum, kind: add, from: [a, c]}}
"""))
    assert (m.peak_bytes, m.peak_block) == (256 * 4, "c")
    assert m.blocks["sum"].alive_bytes == 192 * 4


def test_inception_style_fork():
    # stem 32; branches 16, 32, 48; concat 96. Steps: stem 16+32=48; b1 32+16=48; b2 32+16+32=80;
    # b3 32+16+32+48=128 (stem freed after); cat 16+32+48+96=192.
    m = inference_memory(net(f"""
  - {{name: stem, {CONV}, out: 2}}
  - {{name: b1, {CONV}, out: 1, from: stem}}
  - {{name: b2, {CONV}, out: 2, from: stem}}
  - {{name: b3, {CONV}, out: 3, from: stem}}
  - {{name: cat, kind: concat, from: [b1, b2, b3]}}
"""))
    assert [m.blocks[n].alive_bytes // 4 for n in ("stem", "b1", "b2", "b3", "cat")] == [48, 48, 80, 128, 192]
    assert (m.peak_bytes, m.peak_block) == (192 * 4, "cat")


TWO_ORDERS = net(f"""
  - {{name: s, {CONV}, out: 4}}
  - {{name: p, {CONV}, out: 8}}
  - {{name: p2, {CONV}, out: 4}}
  - {{name: q, {CONV}, out: 1, from: s}}
  - {{name: cat, kind: concat, from: [p2, q]}}
""")


def test_two_orders_differ():
    # s 64, p 128, p2 64, q 16, cat 80.
    # Spec order s,p,p2,q,cat: s 16+64=80, p 64+128=192, p2 s64+p128+p2 64=256 (s still waits for q),
    #   q s64+p2 64+q16=144, cat 64+16+80=160 -> 256 at p2.
    # Order s,q,p,p2,cat: s 80, q 64+16=80, p 64+16+128=208 (s freed after), p2 16+128+64=208,
    #   cat 160 -> 208.
    spec_order = inference_memory(TWO_ORDERS)
    assert (spec_order.peak_bytes, spec_order.peak_block) == (256 * 4, "p2")
    other = inference_memory(TWO_ORDERS, order=["s", "q", "p", "p2", "cat"])
    assert (other.peak_bytes, other.peak_block) == (208 * 4, "p")
    best = best_order(TWO_ORDERS)
    assert best.exact and best.peak_bytes == 208 * 4
    assert inference_memory(TWO_ORDERS, order=best.order).peak_bytes == 208 * 4
    greedy = best_order(TWO_ORDERS, state_limit=0)
    assert not greedy.exact and greedy.peak_bytes == 208 * 4


def test_bad_orders_and_options():
    with pytest.raises(ScalelabError, match="before its input 's'"):
        inference_memory(TWO_ORDERS, order=["q", "s", "p", "p2", "cat"])
    with pytest.raises(ScalelabError, match="leaves out"):
        inference_memory(TWO_ORDERS, order=["s"])
    with pytest.raises(ScalelabError, match="unknown dtype 'fp64'"):
        inference_memory(TWO_ORDERS, dtype="fp64")
    with pytest.raises(ScalelabError, match="did you mean 'adam'"):
        training_memory(TWO_ORDERS, optimizer="adm")
    with pytest.raises(ScalelabError, match="no block named 'p3'"):
        training_memory(TWO_ORDERS, freeze_until="p3")


def test_resnet50_weights_and_output():
    m = inference_memory(resolve(parse_spec(open("specs/resnet50.yaml").read()), 64))
    assert m.weight_bytes == 25_557_032 * 4  # torchvision's parameter count, fp32
    assert m.blocks["fc"].activation_bytes == 1000 * 4


# --------------------------------------------------------------------------------------------------
# Training memory against torch

TINY = """
name: tiny
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, stride: 2}
  - {name: pool, kind: maxpool, kernel: 3, stride: 2, padding: 1}
  - {name: res, kind: bottleneck, out: 16, mid: 4}
  - {name: mb, kind: mbconv, out: 16, expand: 4, se: 0.25, activation: silu}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


def torch_holds(network, optimizer: str, batch: int, freeze_until=None) -> dict:
    """Bytes torch keeps: parameters, saved-for-backward tensors (distinct storages, parameters and
    buffers excluded), gradients and optimizer state after one real step."""
    torch = pytest.importorskip("torch")
    from scalelab.build import Net

    torch.manual_seed(0)
    model = Net(network).train()
    if freeze_until is not None:
        for name in list(network.blocks)[: list(network.blocks).index(freeze_until) + 1]:
            for p in model.block(name).parameters():
                p.requires_grad_(False)
    state = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in state:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = {"sgd": lambda: torch.optim.SGD(trainable, lr=0.1),
           "sgd-momentum": lambda: torch.optim.SGD(trainable, lr=0.1, momentum=0.9),
           "adam": lambda: torch.optim.Adam(trainable)}[optimizer]()
    x = torch.randn(batch, *network.input_shape)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).sum()  # sum keeps no tensor for backward
    loss.backward()
    opt.step()
    optimizer_bytes = sum(t.nbytes for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    return {
        "weights": sum(p.nbytes for p in model.parameters()),
        "gradients": sum(p.grad.nbytes for p in model.parameters() if p.grad is not None),
        "optimizer": optimizer_bytes,
        "saved": sum(saved.values()),
        "step_counters": sum(4 for s in opt.state.values() if "step" in s),
    }


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam"])
def test_training_memory_matches_torch(optimizer):
    network = resolve(parse_spec(TINY))
    model = training_memory(network, batch=4, optimizer=optimizer)
    real = torch_holds(network, optimizer, batch=4)
    assert model.weight_bytes == real["weights"]
    assert model.gradient_bytes == real["gradients"]
    # Adam also keeps a 4-byte step counter per parameter tensor, which the model leaves out.
    assert model.optimizer_bytes == real["optimizer"] - real["step_counters"]
    # Stated tolerance for saved activations: 0.5% (torch 2.14 matches exactly; the margin is for
    # small bookkeeping tensors another torch version may add).
    assert model.saved_bytes == pytest.approx(real["saved"], rel=0.005)


def test_frozen_prefix_matches_torch():
    network = resolve(parse_spec(TINY))
    model = training_memory(network, batch=2, optimizer="sgd-momentum", freeze_until="res")
    real = torch_holds(network, "sgd-momentum", batch=2, freeze_until="res")
    assert not model.blocks["res"].trainable and model.blocks["mb"].trainable
    assert model.blocks["stem"].gradient_bytes == 0 and model.blocks["stem"].saved_bytes == 0
    assert model.gradient_bytes == real["gradients"]
    assert model.optimizer_bytes == real["optimizer"]
    assert model.saved_bytes == pytest.approx(real["saved"], rel=0.005)
    assert model.saved_bytes < training_memory(network, batch=2).saved_bytes


def test_analyze_training_memory_through_the_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from scalelab.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["analyze", "resnet18", "-r", "32", "--mode", "train", "--optimizer", "adam",
                                 "--freeze-until", "layer1.1", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["training_memory"]
    # resnet18: 11,689,512 parameters (torchvision); frozen: stem conv 64*3*7*7 + bn 128, layer1 = two
    # basic blocks of two 3x3 64->64 convs + bn: 2 * 2 * (36,864 + 128) = 147,968 -> 157,504 frozen.
    assert data["weight_bytes"] == 11_689_512 * 4
    assert data["gradient_bytes"] == (11_689_512 - 157_504) * 4
    assert data["optimizer_bytes"] == 2 * data["gradient_bytes"] and data["optimizer"] == "adam"
    bad = runner.invoke(app, ["analyze", "resnet18", "--mode", "train", "--freeze-until", "layer9"])
    assert bad.exit_code == 2 and "no block named 'layer9'" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["analyze", "resnet18", "--mode", "fly"])
    assert bad.exit_code == 2 and "--mode: expected infer or train" in bad.output
