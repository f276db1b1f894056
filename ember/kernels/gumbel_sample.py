"""Sampling with temperature in one pass over the logits: the Gumbel-max trick (the exponential
race under another name), argmax(logits / T + g) with g = -log(-log(u)), u uniform from a
counter-based RNG (Philox, tl.rand4x) keyed by a per-step seed and each entry's (row, token).
That is a draw from softmax(logits / T) with no softmax, no probability tensor, no noise tensor
and no host synchronisation; rows with T == 0 take the plain argmax (the first maximal token, as
torch.argmax).

The vocabulary is cut into `splits` pieces per row, so a batch fills the GPU; torch's argmax
over the pieces' maxima picks each row's best (the first, as pieces cover increasing columns).
The same seed gives the same tokens."""

from __future__ import annotations

import torch

from ember.kernels._triton import require_triton, tl, triton

__all__ = ["gumbel_sample", "gumbel_sample_ref"]

_MAX_BLOCK = 1024  # tokens per sub-block; tl.rand4x yields four uniforms, one per sub-block
_MAX_SPLITS = 64


@triton.jit
def _score(x, inv_t, greedy, u):
    """The value the race maximises: x / T + Gumbel noise, or x for greedy rows."""
    g = -tl.log(-tl.log(u))  # u == 0 gives -inf: never chosen over a finite logit
    return tl.where(greedy, x, x * inv_t + g)


@triton.jit
def _best(best_v, best_i, v, cols):
    """Running (max, first index of it) over blocks visited in increasing column order."""
    v = tl.where(v != v, float("-inf"), v)  # NaN never wins
    m = tl.max(v, 0)
    i = tl.min(tl.where(v == m, cols, 2147483647), 0)
    take = m > best_v
    return tl.where(take, m, best_v), tl.where(take, i, best_i)


@triton.jit
def _race_block(base, cols, hi, inv_t, greedy, u, best_v, best_i):
    x = tl.load(base + cols, mask=cols < hi, other=float("-inf")).to(tl.float32)
    return _best(best_v, best_i, _score(x, inv_t, greedy, u), cols)


# The split count follows the batch size: a runtime value, so serving compiles no new variant
# (cols_per_split is always a multiple of 4 * BLOCK: specialised, it lets the loads vectorise).
@triton.jit(do_not_specialize=["splits"])
def _race_kernel(logits_ptr, temp_ptr, seed_ptr, part_v_ptr, part_i_ptr, vocab, stride_row, cols_per_split,
                 counters_per_row, splits, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    split = tl.program_id(1)
    t = tl.load(temp_ptr + row).to(tl.float32)
    greedy = t <= 0.0
    inv_t = 1.0 / tl.where(greedy, 1.0, t)
    seed = tl.load(seed_ptr)
    offs = tl.arange(0, BLOCK)
    base = logits_ptr + row.to(tl.int64) * stride_row
    lo = split * cols_per_split
    hi = tl.minimum(vocab, lo + cols_per_split)
    best_v = tl.max(tl.full([BLOCK], float("-inf"), tl.float32), 0)
    best_i = lo + tl.min(tl.full([BLOCK], 0, tl.int32), 0)  # an all -inf piece answers its first token
    for start in range(lo, hi, 4 * BLOCK):
        # One Philox call draws for 4 tokens (one per sub-block): counter (row, start / 4 + j).
        counter = row * counters_per_row + start // 4 + offs  # int32: < 2**31 for any real batch
        u0, u1, u2, u3 = tl.rand4x(seed, counter)
        cols = start + offs
        best_v, best_i = _race_block(base, cols, hi, inv_t, greedy, u0, best_v, best_i)
        best_v, best_i = _race_block(base, cols + BLOCK, hi, inv_t, greedy, u1, best_v, best_i)
        best_v, best_i = _race_block(base, cols + 2 * BLOCK, hi, inv_t, greedy, u2, best_v, best_i)
        best_v, best_i = _race_block(base, cols + 3 * BLOCK, hi, inv_t, greedy, u3, best_v, best_i)
    tl.store(part_v_ptr + row * splits + split, best_v)
    tl.store(part_i_ptr + row * splits + split, best_i.to(tl.int64))


def _num_splits(rows: int, vocab: int, block: int, device: torch.device) -> int:
    """Pieces per row: enough programs for ~4 per SM, none shorter than 4 blocks."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 132
    want = triton.cdiv(4 * sms, max(rows, 1))
    most = max(1, vocab // (4 * block))
    return min(triton.next_power_of_2(want), triton.next_power_of_2(most), _MAX_SPLITS)


def gumbel_sample(logits: torch.Tensor, temperature: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """logits [N, V] (unit last stride), temperature [N] (0 = greedy), seed: int64 [1] on the
    logits' device (drawn from the engine's generator, so no host sync) -> tokens int64 [N]."""
    require_triton()
    rows, vocab = logits.shape
    assert logits.stride(-1) == 1 and temperature.shape == (rows,)
    if rows == 0:
        return torch.empty(0, dtype=torch.int64, device=logits.device)
    block = max(16, min(_MAX_BLOCK, triton.next_power_of_2(triton.cdiv(vocab, 4))))
    splits = _num_splits(rows, vocab, block, logits.device)
    step = 4 * block
    cols_per_split = triton.cdiv(triton.cdiv(vocab, splits), step) * step  # whole Philox strides
    part_v = torch.empty(rows, splits, dtype=torch.float32, device=logits.device)
    part_i = torch.empty(rows, splits, dtype=torch.int64, device=logits.device)
    _race_kernel[(rows, splits)](logits, temperature, seed, part_v, part_i, vocab, logits.stride(0), cols_per_split,
                                 triton.cdiv(vocab, step) * block, splits, BLOCK=block, num_warps=4)
    if splits == 1:
        return part_i.view(rows)
    return part_i.gather(1, part_v.argmax(dim=1, keepdim=True)).view(rows)


def gumbel_sample_ref(logits: torch.Tensor, temperature: torch.Tensor, generator=None) -> torch.Tensor:
    """What the kernel computes, in torch with torch's RNG (so the same distribution, not the
    same draws): the exponential race over softmax(logits / T); argmax where T == 0."""
    t = torch.where(temperature > 0, temperature, torch.ones_like(temperature)).unsqueeze(1)
    probs = (logits.float() / t).softmax(dim=-1)
    q = torch.empty_like(probs).exponential_(generator=generator)
    return torch.where(temperature > 0, (probs / q).argmax(dim=-1), logits.argmax(dim=-1))
