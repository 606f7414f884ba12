"""The torch modules of ``windows`` (imported by their builders only), computing statement for
statement as torchvision's ``shifted_window_attention`` (between its qkv and output projections) and
``_patch_merging_pad`` do (timm's ``WindowAttention`` runs the same statements), so that their
tensors live as torchvision's do."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def relative_position_index(window: int) -> torch.Tensor:
    """Index into the (2w-1)^2 table of each (query, key) pair of a window's tokens, flattened
    (torchvision's ``define_relative_position_index``)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous() + (window - 1)
    return (relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]).flatten()


def shift_mask(x: torch.Tensor, window: int, shift: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """(windows, N, N): 0 between tokens of one region of the shifted map, -100 across regions."""
    pad_h, pad_w = grid[0] * window, grid[1] * window
    mask = x.new_zeros((pad_h, pad_w))
    h_slices = ((0, -window), (-window, -shift[0]), (-shift[0], None))
    w_slices = ((0, -window), (-window, -shift[1]), (-shift[1], None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            mask[h[0]: h[1], w[0]: w[1]] = count
            count += 1
    mask = mask.view(grid[0], window, grid[1], window).permute(0, 2, 1, 3).reshape(grid[0] * grid[1], window * window)
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))


class WindowAttention(nn.Module):
    """(batch, windows, N, 3C) -> (batch, windows, N, C); the table a parameter, the index a buffer,
    named as torchvision names them. ``form`` "timm": the mask a buffer built here once, and the
    index and the mask kept out of the state dict, as timm's non-persistent buffers."""

    def __init__(self, heads: int, window: int, shift: tuple[int, int], grid: tuple[int, int],
                 scale: "float | None" = None, form: str = "torchvision") -> None:
        super().__init__()
        self.heads, self.window, self.shift, self.grid = heads, window, tuple(shift), tuple(grid)
        self.scale = scale
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        timm = form == "timm"
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=not timm)
        kept = shift_mask(torch.zeros(()), window, tuple(shift), tuple(grid)) if timm and sum(shift) > 0 else None  # type: ignore[arg-type]
        self.register_buffer("attn_mask", kept, persistent=False)

    def bias(self) -> torch.Tensor:
        n = self.window * self.window
        index: torch.Tensor = self.relative_position_index  # type: ignore[assignment]  # a buffer
        bias = self.relative_position_bias_table[index]
        return bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relative_position_bias = self.bias()
        batch, windows, n, c3 = x.shape
        c, heads = c3 // 3, self.heads
        qkv = x.reshape(batch * windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * (self.scale if self.scale is not None else (c // heads) ** -0.5)
        attn = q.matmul(k.transpose(-2, -1))
        attn = attn + relative_position_bias
        if sum(self.shift) > 0:
            kept = self.attn_mask
            attn_mask = kept if isinstance(kept, torch.Tensor) else shift_mask(x, self.window, self.shift, self.grid)  # type: ignore[arg-type]
            attn = attn.view(batch, windows, heads, n, n)
            attn = attn + attn_mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n)
        attn = F.softmax(attn, dim=-1)
        out = attn.matmul(v).transpose(1, 2).reshape(batch * windows, n, c)
        return out.view(batch, windows, n, c)


class PatchConcat(nn.Module):
    """(batch, H, W, C) -> (batch, ceil(H/2), ceil(W/2), 4C), as torchvision's ``_patch_merging_pad``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, _ = x.shape[-3:]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        return torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1)
