#!/usr/bin/env bash
# Issue 19: the small kernels between batch-1 decoding's GEMVs folded into their prologue
# (EMBER_GEMV_PROLOGUE=1, ember/kernels/gemv_prologue.py) against the current path, on one H200
# (the device tool's nvidia-h200), in one call of about 8 minutes:
#   1. tests: the kernels against the separate ones (bf16 on the GPU), the folded decoder layers,
#      and batch-1 decoding's logprobs with the fold against the prefill's;
#   2. gemv: benchmarks/gemv_gpu.py --prologue: fused against separate per 7B shape (whole and
#      TP=2 halves), then the fused kernels' launch knobs swept;
#   3. latency (the current path), then latency-prologue (EMBER_GEMV_PROLOGUE=1): batch 1, 7B
#      shape, 64 in / 256 out, as `ember bench latency --model qwen2.5-7b --batch-size 1
#      --input-len 64 --output-len 256` (4.30 ms a token before; target 4.0);
#   4. profile-batch1-prologue: where the GPU time goes with the fold (benchmarks/step_profile.py).
# Everything printed goes to $OUT/gemv_prologue.log, the latency results to $OUT/latency*.json.
#   OUT=$OUT bash benchmarks/gemv_prologue_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-gemv-prologue}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gemv_prologue.log") 2>&1
source benchmarks/gpu_step.sh
gpu_header
B="$PY -m ember.entrypoints.bench.cli latency --model qwen2.5-7b --batch-size 1 --input-len 64 --output-len 256 \
  --num-iters-warmup 2 --num-iters 5"
step tests 120 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_gemv.py \
  tests/kernels/test_decoder_layer_gemv_prologue.py tests/gpu/test_gemv_prologue_gpu.py
step gemv 240 $PY benchmarks/gemv_gpu.py --prologue
step latency 60 $B --output-json "$OUT/latency.json"
EMBER_GEMV_PROLOGUE=1 step latency-prologue 60 $B --output-json "$OUT/latency-prologue.json"
EMBER_GEMV_PROLOGUE=1 step profile-batch1-prologue 60 $PY benchmarks/step_profile.py --batch-size 1 --input-len 64 \
  --output-len 256 --out "$OUT/profile-batch1-prologue.txt"
for run in latency latency-prologue; do
  $PY -c "import json, sys; r = json.load(open(sys.argv[1])); print(f'{sys.argv[2]:17} {r[\"time_per_output_token_ms\"]:.3f} ms a token')" \
    "$OUT/$run.json" "$run" 2>/dev/null || echo "$run: no result"
done
