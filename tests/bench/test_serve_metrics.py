"""`ember bench serve`'s numbers from synthetic timings: throughput, TTFT, TPOT, ITL, percentiles."""
import pytest

from ember.entrypoints.bench.serve_metrics import RequestResult, format_result, summarize


def ok(prompt: int, output: int, ttft: float, latency: float, itl: list[float]) -> RequestResult:
    return RequestResult(success=True, prompt_tokens=prompt, output_tokens=output, ttft=ttft, latency=latency,
                         itl=itl)


RESULTS = [
    ok(10, 5, ttft=0.1, latency=0.5, itl=[0.1, 0.1, 0.1, 0.1]),
    ok(20, 3, ttft=0.3, latency=0.7, itl=[0.2, 0.2]),
    ok(30, 1, ttft=0.2, latency=0.2, itl=[]),
    RequestResult(error="HTTP 500: boom"),
]


def test_throughputs_count_only_successful_requests():
    s = summarize(RESULTS, duration=2.0)
    assert (s["completed"], s["failed"]) == (3, 1)
    assert (s["total_input_tokens"], s["total_output_tokens"]) == (60, 9)
    assert s["request_throughput"] == pytest.approx(1.5)
    assert s["output_throughput"] == pytest.approx(4.5)
    assert s["total_token_throughput"] == pytest.approx(34.5)


def test_latency_distributions_in_milliseconds():
    s = summarize(RESULTS, duration=2.0)
    assert s["mean_ttft_ms"] == pytest.approx(200.0)
    assert s["median_ttft_ms"] == s["p50_ttft_ms"] == pytest.approx(200.0)
    # TPOT per request: (latency - ttft) / (tokens - 1); the one-token request has none.
    assert s["mean_tpot_ms"] == pytest.approx((100.0 + 200.0) / 2)
    # ITL pools every gap of every request: four of 100 ms, two of 200 ms.
    assert s["mean_itl_ms"] == pytest.approx(800.0 / 6)
    assert s["median_itl_ms"] == pytest.approx(100.0)
    assert s["p99_itl_ms"] == pytest.approx(200.0, abs=1.0)
    assert s["mean_e2el_ms"] == pytest.approx(1400.0 / 3)
    for key in ("ttft", "tpot", "itl", "e2el"):
        assert s[f"p50_{key}_ms"] <= s[f"p90_{key}_ms"] <= s[f"p99_{key}_ms"]


def test_percentiles_interpolate_like_numpy():
    results = [ok(1, 2, ttft=t / 1000, latency=1.0, itl=[]) for t in range(1, 101)]
    s = summarize(results, duration=1.0)
    assert s["p90_ttft_ms"] == pytest.approx(90.1)
    assert s["p99_ttft_ms"] == pytest.approx(99.01)


def test_a_run_where_everything_failed_reports_zeros():
    s = summarize([RequestResult(error="refused")] * 2, duration=1.0)
    assert (s["completed"], s["failed"], s["output_throughput"], s["mean_ttft_ms"]) == (0, 2, 0.0, 0.0)


def test_result_block_has_vllms_lines():
    text = format_result(summarize(RESULTS, duration=2.0), max_concurrency=4)
    lines = text.splitlines()
    assert lines[0] == "============ Serving Benchmark Result ============"
    assert lines[-1] == "=" * 50
    for label, value in [("Successful requests:", "3"), ("Failed requests:", "1"),
                         ("Maximum request concurrency:", "4"), ("Benchmark duration (s):", "2.00"),
                         ("Total generated tokens:", "9"), ("Request throughput (req/s):", "1.50"),
                         ("Output token throughput (tok/s):", "4.50"), ("Mean TTFT (ms):", "200.00"),
                         ("Median TPOT (ms):", "150.00"), ("P99 ITL (ms):", "200.00")]:
        assert f"{label:<40} {value}" in text, label
    assert "---------------Time to First Token----------------" in lines
    assert "-----Time per Output Token (excl. 1st token)------" in lines
