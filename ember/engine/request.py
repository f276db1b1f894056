"""One request as the engine tracks it: its prompt and its n sample sequences."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ember.engine.detokenizer import visible_text
from ember.engine.sequence import Sequence
from ember.outputs import CompletionOutput, Logprob, RequestOutput
from ember.sampling_params import SamplingParams


@dataclass
class Request:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    seqs: list[Sequence]
    stream: bool = False
    arrival_time: float = field(default_factory=time.monotonic)
    # Index 0 has no logprob (nothing precedes it), as in vLLM.
    prompt_logprobs: list[dict[int, Logprob] | None] | None = None
    num_finished: int = 0

    @property
    def finished(self) -> bool:
        return self.num_finished == len(self.seqs)

    def output(self) -> RequestOutput:
        outs = []
        for s in self.seqs:
            outs.append(CompletionOutput(
                index=s.index, text=visible_text(s), token_ids=s.output_token_ids,
                cumulative_logprob=s.cumulative_logprob,
                logprobs=list(s.logprobs) if s.logprobs is not None else None,
                finish_reason=s.finish_reason, stop_reason=s.stop_reason))
        return RequestOutput(
            request_id=self.request_id, prompt=self.prompt, prompt_token_ids=self.prompt_token_ids,
            prompt_logprobs=self.prompt_logprobs, outputs=outs, finished=self.finished,
            num_cached_tokens=max(s.num_cached_tokens for s in self.seqs),
            metrics={"arrival_time": self.arrival_time,
                     "first_token_time": min((s.first_token_time for s in self.seqs
                                              if s.first_token_time is not None), default=None)})
