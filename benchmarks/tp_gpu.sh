#!/usr/bin/env bash
# Issue 9's 2-GPU measurement, for a host with 2 GPUs (the device tool's nvidia-h200-x2):
#   1. the tensor-parallel tests on the GPUs (NCCL, CUDA graphs on each rank);
#   2. rand7b, greedy, at TP=1 then TP=2 (each in its own process, so the GPUs start empty):
#      throughput of each and the token-for-token comparison. Record both in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks/*.py import ember from the checkout
PY=${PY:-python}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-tp}
mkdir -p "$OUT"
nvidia-smi -L
$PY -m pytest -q tests/distributed/test_tensor_parallel_gpu.py
$PY benchmarks/tp_rand7b.py --tp 1 --out "$OUT/tp1.json" 2>&1 | tee "$OUT/tp1.log"
$PY benchmarks/tp_rand7b.py --tp 2 --out "$OUT/tp2.json" 2>&1 | tee "$OUT/tp2.log"
$PY benchmarks/tp_rand7b.py --compare "$OUT/tp1.json" "$OUT/tp2.json" | tee "$OUT/compare.log"
