"""The torch module of ``attention`` (imported by its builder only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


class Attention(nn.Module):
    """F.scaled_dot_product_attention of the list [q, k, v] (batch axis first), run by the math
    kernel, the one the analysis counts (a fused kernel keeps other tensors for backward)."""

    def __init__(self, causal: bool, scale: "float | None") -> None:
        super().__init__()
        self.causal, self.scale = causal, scale

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        q, k, v = xs
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
