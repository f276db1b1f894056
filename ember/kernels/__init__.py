"""GPU kernels (Triton) with plain-torch references.

Importing this package never imports triton: each kernel module pulls it in
through ``ember.kernels._triton``, which tolerates its absence.
"""

from __future__ import annotations

import importlib.util
import os


def triton_available() -> bool:
    """True when the Triton kernels can run: triton importable and either a CUDA
    device is present or the CPU interpreter is on (TRITON_INTERPRET=1)."""
    if importlib.util.find_spec("triton") is None:
        return False
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return True
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
