"""Inference memory under a fused attention kernel, against the probe with the kernel forced: the
output's layout (a fused kernel writes it as q lies, so from token-major pieces the heads go back
beside each other by a view), and Swin's window attention run by scaled_dot_product_attention with
its position bias and shifted-window mask as the additive mask (flash attention takes a float mask
on CPU); and where torch cannot run a fused kernel (q of other than 3 or 4 dims with the batch, as
MobileViT's 5-d q, or v of another width) the math kernel's figures, which the notes and JSON name."""

from __future__ import annotations

import pytest

from scalelab.analysis.block_memory import block_peak
from scalelab.analysis.memory import inference_memory
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import parse_spec

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")
attention = pytest.importorskip("torch.nn.attention")


def _flash_runs() -> bool:
    """Whether this torch has the CPU flash kernel for a 4-d float mask (else the tests skip)."""
    q = torch.randn(1, 2, 3, 4)
    try:
        with attention.sdpa_kernel(attention.SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, q, q, attn_mask=torch.zeros(1, 2, 3, 3))
    except RuntimeError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _flash_runs(), reason="no CPU flash attention kernel with a float mask")

#: heads, tokens, head width
SHAPES = [(3, 5, 4), (2, 7, 3), (4, 1, 8)]


def _probe_heads_back(batch, h, n, e, pieces, backend):
    """Bytes the probe sees alive at once from attention to the heads put back beside each other
    (``transpose(1, 2).contiguous()``), the input (a qkv projection's output, or q, k, v) apart."""
    from scalelab.analysis.memory_probe import dispatch_peak

    def run():
        if pieces:
            q, k, v = torch.randn(batch, n, 3, h, e).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = (torch.randn(batch, h, n, e) for _ in range(3))
        with attention.sdpa_kernel(getattr(attention.SDPBackend, backend)):
            out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).contiguous()

    return dispatch_peak(run) - 4 * 3 * batch * h * n * e


