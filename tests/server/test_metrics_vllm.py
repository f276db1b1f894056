"""The vLLM-named series rendered from synthetic observations and snapshots: buckets, sums, counts."""
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ember.entrypoints.openai.metrics_vllm import VllmMetrics


def samples(registry: CollectorRegistry, family: str, label: str = "le") -> dict:
    text = generate_latest(registry).decode()
    for f in text_string_to_metric_families(text):
        if f.name == family:
            return {(s.name, s.labels.get(label)): s.value for s in f.samples}
    raise KeyError(family)


def test_time_per_output_token_counts_each_gap():
    registry = CollectorRegistry()
    metrics = VllmMetrics("m", registry)
    # 11 tokens over 0.5 s after the first: 10 gaps of 0.05 s; a 1-token request has no gap.
    metrics.observe_finished(ttft=0.2, e2e=0.7, queue=0.01, num_tokens=11, decode_seconds=0.5, finish_reason="length")
    metrics.observe_finished(ttft=0.1, e2e=0.1, queue=None, num_tokens=1, decode_seconds=0.0, finish_reason="stop")
    for name in ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"):
        s = samples(registry, name)
        assert s[(name + "_count", None)] == 10
        assert abs(s[(name + "_sum", None)] - 0.5) < 1e-9
        # Buckets are "less or equal": 0.05 falls in le=0.05, not below it.
        assert s[(name + "_bucket", "0.025")] == 0 and s[(name + "_bucket", "0.05")] == 10
        assert s[(name + "_bucket", "+Inf")] == 10
    assert samples(registry, "vllm:time_to_first_token_seconds")[("vllm:time_to_first_token_seconds_count", None)] == 2
    assert samples(registry, "vllm:request_queue_time_seconds")[("vllm:request_queue_time_seconds_count", None)] == 1
    success = samples(registry, "vllm:request_success", label="finished_reason")
    assert {reason: n for (name, reason), n in success.items() if name.endswith("_total")} == \
        {"stop": 1, "length": 1, "abort": 0}


def test_iteration_tokens_from_step_counts():
    snapshot = SimpleNamespace(num_running=1, num_waiting=0, kv_cache_usage=0.5, prompt_tokens_total=10,
                               generation_tokens_total=20, prefix_cache_queries_total=10, prefix_cache_hits_total=0,
                               num_preemptions_total=0,
                               step_token_counts={1: 3, 8: 2, 9: 1, 20000: 1})  # engine steps by tokens run
    metrics = VllmMetrics("m", CollectorRegistry())
    family = next(f for f in metrics.engine_families(snapshot) if f.name == "vllm:iteration_tokens_total")
    s = {(x.name, x.labels.get("le")): x.value for x in family.samples}
    assert s[("vllm:iteration_tokens_total_bucket", "1.0")] == 3
    assert s[("vllm:iteration_tokens_total_bucket", "8.0")] == 5
    assert s[("vllm:iteration_tokens_total_bucket", "16.0")] == 6
    assert s[("vllm:iteration_tokens_total_bucket", "16384.0")] == 6
    assert s[("vllm:iteration_tokens_total_bucket", "+Inf")] == s[("vllm:iteration_tokens_total_count", None)] == 7
    assert s[("vllm:iteration_tokens_total_sum", None)] == 3 + 16 + 9 + 20000
