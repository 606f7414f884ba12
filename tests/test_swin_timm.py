"""swin_block's timm form against timm's SwinTransformerBlock (its weights loaded): outputs,
parameters, MACs by FlopCounterMode, other ops worked out from timm's statements; timm's window
attention (the mask read from its buffer) eager and under a fused kernel, and a small Swin in timm's
form block by block, against the memory probe."""

from __future__ import annotations

import pytest
from test_swin import SMALL, load_into

from scalelab.blocks import KINDS
from scalelab.blocks import layers as L
from scalelab.graph import resolve
from scalelab.spec import parse_spec


def timm_block_ops_by_hand(h: int, w: int, c: int, heads: int, window: int, shifted: bool,
                           hidden: int) -> tuple[int, int]:
    """(other ops per sample, weight ops per pass) of one timm SwinTransformerBlock on an h x w map of
    c channels (window no larger than the map), statement by statement from its ``_attn`` and
    ``forward``, by the convention's per-element counts (layer norm 5, GELU 5, softmax 5 a score,
    anything else 1). The mask is timm's buffer: no weight ops."""
    hp, wp = -(-h // window) * window, -(-w // window) * window
    t, tp, n = h * w, hp * wp, window * window
    windows, across = tp // n, wp // window > 1 and window > 1  # .contiguous() after the permute copies
    scores = windows * heads * n * n
    attention = (t * c * shifted                      # torch.roll by -shift, before the pad
                 + tp * c                             # F.pad (a copy, padding or not)
                 + tp * c * across                    # window_partition's .contiguous()
                 + tp * 3 * c + tp * c                # the qkv linear's bias; q * self.scale
                 + scores + scores * shifted          # + the relative position bias; + mask
                 + 5 * scores                         # softmax
                 + tp * c * (heads > 1 and n > 1)     # x.transpose(1, 2).reshape(...): a view for one token
                 + tp * c                             # the proj linear's bias
                 + tp * c * across                    # window_reverse's .contiguous()
                 + t * c * (tp > t)                   # shifted_x[:, :H, :W, :].contiguous()
                 + t * c * shifted)                   # torch.roll back
    block = 5 * t * c + attention + t * c + 5 * t * c + t * hidden + 5 * t * hidden + t * c + t * c
    return block, 2 * heads * n * n                  # the table's gather and its permute's copy


@pytest.mark.parametrize("shape, window, shift", [
    ((6, 6, 8), 3, 0), ((6, 6, 8), 3, 1), ((5, 7, 8), 3, 1), ((4, 9, 8), 3, 2), ((4, 8, 8), 4, 2),
    ((2, 2, 8), 3, 1), ((3, 3, 8), 7, 3), ((1, 1, 8), 2, 1),
])
def test_swin_block_of_timms_form_computes_as_timm(shape, window, shift, reference_macs, count_params):
    """Rolled before padding (5x7), shifted on one axis only (4x8: rows one window high), a map
    within one window (2x2, 3x3, 1x1: timm shrinks the window to the map and does not shift), each as
    timm's SwinTransformerBlock (2 heads of 4) with its weights: outputs, parameters, MACs, other ops."""
    import torch
    timm_swin = pytest.importorskip("timm.models.swin_transformer")

    from scalelab.build import to_torch

    torch.manual_seed(0)
    h, w, c = shape
    theirs = timm_swin.SwinTransformerBlock(c, (h, w), num_heads=2, window_size=window, shift_size=shift).eval()
    block = KINDS["swin_block"].model_validate({"kind": "swin_block", "window": window, "shift": shift, "head_dim": 4,
                                                "form": "timm"})
    tree = block.layers(shape)
    ours = to_torch(tree).eval()
    load_into(ours, theirs)
    assert not [k for k in ours.state_dict() if k.endswith(("relative_position_index", "attn_mask"))]  # as timm's
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)
    costs = L.walk(tree, shape).costs
    assert sum(c.params for c in costs) == count_params(theirs)
    assert 2 * sum(c.macs for c in costs) == reference_macs(theirs, x)  # MACs of the batch of 2
    win = theirs.window_size[0]
    by_hand = timm_block_ops_by_hand(h, w, c, 2, win, any(theirs.shift_size), 4 * c)
    assert (sum(c.ops for c in costs), sum(c.weight_ops for c in costs)) == by_hand


