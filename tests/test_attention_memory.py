"""Inference memory of attention: what scaled dot-product attention holds while it runs, against the
probe, which runs the operator as its parts in inference mode (the math kernel's scaled q and k^T,
scores, probabilities and layout copies; a fused kernel's output and log-sum-exp)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scalelab import analyze
from scalelab.analysis.block_memory import block_peak
from scalelab.analysis.memory import inference_memory
from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError

torch = pytest.importorskip("torch")

#: heads, tokens, head width (q, k and v of one width, as self-attention cuts them)
SHAPES = [(3, 5, 4), (2, 7, 3), (1, 5, 4), (4, 1, 8), (3, 6, 2)]


def _probe(batch, h, n, e, pieces, causal=False, backend="MATH"):
    """Bytes the probe sees alive at once while attention runs, its inputs apart."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scalelab.analysis.memory_probe import dispatch_peak

    def run():
        if pieces:  # timm's layout: the qkv projection's output, heads cut from each token
            q, k, v = torch.randn(batch, n, 3, h, e).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = (torch.randn(batch, h, n, e) for _ in range(3))
        with sdpa_kernel(getattr(SDPBackend, backend)):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    return dispatch_peak(run) - 4 * 3 * batch * h * n * e


@pytest.mark.parametrize("h, n, e", SHAPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_pieces_cut_head_major_are_copied_for_v_only(batch, h, n, e):
    """q, k, v unbound from a (3, heads, N, d) tensor: the scaled q and k^T are written head-major
    and fold by a view; v, a piece, is copied where the batch and the heads are both over 1."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scalelab.analysis.memory_probe import dispatch_peak

    def run():
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(*torch.randn(batch, 3, h, n, e).unbind(1))

    q = h * n * e
    scores = h * n * n
    per_sample = max(2 * q + scores, q + 2 * scores, q + scores + q * (batch > 1 and h > 1) + q)
    model = block_peak(L.Attention(), [(h, n, e)] * 3, batch, 4, layout="head-major")[1]
    assert dispatch_peak(run) - 4 * 3 * batch * q == model == 4 * batch * per_sample


def _model(batch, h, n, e, pieces, causal=False, kernel="math"):
    return block_peak(L.Attention(causal), [(h, n, e)] * 3, batch, 4, kernel, "token-major" if pieces else "own")[1]


@pytest.mark.parametrize("pieces", [False, True], ids=["own", "pieces"])
@pytest.mark.parametrize("h, n, e", SHAPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_the_math_kernel_holds_the_scores_and_the_probabilities(batch, h, n, e, pieces):
    """By hand, per sample: the scaled q (h n e) lives throughout; with it the scaled k^T and the
    scores (h n n), then the scores and the probabilities, then the probabilities and the output.
    Pieces of one qkv tensor, with the batch and the heads both over 1, are copied to fold them into
    one batch axis: the scaled q (when n > 1) and k^T at the first product, v at the second."""
    q = k = v = out = h * n * e
    scores = h * n * n
    folds = pieces and batch > 1 and h > 1
    first = q + k + scores + (q * (n > 1) + k) * folds
    per_sample = max(first, q + 2 * scores, q + scores + v * folds + out)
    assert _probe(batch, h, n, e, pieces) == _model(batch, h, n, e, pieces) == 4 * batch * per_sample


@pytest.mark.parametrize("h, n, e", SHAPES[:3])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_causal_mask_is_one_tensor_for_the_batch(batch, h, n, e):
    plain = _model(batch, h, n, e, True)
    assert _probe(batch, h, n, e, True, causal=True) == _model(batch, h, n, e, True, causal=True) == plain + 4 * n * n


@pytest.mark.parametrize("pieces", [False, True], ids=["own", "pieces"])
@pytest.mark.parametrize("h, n, e", SHAPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_a_fused_kernel_writes_its_output_and_log_sum_exp(batch, h, n, e, pieces):
    """Flash attention (CPU): the output (h n e per sample) and one fp32 log-sum-exp per query and
    head, causal or not; no score matrix and no copies."""
    fused = 4 * batch * (h * n * e + h * n)
    assert _probe(batch, h, n, e, pieces, backend="FLASH_ATTENTION") == _model(batch, h, n, e, pieces, kernel="fused") == fused
    assert _probe(batch, h, n, e, pieces, causal=True, backend="FLASH_ATTENTION") == fused
    layout = "token-major" if pieces else "own"
    assert block_peak(L.Attention(), [(h, n, e)] * 3, batch, 2, "fused", layout)[1] == 2 * batch * (h * n * e + 2 * h * n)


def _zoo_against_the_probe(name, batch):
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = analyze(name).network
    model = inference_memory(network, batch=batch)
    module = build_module(network)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(module, network.input_shape, batch)
    assert model.peak_bytes == inference_peak(module, network.input_shape, batch)
    return network, model


@pytest.mark.parametrize("batch", [1, 3])
def test_deit_tiny_inference_memory_equals_the_probe(batch):
    """DeiT-Ti at 224: 197 tokens, 3 heads of 64. The first block's peak is its attention's softmax:
    the block's input (held by the residual), the layer norm's output (the input of the projections'
    sequence, alive until it returns), the qkv projection's output, the scaled q and two score
    matrices, and the network input held by the caller."""
    network, model = _zoo_against_the_probe("deit_tiny_patch16_224", batch)
    n, c, h = 197, 192, 3
    attention = c * n + c * n + 3 * c * n + c * n + 2 * h * n * n
    assert model.peak_block == "encoder.0"
    assert model.peak_bytes == 4 * batch * (3 * 224 * 224 + attention)
    assert model.attention_kernel == "math"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t"])
@pytest.mark.parametrize("batch", [1, 3])
def test_vit_b_16_and_swin_t_inference_memory_equal_the_probe(name, batch):
    _zoo_against_the_probe(name, batch)


@pytest.mark.parametrize("batch", [1, 3])
def test_deit_tiny_under_a_fused_kernel_equals_the_probe_with_flash_forced(batch, monkeypatch):
    """The built module runs the math kernel; forced to flash attention, the probe sees the fused
    figure: no score matrix, so the first block's peak moves to its MLP."""
    from torch.nn.attention import SDPBackend

    import scalelab.blocks.layers.attention_torch as attention_torch
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    monkeypatch.setattr(attention_torch, "SDPBackend", SimpleNamespace(MATH=SDPBackend.FLASH_ATTENTION))
    network = analyze("deit_tiny_patch16_224").network
    model = inference_memory(network, batch=batch, attention_kernel="fused")
    module = build_module(network)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(module, network.input_shape, batch)
    assert model.peak_bytes == inference_peak(module, network.input_shape, batch) < \
        inference_memory(network, batch=batch).peak_bytes
    assert model.attention_kernel == "fused"


def test_networks_without_attention_state_no_kernel_and_an_unknown_one_is_refused():
    assert inference_memory(analyze("resnet18").network).attention_kernel is None
    with pytest.raises(ScalelabError, match="unknown attention kernel 'flash'; one of math, fused"):
        inference_memory(analyze("resnet18").network, attention_kernel="flash")
