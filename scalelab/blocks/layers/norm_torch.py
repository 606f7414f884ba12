"""Torch modules of the primitives in ``norm`` (imported by their builders only)."""

from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm


class BatchNorm(_BatchNorm):
    """Batch norm over the channels (dim 1) of a (N, C), (N, C, L) or (N, C, H, W) input: BatchNorm1d
    and BatchNorm2d in one module, with their parameters, buffers and state-dict keys."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if not 2 <= input.dim() <= 4:
            raise ValueError(f"expected a 2-D, 3-D or 4-D input (got a {input.dim()}-D one)")
