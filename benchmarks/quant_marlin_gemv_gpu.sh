#!/usr/bin/env bash
# The Marlin-layout int4 GEMV's first GPU check (issue 17), for one H200 in one device call of
# at most ~580 s (each step has its own timeout, so one hang costs only its step):
#   1. correctness, while 4 processes compile the timed kernels into Triton's cache: its kernel
#      tests on the GPU (bf16 and fp16 through the PTX unpack, the 7B shapes at M = 1 and 4,
#      groups of 128, 32 and per-channel) and its sm_90 compile test;
#   2. the int4 paths of both layouts against bf16 cuBLAS on the 7B shapes at M = 1 and 4, with
#      the GEMV's knob sweep (benchmarks/quant_gemm_gpu.py --marlin): whether marlin-gemv goes
#      into ember/quantization/gemm_paths.py's INT4_PATHS at 1 (and 4) rows, and with which
#      MARLIN_GEMV_TILES (ember/kernels/quant_int_marlin_gemv.py).
# Everything printed goes to $OUT/run.log, the timings to $OUT/gemm.json.
#   OUT=$OUT bash benchmarks/quant_marlin_gemv_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-marlin-gemv}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source benchmarks/gpu_step.sh

gpu_header
GEMM="benchmarks/quant_gemm_gpu.py --formats bf16,int4 --rows 1,4 --marlin"
LOGS=$(mktemp -d)
step gemv-tests 240 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_int_marlin_gemv.py \
  tests/kernels/test_quant_int_marlin_gemv_sm90.py > "$LOGS/tests.log" 2>&1 &
PIDS=$!
for i in 0 1 2 3; do
  step "warm-$i" 240 $PY $GEMM --warm 4:$i > "$LOGS/warm-$i.log" 2>&1 &
  PIDS="$PIDS $!"
done
wait $PIDS
cat "$LOGS/tests.log"
grep -h "==\|FAILED" "$LOGS"/warm-*.log
echo "== warm-up and tests done at $SECONDS s"
step gemm $((580 - SECONDS)) $PY $GEMM --out "$OUT/gemm.json"
echo "== done at $SECONDS s"
