"""Counters the engine keeps for its periodic log line and the server's /metrics."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EngineStats:
    prompt_tokens_total: int = 0      # tokens run through the model as prompt (incl. recompute)
    generation_tokens_total: int = 0
    finished_by_reason: dict = field(default_factory=dict)
    # Per finished request: (time to first token, end-to-end latency), for histograms; drained by readers.
    latencies: list[tuple[float | None, float]] = field(default_factory=list)
    # Since the last log line.
    _interval_prompt: int = 0
    _interval_generation: int = 0

    def record_step(self, num_tokens: int, num_sampled: int, now: float) -> None:
        self.prompt_tokens_total += num_tokens - num_sampled
        self.generation_tokens_total += num_sampled
        self._interval_prompt += num_tokens - num_sampled
        self._interval_generation += num_sampled

    def record_finished(self, request, now: float) -> None:
        for s in request.seqs:
            self.finished_by_reason[s.finish_reason] = self.finished_by_reason.get(s.finish_reason, 0) + 1
        first = min((s.first_token_time for s in request.seqs if s.first_token_time), default=None)
        ttft = None if first is None else first - request.arrival_time
        self.latencies.append((ttft, now - request.arrival_time))
        del self.latencies[:-10000]

    def take_interval(self) -> tuple[int, int]:
        counts = (self._interval_prompt, self._interval_generation)
        self._interval_prompt = self._interval_generation = 0
        return counts
