"""The two layers of Swin's channels-last maps (Liu et al. 2021) that no composition of other layers
states, every face: multi-head self-attention inside windows with a learned relative position bias
and the shifted windows' mask, and the 2x2 neighbour concatenation of patch merging. Their torch
modules are in ``windows_torch`` and compute as torchvision's ``shifted_window_attention`` and
``_patch_merging_pad`` do.

The window partition, cyclic shift, padding and the qkv and output projections around the attention
are the existing pad, roll, reshape, permute, contiguous and linear layers (``kinds/swin_block``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape,
    no_macs, register,
)
from scalelab.blocks.layers.attention import RUN, Phase, lifted_peak

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: ops of the softmax per score, as the softmax kind and attention count it
SOFTMAX_OPS = 5


@register
@dataclass(frozen=True)
class WindowAttention(Primitive):
    """Self-attention of ``heads`` heads inside each window of ``window x window`` tokens, on the qkv
    projection of the partitioned map: (windows, N, 3C) -> (windows, N, C), N = window^2, windows =
    grid[0] * grid[1] in row-major order. Per window and head (head width d = C / heads):

        scores = (q * s) @ k^T + B [+ M]          N x d x N multiply-accumulates
        out    = softmax(scores) @ v              N x N x d multiply-accumulates

    s is ``scale``, d^-1/2 unless given (MaxViT's C^-1/2, which torchvision applies to k: the same scores).

    B is gathered from a learned table of (2 window - 1)^2 x heads entries (its parameters) by a fixed
    index buffer of N^2 entries; M, the mask of the shifted windows (0 within a region, -100 across
    regions, as torchvision builds it), is added when ``shift`` (rows, columns) is not (0, 0).
``form`` "torchvision" builds M on every pass; "timm" keeps it as a buffer built once with the
module (no weight ops, no memory of its construction), and neither it nor the index buffer is in
the state dict, as timm registers them.

    MACs = 2 windows N^2 C. Other ops per sample: the scaling of q, the bias add, the mask add when
    shifted, the softmax (5 per score) and the copy that puts the heads back beside each other
    (windows N C, where the reshape after the transpose copies: more than one head and token), each
    an operator of torchvision's code. The layout copies that ``torch.matmul`` makes inside itself to
    fold the windows and heads of q, k^T and v into one batch axis are not ops, as for ``matmul`` and
    ``attention``: they depend on the batch and the strides, not on the shapes a spec states (memory
    counts them, ``saved`` and ``phases``). Once per pass, whatever the batch (weight ops): the gather
    and layout copy of B (2 heads N^2) and, when shifted, the mask's construction (a zero fill, the
    regions' fills and a layout copy of the padded map, windows N each; a subtraction, two compares
    and two masked fills over windows N^2), as ``position_bias`` and ``window_mask`` count them."""

    kind = "window_attention"
    has_weights = True

    heads: int
    window: int
    shift: tuple[int, int]
    grid: tuple[int, int]
    scale: float | None = None  # s above
    form: str = "torchvision"  # "timm": the mask a buffer built once

    @property
    def mask_built(self) -> bool:
        """Whether each pass builds the mask (torchvision), rather than reading timm's buffer."""
        return self.shifted and self.form != "timm"

    @property
    def tokens(self) -> int:
        return self.window * self.window

    @property
    def windows(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def shifted(self) -> bool:
        return sum(self.shift) > 0

    def channels(self, s: Shape) -> int:
        """C, after checking that ``s`` is (windows, N, 3C) with C a whole number of heads."""
        expected = (self.windows, self.tokens)
        if len(s) != 3 or s[:2] != expected or s[2] % (3 * self.heads):
            raise ShapeError(f"window attention expects (windows, tokens, 3 x channels) = "
                             f"({expected[0]}, {expected[1]}, a multiple of 3 x {self.heads} heads), got {fmt_shape(s)}")
        return s[2] // 3

    def out_shape(self, s: Shape) -> Shape:
        return (*s[:2], self.channels(s))

    def _sizes(self, s: Shape) -> tuple[int, int]:
        """(a, p): elements of one of q, k, v per sample, and of the score matrices."""
        return self.windows * self.tokens * self.channels(s), self.windows * self.heads * self.tokens ** 2

    def _copies(self, s: Shape) -> tuple[int, int, int, int]:
        """Elements per sample of the layout copies torch makes of the scaled q, k^T, v (to fold the
        windows and heads into one batch axis for its batched products) and of the output (heads back
        beside each other): none where the fold is a view, with one head (and for q and the output,
        with one token per window)."""
        a = self._sizes(s)[0]
        several, long = self.heads > 1, self.tokens > 1
        return a * (several and long), a * several, a * several, a * (several and long)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        a, p = self._sizes(s)
        scores = self.windows * self.tokens ** 2
        mask = (5 * scores + 3 * self.windows * self.tokens) if self.mask_built else 0
        heads_back = self._copies(s)[3]  # the output's reshape after its transpose
        return LayerCost("window_attention", params=(2 * self.window - 1) ** 2 * self.heads,
                         macs=2 * self.tokens * a, ops=a + heads_back + p * (1 + self.shifted + SOFTMAX_OPS),
                         in_elems=elements(s), out_elems=elements(out),
                         weight_ops=2 * self.heads * self.tokens ** 2 + mask, node=self)

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        """Backward: the gradient of the probabilities (dout @ v^T), which the table's gradient needs
        too, is counted with the weights; the gradients of v, q and k (one product each) with the input.
        With the table frozen and the input needing a gradient torch runs all four, one more than
        counted; freezing a prefix of the network (--freeze-until) never leads there."""
        one = self.tokens * self._sizes(s)[0]
        return TrainMacs(forward=2 * one, grad_input=3 * one, grad_weight=one)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """The probabilities and v always; for the input's gradient also the scaled q and k^T, each as
        the layout copy the batched product takes, or as a view of the input where torch makes none
        (the index buffer is a buffer, no activation). Measured with saved_tensors_hooks."""
        a, p = self._sizes(s)
        cq, ck, cv, _ = self._copies(s)
        q = (cq or a) if input_grad else 0  # the scaled q is a tensor of its own, copied or not
        return Saved(input=not (cv and (ck or not input_grad)), per_sample_elements=p + cv + q + ck * input_grad)

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        return lifted_peak((self, s), out, self._sizes(s)[0], self.phases(s))

    def phases(self, s: Shape) -> tuple[Phase, ...]:
        """The gathered bias B is made first (the gather and its layout copy, 2 heads N^2) and lives
        to the end; the scaled q lives to the end; with it two score matrices at the first product,
        the bias add, the mask add and the softmax, then the product and its layout copy. When
        shifted, the mask M is built after the bias add (at most M, its -100 fill and the 0 fill in
        the dtype and a bool compare of M at once) and lives to the end; timm's buffer is no tensor
        of the pass, and its add replaces the biased scores as the bias add does. In inference mode each
        matmul is one operator (measured): its folding copies are not seen, as for matmul. B and M
        are one tensor for the whole batch. A fused kernel: ``fused_phases``."""
        if RUN.get().kernel == "fused":
            return self.fused_phases(s)
        a, p = self._sizes(s)
        nbytes = RUN.get().nbytes
        bias, mask = self.heads * self.tokens ** 2 * nbytes, self.windows * self.tokens ** 2
        last = a + p + a + self._copies(s)[3]
        if not self.mask_built:
            return Phase(0, 2 * bias), Phase(a + 2 * p, bias), Phase(last, bias)
        held = bias + mask * nbytes
        return (Phase(0, 2 * bias), Phase(a + 2 * p, bias), Phase(a + p, bias + 3 * mask * nbytes + mask),
                Phase(a + 2 * p, held), Phase(last, held))

    def fused_phases(self, s: Shape) -> tuple[Phase, ...]:
        """The same attention by scaled_dot_product_attention under a fused kernel, B [+ M] its
        additive ``attn_mask``, as timm's fused path passes them (flash attention takes a float mask
        on CPU): B is made as above; when shifted, M is built as above, expanded to every sample's
        windows and heads and copied to (batch x windows, heads, N, N) (a view for a batch of one:
        only the batch's axis cannot join the windows'), and B added to it: one score matrix's size
        per sample, the mask the kernel reads (B is freed once the sum exists; M lives to the end).
        The kernel writes its output and the fp32 log-sum-exp of each query, never the scores; its
        output lies token-major as q does, so the heads go back beside each other by a view.
        timm's buffer M is copied and added as well, but never built and no tensor of the pass.
        Measured with the probe under SDPBackend.FLASH_ATTENTION."""
        a, p = self._sizes(s)
        run = RUN.get()
        bias, mask = self.heads * self.tokens ** 2 * run.nbytes, self.windows * self.tokens ** 2
        kernel = a + self.windows * self.heads * self.tokens * 4 // run.nbytes
        if not self.shifted:
            return Phase(0, 2 * bias), Phase(kernel, bias)
        copied = run.batch > 1
        if not self.mask_built:
            return Phase(0, 2 * bias), Phase(p * copied + p, bias), Phase(p + kernel)
        held = bias + mask * run.nbytes
        return (Phase(0, 2 * bias), Phase(0, bias + 3 * mask * run.nbytes + mask), Phase(p * copied + p, held),
                Phase(p + kernel, mask * run.nbytes))

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.LINEAR, None  # batched matrix products: no fixed width for the thin-kernel rule

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.windows_torch import WindowAttention as Module  # torch: only when a module is built

        return Module(self.heads, self.window, self.shift, self.grid, self.scale, self.form)


@register
@dataclass(frozen=True)
class PatchConcat(Primitive):
    """Swin's patch merging gather: a (H, W, C) map padded to even H and W (always a copy, as
    torch's pad), and its four 2x2 neighbours (0,0), (1,0), (0,1), (1,1) concatenated along the
    channels: (ceil(H/2), ceil(W/2), 4C). Ops: the pad's copy and the concatenation's, one per output
    element each."""

    kind = "patch_concat"

    def out_shape(self, s: Shape) -> Shape:
        if len(s) != 3:
            raise ShapeError(f"patch merging needs a channels-last (height, width, channels) map, got {fmt_shape(s)}")
        h, w, c = s
        return (-(-h // 2), -(-w // 2), 4 * c)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(out)
        return LayerCost("patch_concat", ops=2 * n, in_elems=elements(s), out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # pad, strided views and cat: their gradients need sizes only

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        n = elements(out)  # the padded copy is alive while the concatenation writes
        return InnerPeak(out, n, 2 * n)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None  # copies

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.windows_torch import PatchConcat as Module  # torch: only when a module is built

        return Module()

