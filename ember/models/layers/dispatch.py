"""Choose, per tensor, between a Triton kernel and its plain-torch reference."""
from __future__ import annotations

import torch

from ember.kernels import triton_available


def use_triton(x: torch.Tensor) -> bool:
    return x.is_cuda and triton_available()
