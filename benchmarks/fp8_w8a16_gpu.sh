#!/usr/bin/env bash
# The FP8 W8A16 kernel (issue 17) on one H200 (the device tool's nvidia-h200), in one call of
# at most 540 s; each step has its own time limit:
#   1. correctness, three processes at once (nothing timed): the FP8 kernel tests on the GPU (W8A16: every
#      e4m3 value exact, 7B shapes, split-K deterministic; W8A8 with its in-launch split-K; the
#      linear methods' paths) and the per-layer FP8 diagnostic (benchmarks/fp8_layer_gpu.py);
#   2. the W8A16 tile sweep against w8a8-triton, w8a8-cublas and bf16 cuBLAS on the 7B layer
#      shapes at M = 1, 4, 16, 32, 64, 128, per-tensor and block-wise: per-layer times, the
#      fastest path and tiles per M, and the FP8 tables the timings suggest (gemm_paths.py's form).
# Everything printed goes to $OUT/run.log, the timings to $OUT/w8a16_sweep.json.
#   OUT=$OUT bash benchmarks/fp8_w8a16_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-fp8-w8a16}
LOGS=$(mktemp -d)  # the parallel steps' logs, appended to run.log in order once all ended
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source benchmarks/gpu_step.sh

gpu_header
# Two test processes: each case compiles its kernels (about a second each).
step w8a16-tests 170 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_fp8_w8a16.py \
  > "$LOGS/1-w8a16-tests.log" 2>&1 &
PIDS=$!
step fp8-tests 170 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_fp8_w8a8.py \
  tests/kernels/test_quant_linear_paths.py > "$LOGS/2-fp8-tests.log" 2>&1 &
PIDS="$PIDS $!"
step fp8-layer-diagnostic 120 $PY benchmarks/fp8_layer_gpu.py > "$LOGS/3-fp8-layer.log" 2>&1 &
wait $PIDS $!
cat "$LOGS"/*.log
echo "== correctness steps done at $SECONDS s"
step w8a16-sweep $((530 - SECONDS)) $PY benchmarks/quant_gemm_gpu.py --formats bf16,fp8,fp8-block \
  --rows 1,4,16,32,64,128 --sweep-w8a16 --out "$OUT/w8a16_sweep.json"
echo "== done at $SECONDS s"
