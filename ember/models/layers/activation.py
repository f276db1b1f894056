from __future__ import annotations

import torch
from torch import nn

from ember.models.layers.kernels import LayerKernels


class SiluAndMul(nn.Module):
    def __init__(self, kernels: LayerKernels):
        super().__init__()
        self.kernels = kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.silu_and_mul(x)
