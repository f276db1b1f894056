"""GET /metrics: Prometheus metrics under vLLM's names with the `ember:` prefix, and with
`--vllm-metric-names` the same series under vLLM's own names too (metrics_vllm.py).

Gauges and token counters are read at scrape time from the engine loop's latest snapshot;
latency histograms are observed on the engine thread as each request finishes. Each server
has its own registry, so several apps can live in one process (tests)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ember.engine.async_engine import AsyncLLM
from ember.entrypoints.openai.metrics_vllm import VllmMetrics
from ember.outputs import RequestOutput

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_PER_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                      2.5, 5.0, 10.0)


class ServerMetrics:
    def __init__(self, model_name: str, vllm_names: bool = False):
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.vllm = VllmMetrics(model_name, self.registry) if vllm_names else None
        labels = ["model_name"]
        self.ttft = Histogram("ember:time_to_first_token_seconds", "Time to first token, per request.",
                              labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tpot = Histogram("ember:time_per_output_token_seconds",
                              "Mean inter-token latency after the first token, per request.",
                              labels, buckets=_PER_TOKEN_BUCKETS, registry=self.registry)
        self.e2e = Histogram("ember:e2e_request_latency_seconds", "End-to-end latency, per request.",
                             labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue = Histogram("ember:request_queue_time_seconds",
                               "Time from arrival until first scheduled, per request.",
                               labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.success = Counter("ember:request_success", "Finished requests, by finish reason.",
                               ["model_name", "finished_reason"], registry=self.registry)
        self.rejected = Counter("ember:num_requests_rejected",
                                "Requests refused before admission: queue_full (503), shutting_down (503), "
                                "too_large (413).", ["model_name", "reason"], registry=self.registry)
        for reason in ("queue_full", "shutting_down", "too_large"):
            self.rejected.labels(model_name, reason)

    def reject(self, reason: str) -> None:
        self.rejected.labels(self.model_name, reason).inc()

    def watch(self, llm: AsyncLLM) -> None:
        self.registry.register(_EngineCollector(llm, self.model_name, self.vllm))

    def on_request_finished(self, output: RequestOutput, now: float) -> None:
        """Runs on the engine thread (AsyncLLM's hook). Times are time.monotonic() seconds."""
        arrival = output.metrics.get("arrival_time")
        first = output.metrics.get("first_token_time")
        scheduled = output.metrics.get("first_scheduled_time")
        if arrival is None:
            return
        ttft = None if first is None else first - arrival
        queue = None if scheduled is None else scheduled - arrival
        decode = None if first is None else now - first
        # The generated length, whether outputs are whole or deltas.
        num_tokens = output.metrics.get("num_generation_tokens") or max(
            (len(o.token_ids) for o in output.outputs), default=0)
        reason = output.outputs[0].finish_reason if output.outputs else None
        self.e2e.labels(self.model_name).observe(now - arrival)
        if ttft is not None:
            self.ttft.labels(self.model_name).observe(ttft)
            if num_tokens > 1:
                self.tpot.labels(self.model_name).observe(decode / (num_tokens - 1))
        if queue is not None:
            self.queue.labels(self.model_name).observe(queue)
        self.success.labels(self.model_name, str(reason)).inc()
        if self.vllm is not None:
            self.vllm.observe_finished(ttft, now - arrival, queue, num_tokens, decode, str(reason))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector:
    def __init__(self, llm: AsyncLLM, model_name: str, vllm: VllmMetrics | None):
        self.llm, self.model_name, self.vllm = llm, model_name, vllm

    def collect(self):
        s = self.llm.snapshot
        gauges = [("num_requests_running", "Requests running on the engine.", s.num_running),
                  ("num_requests_waiting", "Requests waiting to be scheduled.", s.num_waiting),
                  ("kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = 100%).", s.kv_cache_usage),
                  ("kv_cache_used_blocks", "KV cache blocks allocated to requests.", s.kv_blocks_used),
                  ("kv_cache_total_blocks", "KV cache blocks in all.", s.kv_blocks_total),
                  ("engine_dead", "1 once the engine loop has failed.", int(self.llm.is_dead))]
        counters = [("prompt_tokens", "Prompt tokens processed (recomputation included).", s.prompt_tokens_total),
                    ("generation_tokens", "Tokens generated.", s.generation_tokens_total),
                    ("prefix_cache_queries", "Prompt tokens looked up in the prefix cache.",
                     s.prefix_cache_queries_total),
                    ("prefix_cache_hits", "Prompt tokens found in the prefix cache.", s.prefix_cache_hits_total),
                    ("num_preemptions", "Sequences preempted (recomputed later).", s.num_preemptions_total)]
        for name, doc, value in gauges:
            family = GaugeMetricFamily(f"ember:{name}", doc, labels=["model_name"])
            family.add_metric([self.model_name], value)
            yield family
        for name, doc, value in counters:
            family = CounterMetricFamily(f"ember:{name}", doc, labels=["model_name"])
            family.add_metric([self.model_name], value)
            yield family
        if self.vllm is not None:
            yield from self.vllm.engine_families(s)
