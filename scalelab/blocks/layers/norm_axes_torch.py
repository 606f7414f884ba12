"""Torch modules of the primitives in ``norm_axes`` (imported by their builders only)."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.nn.modules.instancenorm import _InstanceNorm


class InstanceNorm(_InstanceNorm):
    """Instance norm of a batched (N, C, L) or (N, C, H, W) input: InstanceNorm1d and InstanceNorm2d
    in one module, with their parameters and state-dict keys."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() not in (3, 4):  # the input always has its batch axis: never the unbatched path
            raise ValueError(f"expected a 3-D or 4-D input (got a {input.dim()}-D one)")
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)
