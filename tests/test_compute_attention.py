"""``attention`` (scaled dot-product attention, the math kernel) face by face against its module,
with each of q, k, v needing a gradient or not, causal or not; MACs against FlopCounterMode with
grad on and ``sdpa_kernel(SDPBackend.MATH)`` (the reference figure); a ViT-style spec (timm's
attention: a linear qkv, reshape, permute, unbind, attention, permute, reshape, a linear projection)
against the same model written in plain torch: outputs, parameters, MACs and one real training step."""

import itertools

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

SHAPES = {
    "tokens": [(5, 4), (7, 4), (7, 6)],  # (L, E), (S, E), (S, Ev): no head axis
    "heads": [(2, 5, 4), (2, 7, 4), (2, 7, 6)],
    "two-leading": [(2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)],
}
NEEDS = [g for g in itertools.product([True, False], repeat=3) if any(g)]


@pytest.mark.parametrize("grads", NEEDS, ids=lambda g: "".join("qkv"[i] for i in range(3) if g[i]))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_attention_face_by_face(name, causal, grads):
    check_faces(L.Attention(causal=causal), SHAPES[name], False, grads)


def test_a_given_scale_counts_and_runs_as_torch():
    torch = pytest.importorskip("torch")
    check_faces(L.Attention(scale=0.3), SHAPES["heads"], False, True)
    q, k, v = (torch.randn(2, *s) for s in SHAPES["heads"])
    by_hand = torch.softmax(q @ k.transpose(-1, -2) * 0.3, dim=-1) @ v
    torch.testing.assert_close(L.Attention(scale=0.3).torch_module()([q, k, v]), by_hand)
    causal = (q @ k.transpose(-1, -2) / 2).masked_fill(torch.ones(5, 7).triu(1).bool(), float("-inf"))
    torch.testing.assert_close(L.Attention(causal=True).torch_module()([q, k, v]), torch.softmax(causal, -1) @ v)


def test_attention_counts_by_hand():
    q, k, v = SHAPES["heads"]  # 2 heads, L 5, S 7, E 4, Ev 6
    layer = L.Attention(causal=True)
    cost = layer.cost([q, k, v], (2, 5, 6))
    assert cost.macs == 2 * 5 * 7 * (4 + 6)
    # the two scalings, the mask's addition and the softmax (5 per score), per head
    assert cost.ops == 2 * (5 * 4 + 7 * 4 + 5 * 7 + 5 * 5 * 7)
    # v's gradient only: probs^T @ dout; q's: dout @ v^T, then dscores @ k
    assert layer.grad_macs([q, k, v], (False, False, True)).grad_input == 2 * 7 * 5 * 6
    assert layer.grad_macs([q, k, v], (True, False, False)).grad_input == 2 * (5 * 6 * 7 + 5 * 7 * 4)
    # all three: the probabilities, v, the scaled k^T and the scaled q
    saved = layer.saved([q, k, v], (2, 5, 6), False, True, "cpu")
    assert saved == L.Saved(inputs=(False, False, True), per_sample_elements=2 * (5 * 7 + 7 * 4 + 5 * 4))


@pytest.mark.parametrize("shapes, message", [
    ([(5, 4), (7, 4)], "attention takes three inputs q, k, v of rank 2 or more"),
    ([(4,), (7, 4), (7, 6)], "of rank 2 or more"),
    ([(2, 5, 4), (3, 7, 4), (3, 7, 6)], "attention of q 2x5x4, k 3x7x4, v 3x7x6: their leading axes differ"),
    ([(5, 4), (7, 3), (7, 6)], "q's width 4 and k's width 3 differ"),
    ([(5, 4), (7, 4), (6, 6)], "7 keys and 6 values"),
])
def test_attention_refuses_shapes_torch_refuses(shapes, message):
    with pytest.raises(L.ShapeError, match=message):
        L.Attention().out_shape(shapes)


def test_the_kind_takes_three_inputs():
    text = ("name: t\ninput: {channels: 3, resolution: 4}\nblocks:\n"
            "  - {name: a, kind: reshape, shape: [3, 16]}\n  - {name: b, kind: linear, out: 3, flatten: false}\n"
            "  - {name: m, kind: attention, from: [a, b]}\n")
    with pytest.raises(ScalelabError, match="attention takes three inputs"):
        resolve(parse_spec(text))


def test_the_registry_example():
    from compute_examples import SEVERAL

    layer, shapes = SEVERAL["attention"]
    check_faces(layer, shapes, False, True)


def test_attention_is_a_matrix_product_to_a_device():
    assert L.latency_of(L.Attention()) == (L.LatencyClass.LINEAR, None)


# timm's Attention on the tokens of a patch embedding: 2 heads of width 8 over 16 tokens
VIT = """
name: vit-attention
input: {channels: 3, resolution: 16}
blocks:
  - {name: patch, kind: conv, out: 16, kernel: 4, stride: 4, padding: valid, norm: none, activation: none, bias: true}
  - {name: flat, kind: reshape, shape: [16, -1]}
  - {name: tokens, kind: permute, dims: [1, 0]}
  - {name: qkv, kind: linear, out: 48, flatten: false}
  - {name: heads, kind: reshape, shape: [16, 3, 2, 8]}
  - {name: qkv_first, kind: permute, dims: [1, 2, 0, 3]}
  - {name: u, kind: unbind, dim: 0}
  - {name: attn, kind: attention, from: [u.0, u.1, u.2]CAUSAL}
  - {name: tokens_first, kind: permute, dims: [1, 0, 2]}
  - {name: packed, kind: contiguous}
  - {name: merged, kind: reshape, shape: [16, 16]}
  - {name: proj, kind: linear, out: 16, flatten: false}
"""