def test_timms_form_refuses_an_oblong_window():
    """A map one window high and wider than the window (2x9 in windows of 3): timm attends in 2x3 windows."""
    block = KINDS["swin_block"].model_validate({"kind": "swin_block", "window": 3, "head_dim": 4, "form": "timm"})
    with pytest.raises(L.ShapeError, match="shrinks the window of 3 to 2x3"):
        block.layers((2, 9, 8))
    assert L.walk(KINDS["swin_block"].model_validate({"kind": "swin_block", "window": 3, "head_dim": 4}).layers(
        (2, 9, 8)), (2, 9, 8)).out == (2, 9, 8)  # torchvision's form pads it to one window high


@pytest.mark.parametrize("batch", [1, 2])
def test_inference_peaks_of_timms_form_equal_the_probe(batch):
    """The small Swin in timm's form: the mask is the module's buffer, built with it, so no block
    holds its construction; every block's peak as torch's allocations show it."""
    from scalelab.analysis.memory import inference_memory
    from scalelab.analysis.memory_probe import block_peaks
    from scalelab.build import build_module

    network = resolve(parse_spec(SMALL.replace("head_dim: 8}", "head_dim: 8, form: timm}")))
    assert {b.block.form for b in network.blocks.values() if b.block.kind == "swin_block"} == {"timm"}
    model = {n: b.alive_bytes for n, b in inference_memory(network, batch=batch).blocks.items()}
    real = block_peaks(build_module(network), network.input_shape, batch)
    assert model == real


def _timm_fused_window_attention(self, x):
    """timm's fused path (``WindowAttention.forward`` with ``fused_attn``): the gathered bias plus the
    buffer mask expanded to every sample's windows and heads, the additive mask of
    scaled_dot_product_attention, flash attention forced."""
    import torch
    from torch.nn import attention

    batch, windows, n, c3 = x.shape
    c, heads = c3 // 3, self.heads
    q, k, v = x.reshape(batch * windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    mask = self.attn_mask.view(1, windows, 1, n, n).expand(batch, -1, heads, -1, -1)
    attn_mask = self.bias() + mask.reshape(-1, heads, n, n)
    with attention.sdpa_kernel(attention.SDPBackend.FLASH_ATTENTION):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out.transpose(1, 2).reshape(batch, windows, n, c)


@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_timms_window_attention_by_hand_eager_and_fused(batch, heads, monkeypatch):
    """4 windows of 9 tokens, shifted, 8 channels a head, timm's buffer mask: no weight ops for it,
    and no construction in a pass. By hand, fused: the gathered bias and its copy (2 heads 81), then
    the mask copied to every sample's windows and heads (a view for one sample) and the sum with the
    bias, then the sum beside the kernel's output and log-sum-exp."""
    import torch

    from scalelab.analysis.block_memory import block_peak
    from scalelab.analysis.memory_probe import dispatch_peak
    from scalelab.blocks.layers import windows_torch

    layer = L.WindowAttention(heads, 3, (1, 1), (2, 2), form="timm")
    c, windows, tokens = 8 * heads, 4, 9
    shape = (windows, tokens, 3 * c)
    assert layer.cost(shape, layer.out_shape(shape)).weight_ops == 2 * heads * tokens ** 2
    module = layer.torch_module().eval()
    run = lambda: module(torch.randn(batch, *shape))  # noqa: E731
    eager = dispatch_peak(run, module)
    assert eager == 4 * (batch * (L.elements(shape) + layer.inner_peak(shape, layer.out_shape(shape)).peak_elems)
                         + heads * tokens ** 2)
    monkeypatch.setattr(windows_torch.WindowAttention, "forward", _timm_fused_window_attention)
    seen = dispatch_peak(run, module) - 4 * batch * L.elements(shape)  # the input apart
    bias, out = heads * tokens ** 2, batch * (windows * tokens * c + windows * heads * tokens)
    scores, copied = batch * windows * heads * tokens ** 2, batch > 1
    assert seen == 4 * max(2 * bias, bias + scores * copied + scores, scores + out)
    assert block_peak(layer, shape, batch, 4, "fused")[1] == seen
