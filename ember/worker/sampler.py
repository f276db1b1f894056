"""Token sampling for a batch, on the device the logits are on: grammar bitmasks (structured
output), allowed_token_ids, min_tokens bans, logit_bias, repetition / presence / frequency penalties, temperature, top-k,
top-p, min-p, greedy rows, per-request seeded generators, and log-probabilities of the raw
model distribution."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ember.kernels import triton_available
from ember.kernels.gumbel_sample import gumbel_sample


@dataclass
class SamplingBatch:
    """Per-row settings, one row per sequence sampled this step."""
    temperature: torch.Tensor          # [N] float; 0 = greedy
    top_k: torch.Tensor | None         # [N] int; vocabulary size = off
    top_p: torch.Tensor | None         # [N] float
    min_p: torch.Tensor | None         # [N] float
    # Penalties (None when no row uses any).
    repetition_penalty: torch.Tensor | None = None   # [N]
    presence_penalty: torch.Tensor | None = None     # [N]
    frequency_penalty: torch.Tensor | None = None    # [N]
    output_counts: torch.Tensor | None = None        # [N, V] occurrences in the output so far
    prompt_mask: torch.Tensor | None = None          # [N, V] token appears in the prompt
    banned: list[tuple[int, list[int]]] | None = None  # (row, token ids) masked out (min_tokens)
    generators: dict[int, torch.Generator] | None = None  # row -> its own seeded generator
    all_greedy: bool = False
    all_temperature_one: bool = False
    want_logprobs: bool = False        # some row asked for logprobs: report ranks
    max_num_logprobs: int = 0          # top-k alternatives to report (rows that asked fewer cut theirs)
    # Structured output: packed allowed-token bitmask (int32 [K, ceil(V / 32)]) of rows `bitmask_rows`.
    bitmask_rows: torch.Tensor | None = None
    token_bitmask: torch.Tensor | None = None
    # allowed_token_ids: rows restricted, and the (row, token id) pairs they allow.
    restricted_rows: torch.Tensor | None = None    # [R] int64
    allowed: tuple[torch.Tensor, torch.Tensor] | None = None  # ([M] rows, [M] token ids)
    # logit_bias: (rows, token ids, values), each [B].
    logit_bias: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


@dataclass
class SamplerOutput:
    token_ids: torch.Tensor            # [N] int64
    logprobs: torch.Tensor | None      # [N] logprob of the chosen token under the raw distribution
    ranks: torch.Tensor | None         # [N] 1-based rank of the chosen token
    top_ids: torch.Tensor | None       # [N, k]
    top_logprobs: torch.Tensor | None  # [N, k]


def apply_token_bitmask(logits: torch.Tensor, rows: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Tokens a row's grammar forbids get -inf. The packed bits are unpacked on the logits'
    device; only the constrained rows are touched."""
    vocab = logits.shape[-1]
    # Bit j of int32 word w is token 32 w + j; read as little-endian bytes, bit k of byte b is
    # token 8 b + k (a byte per token while unpacking, not four).
    shifts = torch.arange(8, device=bitmask.device, dtype=torch.uint8)
    packed = bitmask.contiguous().view(torch.uint8).unsqueeze(-1)
    allowed = ((packed >> shifts) & 1).bool().flatten(1)[:, :vocab]
    logits = logits.clone()
    logits[rows] = logits[rows].masked_fill(~allowed, float("-inf"))
    return logits


def apply_allowed_and_bias(logits: torch.Tensor, b: SamplingBatch) -> torch.Tensor:
    """allowed_token_ids: every other token of a restricted row gets -inf; logit_bias: added
    to the biased tokens' logits (vLLM's order: the allow-list first, then the biases)."""
    if b.allowed is None and b.logit_bias is None:
        return logits
    logits = logits.clone()
    if b.allowed is not None:
        forbidden = torch.zeros_like(logits, dtype=torch.bool)
        forbidden[b.restricted_rows] = True
        forbidden[b.allowed] = False
        logits.masked_fill_(forbidden, float("-inf"))
    if b.logit_bias is not None:
        rows, ids, values = b.logit_bias
        logits.index_put_((rows, ids), values, accumulate=True)
    return logits


def apply_penalties(logits: torch.Tensor, b: SamplingBatch) -> torch.Tensor:
    if b.repetition_penalty is not None:
        seen = b.prompt_mask | (b.output_counts > 0)
        penalty = b.repetition_penalty.unsqueeze(1)
        scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(seen, scaled, logits)
    if b.frequency_penalty is not None:
        logits = logits - b.frequency_penalty.unsqueeze(1) * b.output_counts
    if b.presence_penalty is not None:
        logits = logits - b.presence_penalty.unsqueeze(1) * (b.output_counts > 0)
    return logits