def _vit(causal=False):
    return VIT.replace("CAUSAL", ", causal: true" if causal else "")


def _plain_torch(causal):
    """The same model in plain torch, as timm writes it."""
    import torch.nn.functional as F
    from torch import nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(3, 16, 4, stride=4)
            self.qkv, self.proj = nn.Linear(16, 48), nn.Linear(16, 16)

        def forward(self, x):
            x = self.patch(x).flatten(2).transpose(1, 2)
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
            x = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return self.proj(x.transpose(1, 2).reshape(b, n, c))

    return Plain()


def _saved_bytes(module, x):
    """Bytes autograd keeps over one forward (distinct storages, parameters excluded)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).sum().backward()
    return sum(saved.values())


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_a_vit_attention_spec_equals_plain_torch(causal):
    torch = pytest.importorskip("torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.analysis.memory import training_memory
    from scalelab.analysis.memory_probe import training_step
    from scalelab.api import analyze
    from scalelab.build import build_module

    network = resolve(parse_spec(_vit(causal)))
    assert network.blocks["attn"].out_shape == (2, 16, 8) and network.blocks["proj"].out_shape == (16, 16)
    plain = _plain_torch(causal)
    built = build_module(network)
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in built.parameters())
    built.load_state_dict(dict(zip(built.state_dict(), plain.state_dict().values())))
    x = torch.randn(3, 3, 16, 16)
    with sdpa_kernel(SDPBackend.MATH):  # the reference figure: grad on, the math kernel
        counter = FlopCounterMode(display=False)
        with counter:
            out = plain(x)
        torch.testing.assert_close(built(x), out)
        result = analyze(parse_spec(_vit(causal)))
        assert result.total.params == sum(p.numel() for p in plain.parameters())
        assert 2 * result.total.macs == counter.get_total_flops() // 3
        saved = training_memory(network, batch=3).saved_bytes
        assert saved == _saved_bytes(plain, x) == training_step(network, batch=3)["saved_bytes"]
    # by hand: patch 48*16*16, qkv 16*16*48, scores and mixing 2*16*16*(8+8), proj 16*16*16
    assert result.total.macs == 48 * 16 * 16 + 16 * 16 * 48 + 2 * 16 * 16 * 16 + 16 * 16 * 16


def _attending(causal=False, mask=False):
    """Attention over the rows of each channel: q, k and v from three convolutions of the input."""
    from torch import nn

    class Attending(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
            self.v = nn.Conv2d(3, 4, 3, stride=(1, 2), padding=1)

        def forward(self, x):
            import torch.nn.functional as F

            q, k, v = self.q(x), self.k(x), self.v(x)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=(q[0, 0] > 0) if mask else None,
                                                  is_causal=causal, scale=0.5)

    return Attending().eval()


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_a_module_calling_scaled_dot_product_attention_imports_exactly(causal, tmp_path, run_fresh, count_params,
                                                                        reference_macs):
    torch = pytest.importorskip("torch")
    from import_checks import assert_reanalysed_without_torch, assert_rebuilt_module_computes_the_same

    from scalelab.api import analyze
    from scalelab.importer import import_module

    model = _attending(causal)
    imported = import_module(model, (3, 8, 8), name="attending")
    block = next(b for b in imported.spec.blocks if b.kind == "attention")
    assert (block.causal, block.scale) == (causal, 0.5)
    result = analyze(imported.spec)
    macs = reference_macs(model, torch.zeros(1, 3, 8, 8))
    # by hand: q 4*27*64, k 4*3*64, v 4*27*32; attention 4 heads (channels) x L 8 x S 8 x (E 8 + Ev 4)
    assert result.total.macs == macs == 4 * 27 * 64 + 4 * 3 * 64 + 4 * 27 * 32 + 4 * 8 * 8 * (8 + 4)
    assert result.total.params == count_params(model)
    assert_reanalysed_without_torch(imported, tmp_path, run_fresh, result.total.params, macs)
    assert_rebuilt_module_computes_the_same(imported, model, torch.randn(2, 3, 8, 8))


def test_attention_with_a_boolean_mask_is_refused_by_name():
    pytest.importorskip("torch")
    from scalelab.importer import import_module

    with pytest.raises(ScalelabError, match=r"aten.scaled_dot_product_attention.default x1 \(attention with a boolean mask"):
        import_module(_attending(mask=True), (3, 8, 8), name="masked")


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_a_vit_attention_specs_inference_memory_equals_what_torch_holds(causal):
    pytest.importorskip("torch")
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(_vit(causal)))
    model = inference_memory(network, batch=3)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(build_module(network), network.input_shape, 3)
    assert model.peak_bytes == inference_peak(build_module(network), network.input_shape, 3)