@pytest.mark.parametrize("h, n, e", SHAPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_from_token_major_pieces_the_fused_output_moves_its_heads_by_a_view(batch, h, n, e):
    """q, k, v cut from a qkv projection as the transformer kinds cut them: flash attention's output
    lies token-major, so the copy after the transpose is the tensor itself. By hand, per sample: the
    output and one fp32 log-sum-exp per query and head; the math kernel's head-major output is
    copied (the output and its copy alive at once, beside its own phases)."""
    layers = L.seq(L.Permute((1, 2, 0, 3)), L.Unpack(L.Unbind(0), L.Attention()), L.Permute((1, 0, 2)), L.Contiguous())
    fused = block_peak(layers, (n, 3, h, e), batch, 4, "fused", "token-major")[1]
    assert _probe_heads_back(batch, h, n, e, True, "FLASH_ATTENTION") == fused == 4 * batch * (h * n * e + h * n)
    math = block_peak(layers, (n, 3, h, e), batch, 4, "math", "token-major")[1]
    assert _probe_heads_back(batch, h, n, e, True, "MATH") == math >= 4 * batch * 2 * h * n * e


@pytest.mark.parametrize("h, n, e", SHAPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_from_tensors_of_their_own_the_fused_output_is_head_major_and_copied(batch, h, n, e):
    """q, k, v contiguous (heads, tokens, width): the fused output lies as q does, head-major, and the
    heads go back beside each other by a copy (a view where one of them is 1, where the kinds write
    no copy): per sample the output with its log-sum-exp, then the output and its copy."""
    out = h * n * e
    copy = out if h > 1 and n > 1 else 0
    layers = L.seq(L.Attention(), L.Permute((1, 0, 2)), L.Contiguous() if copy else None)
    fused = block_peak(layers, [(h, n, e)] * 3, batch, 4, "fused", "own")[1]
    assert _probe_heads_back(batch, h, n, e, False, "FLASH_ATTENTION") == fused == 4 * batch * max(out + h * n, out + copy)


def _fused_window_attention(self, x):
    """Swin's window attention between its projections as timm's fused path runs it: the gathered
    position bias (and the shifted windows' mask, built as torchvision builds it, expanded to every
    sample's windows and heads) as the additive mask of scaled_dot_product_attention, flash forced."""
    from scalelab.blocks.layers.windows_torch import shift_mask

    attn_mask = self.bias()
    batch, windows, n, c3 = x.shape
    c, heads = c3 // 3, self.heads
    q, k, v = x.reshape(batch * windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if sum(self.shift) > 0:
        mask = shift_mask(x, self.window, self.shift, self.grid)
        mask = mask.view(1, windows, 1, n, n).expand(batch, -1, heads, -1, -1)
        attn_mask = attn_mask + mask.reshape(-1, heads, n, n)
    with attention.sdpa_kernel(attention.SDPBackend.FLASH_ATTENTION):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out.transpose(1, 2).reshape(batch, windows, n, c)


@pytest.fixture
def fused_windows(monkeypatch):
    from scalelab.blocks.layers import windows_torch

    monkeypatch.setattr(windows_torch.WindowAttention, "forward", _fused_window_attention)


@pytest.mark.parametrize("shift", [(0, 0), (1, 1)], ids=["plain", "shifted"])
@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_window_attention_under_a_fused_kernel_by_hand(batch, heads, shift, fused_windows):
    """One window attention layer on 4 windows of 9 tokens, 8 channels per head. By hand: the bias
    (heads x 81, for the batch) is gathered and copied (twice that at once); unshifted, the kernel
    writes its output (4 x 9 x C per sample) and log-sum-exp (4 x heads x 9, fp32) beside the bias.
    Shifted: the mask (4 x 81) is built beside the bias (the mask, its two fills and a bool compare
    at most), then copied to every sample's windows and heads (4 x heads x 81 per sample; a view for
    one sample) and added to the bias, which the sum replaces; the sum and the mask live
    through the kernel."""
    from scalelab.analysis.memory_probe import dispatch_peak

    layer = L.WindowAttention(heads, 3, shift, (2, 2))
    c, windows, tokens = 8 * heads, 4, 9
    module = layer.torch_module().eval()
    run = lambda: module(torch.randn(batch, windows, tokens, 3 * c))  # noqa: E731
    seen = dispatch_peak(run, module) - 4 * batch * windows * tokens * 3 * c  # the input apart
    bias, out = heads * tokens ** 2, batch * (windows * tokens * c + windows * heads * tokens)
    scores, mask = batch * windows * heads * tokens ** 2, windows * tokens ** 2
    if shift == (0, 0):
        by_hand = 4 * max(2 * bias, bias + out)
    else:
        copied = batch > 1  # the expanded batch axis cannot join the windows' axis by a view
        by_hand = max(4 * (2 * bias), 4 * (bias + 3 * mask) + mask, 4 * (bias + mask + scores * copied + scores),
                      4 * (mask + scores + out))
    model = block_peak(layer, (windows, tokens, 3 * c), batch, 4, "fused")[1]
    assert seen == model == by_hand
    assert model < block_peak(layer, (windows, tokens, 3 * c), batch, 4, "math")[1]


SWIN = """
name: small_swin
input: {channels: 3, resolution: 40}
blocks:
  - {name: stem, kind: conv, out: 16, kernel: 4, stride: 4, padding: valid, bias: true, norm: none, activation: none}
  - {name: last, kind: permute, dims: [1, 2, 0]}
  - {name: stem_norm, kind: layer_norm, trailing: 1}
  - {stage: s1, repeat: 2, block: {kind: swin_block, window: 3, head_dim: 8}}
  - {name: merge, kind: patch_merging}
  - {stage: s2, repeat: 2, block: {kind: swin_block, window: 3, head_dim: 8}}
  - {name: head_norm, kind: layer_norm, trailing: 1}
  - {name: first, kind: permute, dims: [2, 0, 1]}
  - {name: avgpool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 2])
def test_a_small_swin_under_a_fused_kernel_equals_the_probe(batch, fused_windows):
    """Every block's peak (shifted and unshifted windows, 2 and 4 heads) and the network's, with
    window attention run by flash attention as above; the report states the kernel."""
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(SWIN))
    model = inference_memory(network, batch=batch, attention_kernel="fused")
    module = build_module(network)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(module, network.input_shape, batch)
    assert model.peak_bytes == inference_peak(module, network.input_shape, batch)
    math = inference_memory(network, batch=batch)
    assert all(model.blocks[n].alive_bytes < math.blocks[n].alive_bytes for n in ("s1.0", "s1.1", "s2.0", "s2.1"))
    assert (model.attention_kernel, math.attention_kernel) == ("fused", "math")


def _torch_runs_flash(q, k, v):
    """Whether torch runs scaled_dot_product_attention of per-sample shapes q, k, v (a batch of 2) by
    flash attention when it is forced (else "No available kernel")."""
    import warnings

    xs = [torch.randn(2, *s) for s in (q, k, v)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch says why it refuses; the refusal itself is the answer
        try:
            with attention.sdpa_kernel(attention.SDPBackend.FLASH_ATTENTION):
                F.scaled_dot_product_attention(*xs)
        except RuntimeError:
            return False
    return True


@pytest.mark.parametrize("q, k, v", [
    ((5, 4), (5, 4), (5, 4)), ((3, 5, 4), (3, 6, 4), (3, 6, 4)), ((4, 3, 5, 4), (4, 3, 5, 4), (4, 3, 5, 4)),
    ((2, 2, 3, 5, 4), (2, 2, 3, 5, 4), (2, 2, 3, 5, 4)), ((3, 5, 4), (3, 5, 4), (3, 5, 6)), ((5, 4), (5, 4), (5, 2)),
], ids=["2d", "3d", "4d", "5d", "3d_wide_v", "2d_narrow_v"])
def test_attention_is_fused_exactly_where_torch_runs_flash_attention(q, k, v):
    """The rule of ``fused_refusal`` against torch itself, flash attention forced on a batch of 2."""
    runs = L.Attention().fused_refusal([q, k, v]) is None
    assert runs == _torch_runs_flash(q, k, v)


@pytest.fixture
def fused_where_torch_can(monkeypatch):
    """The built attention modules run as torch does when a fused kernel is asked for: flash attention
    where torch can run it, else the math kernel (``sdpa_kernel`` given both). The built contiguous
    copy clones, as the math kernel's head-major output calls for; here it is ``.contiguous()``, as
    timm writes it, which returns a fused kernel's token-major output itself (a copy elsewhere)."""
    from types import SimpleNamespace

    from scalelab.blocks.layers import attention_torch, copies_torch

    backends = [attention.SDPBackend.FLASH_ATTENTION, attention.SDPBackend.MATH]
    monkeypatch.setattr(attention_torch, "SDPBackend", SimpleNamespace(MATH=backends))
    monkeypatch.setattr(copies_torch.Copy, "_contiguous", lambda self, x: x.contiguous())


#: a MobileViT block as mobilevit_xxs lays it out (2x2 patches, 4 heads, an MLP twice as wide), small,
#: then a ViT block on its map's tokens: q of 5 dims with the batch in the first, of 4 in the second
MIXED = """
name: small_mobilevit
input: {channels: 3, resolution: 8}
defaults: {norm: batchnorm, activation: silu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3}
  - name: vit
    kind: wrap
    join: concat
    body:
      - {kind: conv, out: 8, kernel: 3}
      - {kind: conv, out: 16, kernel: 1, norm: none, activation: none, bias: false}
      - {kind: unfold, patch: 2, body: [&t {kind: transformer, heads: 4, mlp_ratio: 2, activation: silu, norm_eps: 1.0e-5},
                                        {kind: layer_norm, trailing: 1}]}
      - {kind: conv, out: 8, kernel: 1}
  - {name: fusion, kind: conv, out: 16, kernel: 3}
  - {name: flat, kind: reshape, shape: [16, 64]}
  - {name: tokens, kind: permute, dims: [1, 0]}
  - {name: encoder, kind: transformer, heads: 4, mlp_ratio: 2, activation: silu, norm_eps: 1.0e-5}
  - {name: pool, kind: reduce, op: mean, dims: [0]}
  - {name: fc, kind: linear, out: 10}
"""


@pytest.mark.parametrize("batch", [1, 2])
def test_a_mobilevit_block_gets_the_math_figure_under_a_fused_request(batch, fused_where_torch_can):
    """Asked for a fused kernel, torch runs the MobileViT block's attention (q of 5 dims with the
    batch) by the math kernel and the ViT block's by flash attention: each block's peak equals the
    probe's, the MobileViT block's the math figure, the ViT block's below it, and the figures say
    which block runs the math kernel and why."""
    from scalelab.analysis.memory_probe import block_peaks, inference_peak
    from scalelab.build import build_module

    network = resolve(parse_spec(MIXED))
    model, math = (inference_memory(network, batch=batch, attention_kernel=k) for k in ("fused", "math"))
    module = build_module(network)
    assert {n: b.alive_bytes for n, b in model.blocks.items()} == block_peaks(module, network.input_shape, batch)
    assert model.peak_bytes == inference_peak(module, network.input_shape, batch)
    assert model.blocks["vit"].inner_peak_bytes == math.blocks["vit"].inner_peak_bytes
    assert model.blocks["encoder"].inner_peak_bytes < math.blocks["encoder"].inner_peak_bytes
    assert model.math_blocks == {"vit": "torch's fused kernels take q of 3 or 4 dims with the batch, not 5"}
    assert math.math_blocks == {}


def test_a_mobilevit_block_keeps_the_math_kernels_tensors_in_training(fused_where_torch_can):
    """One real training step with a fused kernel asked for saves what the model says: the math
    kernel's tensors for the MobileViT block, flash attention's for the ViT block."""
    from scalelab.analysis.memory import training_memory
    from scalelab.analysis.memory_probe import training_step

    network = resolve(parse_spec(MIXED))
    model = training_memory(network, batch=2, attention_kernel="fused")
    assert model.saved_bytes == training_step(network, "sgd", batch=2)["saved_bytes"]
    math = training_memory(network, batch=2)
    assert model.blocks["vit"].saved_bytes == math.blocks["vit"].saved_bytes
    assert model.blocks["encoder"].saved_bytes < math.blocks["encoder"].saved_bytes
    assert model.math_blocks == {"vit": "torch's fused kernels take q of 3 or 4 dims with the batch, not 5"}


def test_the_report_says_which_blocks_run_the_math_kernel(tmp_path):
    """The memory notes and the JSON beside the kernel they state: the MobileViT block, and why."""
    import json

    from cli_helpers import invoke

    spec = tmp_path / "mixed.yaml"
    spec.write_text(MIXED)
    why = "torch's fused kernels take q of 3 or 4 dims with the batch, not 5"
    text = invoke("analyze", str(spec), "--mode", "train", "--attention-kernel", "fused", "-f", "markdown")
    assert text.exit_code == 0, text.output
    said = " ".join(text.output.split())
    assert said.count(f"fused requested, the math kernel for block vit: {why}.") == 2  # inference and training
    report = json.loads(invoke("analyze", str(spec), "--mode", "train", "--attention-kernel", "fused", "-f", "json").output)
    assert report["memory"]["attention_math_blocks"] == report["training_memory"]["attention_math_blocks"] == {"vit": why}
    math = json.loads(invoke("analyze", str(spec), "--mode", "train", "-f", "json").output)
    assert math["memory"]["attention_math_blocks"] == math["training_memory"]["attention_math_blocks"] == {}
    assert "fused requested" not in invoke("analyze", str(spec), "--mode", "train", "-f", "markdown").output


def test_mobilevit_xxs_runs_the_math_kernel_as_the_readme_says():
    """The zoo's mobilevit_xxs asked for a fused kernel: every MobileViT block runs the math kernel,
    so the figures equal the math kernel's, and the README quotes the note."""
    from pathlib import Path

    from scalelab import analyze
    from scalelab.analysis.memory import fallback_note, training_memory

    network = analyze("mobilevit_xxs").network
    fused = inference_memory(network, batch=2, attention_kernel="fused")
    assert list(fused.math_blocks) == ["stage2_vit", "stage3_vit", "stage4_vit"]
    assert fused.peak_bytes == inference_memory(network, batch=2).peak_bytes
    assert training_memory(network, attention_kernel="fused").saved_bytes == training_memory(network).saved_bytes
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert f'("{fallback_note(fused.math_blocks).removeprefix("; ")}")' in readme