def apply_top_k_top_p_min_p(logits: torch.Tensor, b: SamplingBatch) -> torch.Tensor:
    if b.min_p is not None:
        probs = logits.softmax(dim=-1)
        threshold = probs.amax(dim=-1, keepdim=True) * b.min_p.unsqueeze(1)
        logits = logits.masked_fill(probs < threshold, float("-inf"))
    if b.top_p is None and b.top_k is None:
        return logits
    if b.top_p is None:
        # Top-k alone: a threshold from topk, cheaper than sorting the vocabulary.
        k_max = int(b.top_k.max())
        kth = logits.topk(k_max, dim=-1).values.gather(1, (b.top_k - 1).clamp(max=k_max - 1).unsqueeze(1))
        return logits.masked_fill(logits < kth, float("-inf"))
    sorted_logits, order = logits.sort(dim=-1, descending=False)
    vocab = logits.shape[-1]
    if b.top_k is not None:
        kth = sorted_logits.gather(1, (vocab - b.top_k).clamp(min=0).unsqueeze(1))
        sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float("-inf"))
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= (1 - b.top_p.unsqueeze(1))
    drop[:, -1] = False  # the most likely token always stays
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(1, order, sorted_logits)


def only_temperature(b: SamplingBatch) -> bool:
    """Rows asking nothing but temperature (or greedy): no constraint, bias, penalty, top-k/p,
    min-p, logprobs, nor a seed of their own."""
    return (b.token_bitmask is None and not b.banned and b.allowed is None and b.logit_bias is None
            and b.repetition_penalty is None and b.frequency_penalty is None and b.presence_penalty is None
            and b.top_k is None and b.top_p is None and b.min_p is None and not b.want_logprobs
            and b.generators is None)


def sample(logits: torch.Tensor, b: SamplingBatch, generator: torch.Generator | None) -> SamplerOutput:
    """logits [N, V] float32 -> one token per row."""
    if not b.all_greedy and logits.is_cuda and only_temperature(b) and triton_available():
        # One Triton pass (Gumbel-max) instead of softmax, noise, division and two argmaxes;
        # its seed comes from the engine's generator on the device: no host sync.
        seed = torch.randint(0, 2**62, (1,), device=logits.device, generator=generator)
        return SamplerOutput(gumbel_sample(logits, b.temperature, seed), None, None, None, None)
    # Logprobs are of the model's own distribution, before any processing (vLLM's default).
    raw_logprobs = logits.log_softmax(dim=-1) if b.want_logprobs else None
    if b.token_bitmask is not None:
        logits = apply_token_bitmask(logits, b.bitmask_rows, b.token_bitmask)
    if b.banned:
        logits = logits.clone()
        for row, ids in b.banned:
            logits[row, ids] = float("-inf")
    logits = apply_allowed_and_bias(logits, b)
    logits = apply_penalties(logits, b)
    greedy = logits.argmax(dim=-1)
    if b.all_greedy:
        tokens = greedy
    else:
        if not b.all_temperature_one:
            temperature = torch.where(b.temperature > 0, b.temperature, torch.ones_like(b.temperature))
            logits = logits / temperature.unsqueeze(1)
        probs = apply_top_k_top_p_min_p(logits, b).softmax(dim=-1)
        # Exponential race (Gumbel-max in another guise): argmax(p / q), q ~ Exp(1). Each seeded
        # row draws its q from its own generator, so its samples do not depend on the batch.
        q = torch.empty_like(probs).exponential_(generator=generator)
        for row, g in (b.generators or {}).items():
            q[row].exponential_(generator=g)
        sampled = (probs / q).argmax(dim=-1)
        tokens = torch.where(b.temperature > 0, sampled, greedy)
    out = SamplerOutput(tokens, None, None, None, None)
    if b.want_logprobs:
        chosen = raw_logprobs.gather(1, tokens.unsqueeze(1)).squeeze(1)
        out.logprobs = chosen
        out.ranks = (raw_logprobs > chosen.unsqueeze(1)).sum(dim=-1) + 1
        if b.max_num_logprobs > 0:
            out.top_logprobs, out.top_ids = raw_logprobs.topk(b.max_num_logprobs, dim=-1)
    return out
