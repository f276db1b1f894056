"""What `ember bench serve` reports, from each request's timings: vLLM's benchmark_serving
metrics (request and token throughput; TTFT, TPOT, ITL and end-to-end latency as mean, median,
p90, p99), and the result block printed in vLLM's layout."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 90, 99)
# (key in the results, heading, abbreviation in the lines)
LATENCIES = (("ttft", "Time to First Token", "TTFT"),
             ("tpot", "Time per Output Token (excl. 1st token)", "TPOT"),
             ("itl", "Inter-token Latency", "ITL"),
             ("e2el", "End-to-end Latency", "E2EL"))


@dataclass
class RequestResult:
    """One streamed request, timed on the client (perf_counter seconds)."""
    success: bool = False
    prompt_tokens: int = 0
    output_tokens: int = 0          # from the stream's final usage, not a count of chunks
    ttft: float = 0.0               # request sent -> first chunk with text
    latency: float = 0.0            # request sent -> end of the stream
    itl: list[float] = field(default_factory=list)  # gaps between chunks with text, after the first
    error: str = ""


def summarize(results: list[RequestResult], duration: float) -> dict:
    """The numbers of one run. Only successful requests count towards tokens and latencies;
    TPOT is (latency - TTFT) / (output tokens - 1), for requests with more than one token."""
    done = [r for r in results if r.success]
    input_tokens = sum(r.prompt_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    samples = {
        "ttft": [r.ttft for r in done],
        "tpot": [(r.latency - r.ttft) / (r.output_tokens - 1) for r in done if r.output_tokens > 1],
        "itl": [gap for r in done for gap in r.itl],
        "e2el": [r.latency for r in done],
    }
    summary = {
        "duration": duration, "completed": len(done), "failed": len(results) - len(done),
        "total_input_tokens": input_tokens, "total_output_tokens": output_tokens,
        "request_throughput": len(done) / duration,
        "output_throughput": output_tokens / duration,
        "total_token_throughput": (input_tokens + output_tokens) / duration,
    }
    for key, values in samples.items():
        summary.update(_distribution_ms(key, values))
    return summary


def _distribution_ms(key: str, seconds: list[float]) -> dict:
    ms = np.asarray(seconds, dtype=float) * 1000 if seconds else np.zeros(1)
    out = {f"mean_{key}_ms": float(ms.mean()), f"median_{key}_ms": float(np.median(ms)),
           f"std_{key}_ms": float(ms.std())}
    for p in PERCENTILES:
        out[f"p{p}_{key}_ms"] = float(np.percentile(ms, p))
    return out


def format_result(summary: dict, max_concurrency: int | None = None, request_rate: float | None = None) -> str:
    lines = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")]

    def row(label: str, value, fmt: str = "") -> None:
        lines.append(f"{label:<40} {value:<10{fmt}}")

    row("Successful requests:", summary["completed"])
    row("Failed requests:", summary["failed"])
    if max_concurrency is not None:
        row("Maximum request concurrency:", max_concurrency)
    if request_rate is not None:
        row("Request rate configured (RPS):", request_rate, ".2f")
    row("Benchmark duration (s):", summary["duration"], ".2f")
    row("Total input tokens:", summary["total_input_tokens"])
    row("Total generated tokens:", summary["total_output_tokens"])
    row("Request throughput (req/s):", summary["request_throughput"], ".2f")
    row("Output token throughput (tok/s):", summary["output_throughput"], ".2f")
    row("Total Token throughput (tok/s):", summary["total_token_throughput"], ".2f")
    for key, heading, short in LATENCIES:
        lines.append("{s:{c}^{n}}".format(s=heading, n=50, c="-"))
        row(f"Mean {short} (ms):", summary[f"mean_{key}_ms"], ".2f")
        row(f"Median {short} (ms):", summary[f"median_{key}_ms"], ".2f")
        for p in PERCENTILES[1:]:
            row(f"P{p} {short} (ms):", summary[f"p{p}_{key}_ms"], ".2f")
    lines.append("=" * 50)
    return "\n".join(lines)
