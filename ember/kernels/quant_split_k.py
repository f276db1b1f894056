"""Split-K within one launch, for the GEMMs of decode batches: K is split over programs so that
enough of them stream the weight (a 7B layer's `o` and `down` have 56 column tiles of 64
for 132 multiprocessors), and the last program of an output tile to finish adds the fp32
partial sums up and writes the output. No second kernel sums the partials (nor casts them):
in a CUDA graph of a decode step every launch costs microseconds, two more per GEMM.

Each output tile has an arrival counter in a per-device int32 buffer that starts at zero; the
program that finds SPLIT_K - 1 earlier arrivals reduces and sets it back to zero, so the next
call (and the next replay of a graph) finds it zeroed without a memset. Calls on one device
must not run concurrently on two streams (Ember's steps run on one). The sum runs over the
slices in order, whichever program is last: the result is deterministic."""
from __future__ import annotations

import torch

from ember.kernels._triton import tl, triton
from ember.kernels.quant_gemm_tiles import num_sms

__all__ = ["MAX_SPLIT_TILES", "split_k_counters", "split_k_plan", "split_k_scratch", "store_split_k"]

MAX_SPLIT_TILES = 8192  # output tiles of one split-K call (32 KiB of counters per device)
_COUNTERS: dict[torch.device, torch.Tensor] = {}


def split_k_counters(device: torch.device) -> torch.Tensor:
    """The device's arrival counters, zeroed when first asked for: that must happen outside a
    CUDA graph's capture (where nothing runs, so the zeroing would not either); the engine's
    warm-up forward before each capture asks first."""
    if device not in _COUNTERS:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("split-K counters must be created before CUDA graph capture: run one eager call first")
        _COUNTERS[device] = torch.zeros(MAX_SPLIT_TILES, dtype=torch.int32, device=device)
    return _COUNTERS[device]


def split_k_plan(k_steps: int, output_tiles: int, programs_per_sm: int, device: torch.device) -> tuple[int, int]:
    """(slices, K steps per slice) for a call of `output_tiles` tiles over `k_steps` K steps: K
    split until about `programs_per_sm` programs per multiprocessor (0: never), no slice empty,
    and none where the tiles outnumber the counters."""
    if output_tiles > MAX_SPLIT_TILES:
        return 1, k_steps
    split = max(1, min(k_steps, triton.cdiv(programs_per_sm * num_sms(device), output_tiles)))
    per_split = triton.cdiv(k_steps, split)
    return triton.cdiv(k_steps, per_split), per_split


def split_k_scratch(split: int, out: torch.Tensor) -> torch.Tensor:
    """The fp32 partial sums of `split` slices of `out` (out itself, unused, for one slice)."""
    return torch.empty((split, *out.shape), dtype=torch.float32, device=out.device) if split > 1 else out


@triton.jit
def store_split_k(acc, out_ptrs, mask, partial_ptrs, slice_stride, counter_ptr, SPLIT_K):
    """Writes the fp32 tile `acc` to `out_ptrs` (their dtype) once all SPLIT_K programs of the
    tile have added theirs: `partial_ptrs` point into slice 0 of a [SPLIT_K, ...] fp32 scratch,
    `counter_ptr` at the tile's counter; tl.program_id(2) is the program's slice. SPLIT_K is a
    run-time argument: the shapes' splits (1, 4, 5, ...) need no compilation each."""
    if SPLIT_K == 1:
        tl.store(out_ptrs, acc.to(out_ptrs.dtype.element_ty), mask=mask)
    else:
        tl.store(partial_ptrs + tl.program_id(2) * slice_stride, acc, mask=mask)
        # Every thread's partial is written before one thread announces the arrival (the
        # atomic releases them at GPU scope; the last program's acquires them).
        tl.debug_barrier()
        if tl.atomic_add(counter_ptr, 1, sem="acq_rel") == SPLIT_K - 1:
            total = tl.zeros(acc.shape, dtype=tl.float32)
            for s in range(SPLIT_K):
                # .cg: from L2, where the other programs' stores are, not a stale L1 line.
                total += tl.load(partial_ptrs + s * slice_stride, mask=mask, other=0.0, cache_modifier=".cg")
            tl.store(out_ptrs, total.to(out_ptrs.dtype.element_ty), mask=mask)
            tl.atomic_xchg(counter_ptr, 0)
