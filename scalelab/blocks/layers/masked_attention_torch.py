"""The torch module of ``masked_attention`` (imported by its builder only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


class MaskedAttention(nn.Module):
    """F.scaled_dot_product_attention of [q, k, v, mask] (batch axis first) with the mask added to the
    scores, run by the math kernel, the one the analysis counts."""

    def __init__(self, scale: "float | None") -> None:
        super().__init__()
        self.scale = scale

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        q, k, v, mask = xs
        # per sample the mask broadcasts from its last axis: its batch axis stays the first
        mask = mask.view(mask.shape[0], *[1] * (q.dim() - mask.dim()), *mask.shape[1:])
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
