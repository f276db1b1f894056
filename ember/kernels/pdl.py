"""Programmatic dependent launch (PDL, sm_90 and later) for the chain of short kernels a decode
step is. A kernel launched with it may be scheduled while the kernel before it in the stream
drains: its programs start, wait (griddepcontrol.wait) until that kernel has finished and its
writes are visible, and at once let the kernel after them be scheduled the same way. A batch-1
decode step of the 7B shape is ~10 kernels a layer of 2-30 us each (28 layers), so what each
boundary costs (the launch, the programs' start, the first loads' latency) is a visible share.

Every Ember kernel taking USE_PDL calls `wait_for_previous_kernel` before its first load or
store, so the order of memory effects stays the stream's: a kernel's wait covers everything
launched before it, because the kernel it waits for finished only after its own wait. Kernels
launched without PDL (cuBLAS, torch's, the all-reduce) are ordered as usual. CUDA graphs keep
the launches' programmatic edges. EMBER_PDL=0 turns it off; so do a device older than sm_90,
Triton's interpreter and a Triton without grid-dependency control."""

from __future__ import annotations

import functools
import os

import torch

from ember.kernels._triton import HAS_TRITON, tl, triton

try:
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:  # no Triton, or one older than grid-dependency control (3.3)
    gdc_launch_dependents = gdc_wait = None

if os.environ.get("TRITON_INTERPRET", "0") == "1":
    # The interpreter runs one program at a time, after the previous kernel: nothing to wait
    # for. No-ops keep the kernels' USE_PDL paths (the GEMV's early first tile) testable there.
    @triton.jit
    def gdc_wait():
        pass

    @triton.jit
    def gdc_launch_dependents():
        pass

__all__ = ["pdl_launch", "wait_for_previous_kernel"]


@functools.cache
def _supported(device_index: int) -> bool:
    if not HAS_TRITON or gdc_wait is None or os.environ.get("EMBER_PDL", "1") == "0":
        return False
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return False
    from triton.backends.nvidia.compiler import CUDAOptions

    if "launch_pdl" not in CUDAOptions.__dataclass_fields__:
        return False
    return torch.cuda.get_device_capability(device_index)[0] >= 9


def pdl_launch(device: torch.device) -> dict:
    """The extra launch arguments of a kernel taking USE_PDL, on `device`: PDL where the
    device and Triton have it, nothing (the kernel's default, no PDL) elsewhere."""
    if device.type != "cuda":
        return {}
    index = device.index if device.index is not None else torch.cuda.current_device()
    return {"USE_PDL": True, "launch_pdl": True} if _supported(index) else {}


@triton.jit
def wait_for_previous_kernel(USE_PDL: tl.constexpr):
    """The first thing a kernel taking USE_PDL does: wait for the kernel before it, then let
    the next one be scheduled."""
    if USE_PDL:
        gdc_wait()
        gdc_launch_dependents()
