"""`ember bench`: vLLM's offline benchmarks (benchmark_throughput.py, benchmark_latency.py)
for Ember, with transformers as the in-process baseline on the same requests."""
