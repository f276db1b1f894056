"""`--vllm-metric-names`: the server's series again under vLLM v1's own names, types, buckets
and labels (`model_name`, `engine`), so that dashboards and autoscalers built for vLLM read
Ember unchanged. The `ember:` series stay as they are."""
from __future__ import annotations

import bisect
import threading
from typing import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

# vLLM v1's buckets (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
PER_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                     20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
FINISH_REASONS = ("stop", "length", "abort")
LABELS = ["model_name", "engine"]
ENGINE_INDEX = "0"  # one engine core


class TokenWeightedHistogram:
    """vLLM observes the time per output token once per token gap. Ember learns a request's
    timings when it finishes: its n-1 gaps are taken as equal, (end - first token) / (n-1), and
    observed n-1 times at once, so count and sum are vLLM's exactly and the buckets nearly."""

    def __init__(self, names: tuple[str, ...], documentation: str, buckets: tuple[float, ...], labels: list[str]):
        self.names, self.documentation, self.labels = names, documentation, labels
        self.bounds = list(buckets) + [float("inf")]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, times: int) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.bounds, value)] += times
            self.sum += value * times

    def collect(self):
        with self._lock:
            counts, total = list(self.counts), self.sum
        cumulative = [sum(counts[:i + 1]) for i in range(len(counts))]
        for name in self.names:
            family = HistogramMetricFamily(name, self.documentation, labels=LABELS)
            family.add_metric(self.labels, [(_le(b), c) for b, c in zip(self.bounds, cumulative)], total)
            yield family


class VllmMetrics:
    """The per-request series (observed as each request finishes) and the engine's state (read
    from its snapshot at scrape time), all on `registry`."""

    def __init__(self, model_name: str, registry: CollectorRegistry):
        self.labels = [model_name, ENGINE_INDEX]
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              LABELS, buckets=TTFT_BUCKETS, registry=registry).labels(*self.labels)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=registry).labels(*self.labels)
        self.queue = Histogram("vllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.",
                               LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=registry).labels(*self.labels)
        # The older name and its successor, one series.
        self.tpot = TokenWeightedHistogram(("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"),
                                           "Histogram of time per output token in seconds.", PER_TOKEN_BUCKETS,
                                           self.labels)
        registry.register(self.tpot)
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          LABELS + ["finished_reason"], registry=registry)
        self.success = {reason: success.labels(*self.labels, reason) for reason in FINISH_REASONS}

    def observe_finished(self, ttft: float | None, e2e: float, queue: float | None, num_tokens: int,
                         decode_seconds: float | None, finish_reason: str) -> None:
        self.e2e.observe(e2e)
        if ttft is not None:
            self.ttft.observe(ttft)
        if queue is not None:
            self.queue.observe(queue)
        if decode_seconds is not None and num_tokens > 1:
            self.tpot.observe(decode_seconds / (num_tokens - 1), num_tokens - 1)
        if finish_reason in self.success:
            self.success[finish_reason].inc()

    def engine_families(self, snapshot) -> list:
        """The gauges and counters of one engine snapshot, under vLLM's names."""
        gauges = [("num_requests_running", "Number of requests in model execution batches.", snapshot.num_running),
                  ("num_requests_waiting", "Number of requests waiting to be processed.", snapshot.num_waiting),
                  ("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", snapshot.kv_cache_usage),
                  ("gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage. "
                                           "DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                   snapshot.kv_cache_usage)]
        counters = [("prompt_tokens", "Number of prefill tokens processed.", snapshot.prompt_tokens_total),
                    ("generation_tokens", "Number of generation tokens processed.", snapshot.generation_tokens_total),
                    ("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                     snapshot.prefix_cache_queries_total),
                    ("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                     snapshot.prefix_cache_hits_total),
                    ("num_preemptions", "Cumulative number of preemption from the engine.",
                     snapshot.num_preemptions_total)]
        families = []
        for name, doc, value in gauges:
            families.append(GaugeMetricFamily(f"vllm:{name}", doc, labels=LABELS))
            families[-1].add_metric(self.labels, value)
        for name, doc, value in counters:
            families.append(CounterMetricFamily(f"vllm:{name}", doc, labels=LABELS))
            families[-1].add_metric(self.labels, value)
        step_tokens = getattr(snapshot, "step_token_counts", None)
        if step_tokens is not None:
            families.append(self._iteration_tokens(step_tokens))
        return families

    def _iteration_tokens(self, step_tokens: Mapping[int, int]) -> HistogramMetricFamily:
        """`step_token_counts`: engine steps by the number of tokens they ran (prompt and generated)."""
        bounds = list(ITERATION_TOKENS_BUCKETS) + [float("inf")]
        counts = [0] * len(bounds)
        total = 0
        for num_tokens, steps in list(step_tokens.items()):
            counts[bisect.bisect_left(bounds, num_tokens)] += steps
            total += num_tokens * steps
        cumulative = [sum(counts[:i + 1]) for i in range(len(counts))]
        family = HistogramMetricFamily("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                                       labels=LABELS)
        family.add_metric(self.labels, [(_le(b), c) for b, c in zip(bounds, cumulative)], total)
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(float(bound))
