"""A launched step whose sampled tokens are still on their way from the device. Its results
are copied into pinned host memory right after sampling (before the next step is enqueued),
so waiting for them never waits for the next step too."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ember.worker.sampler import SamplerOutput
from ember.worker.step_input import SampledToken, StepOutput


def _to_host(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None or not t.is_cuda:
        return t
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return host.copy_(t, non_blocking=True)


@dataclass
class PendingStep:
    seq_ids: list[int] = field(default_factory=list)
    num_logprobs: list[int | None] = field(default_factory=list)
    result: SamplerOutput | None = None
    prompt_logprobs: dict = field(default_factory=dict)
    ready: torch.cuda.Event | None = None

    @classmethod
    def empty(cls, prompt_logprobs: dict | None = None) -> "PendingStep":
        return cls(prompt_logprobs=prompt_logprobs or {})

    @classmethod
    def start(cls, seq_ids, num_logprobs, result: SamplerOutput, prompt_logprobs: dict) -> "PendingStep":
        host = SamplerOutput(*(_to_host(t) for t in (result.token_ids, result.logprobs, result.ranks,
                                                     result.top_ids, result.top_logprobs)))
        ready = None
        if result.token_ids.is_cuda:
            ready = torch.cuda.Event()
            ready.record()
        return cls(seq_ids, num_logprobs, host, prompt_logprobs, ready)

    def wait(self) -> StepOutput:
        output = StepOutput(sampled={}, prompt_logprobs=self.prompt_logprobs)
        if self.result is None:
            return output
        if self.ready is not None:
            self.ready.synchronize()
        r = self.result
        tokens = r.token_ids.tolist()
        if r.logprobs is None:  # no row asked for logprobs: the tokens alone, in one pass
            output.sampled = {seq_id: SampledToken(token, None, None) for seq_id, token in zip(self.seq_ids, tokens)}
            return output
        logprobs = r.logprobs.tolist()
        ranks = r.ranks.tolist() if r.ranks is not None else None
        top_ids = r.top_ids.tolist() if r.top_ids is not None else None
        top_lps = r.top_logprobs.tolist() if r.top_logprobs is not None else None
        for row, (seq_id, k) in enumerate(zip(self.seq_ids, self.num_logprobs)):
            token = tokens[row]
            if k is None:
                output.sampled[seq_id] = SampledToken(token, None, None)
                continue
            top = [(token, logprobs[row], ranks[row])]
            if k:
                top += [(t, lp, rank + 1) for rank, (t, lp) in enumerate(zip(top_ids[row][:k], top_lps[row][:k]))]
            output.sampled[seq_id] = SampledToken(token, logprobs[row], top)
        return output
