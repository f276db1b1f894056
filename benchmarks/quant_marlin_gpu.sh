#!/usr/bin/env bash
# The Marlin-layout int4 kernels' GPU check (issue 17), for one H200 in one device call of at
# most ~580 s (each step has its own timeout, so one hang costs only its step):
#   1. correctness, while 8 processes compile the timed kernels into Triton's cache: the kernel
#      tests on the GPU (bf16 and fp16 through the PTX unpack, against the reference: the
#      tensor-core GEMM at the 7B shapes at M = 1..256, the one-row GEMV at M = 1 and 4, the
#      GPTQ/AWQ layers on the layout) and the sm_90 compile tests;
#   2. the int4 paths of both layouts against bf16 cuBLAS on the 7B shapes at ROWS (default
#      1,4,16,32,64,128,256), with the GEMM's tile sweep and the GEMV's knob sweep
#      (benchmarks/quant_gemm_gpu.py --sweep-marlin): the fastest path per M, the best table of
#      each layout (for ember/quantization/gemm_paths.py's INT4_PATHS), the fastest tiles by M
#      (marlin_tiles in ember/kernels/quant_int_marlin_gemm.py) and the GEMV's knobs
#      (MARLIN_GEMV_TILES in ember/kernels/quant_int_marlin_gemv.py).
# Everything printed goes to $OUT/run.log, the timings to $OUT/gemm.json.
#   OUT=$OUT bash benchmarks/quant_marlin_gpu.sh          (ROWS=1,4: the GEMV's rows alone)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-marlin}
ROWS=${ROWS:-1,4,16,32,64,128,256}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source benchmarks/gpu_step.sh

gpu_header
GEMM="benchmarks/quant_gemm_gpu.py --formats bf16,int4 --rows $ROWS --sweep-marlin"
# The sweep compiles a few hundred kernel variants (tiles x split-K x M's specialization): 8
# processes put them in Triton's cache while the tests run, so the timed run only loads them.
LOGS=$(mktemp -d)
step marlin-tests 240 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_int_marlin.py \
  tests/kernels/test_quant_int_marlin_sm90.py tests/kernels/test_quant_int_marlin_linear.py \
  tests/kernels/test_quant_int_marlin_gemv.py tests/kernels/test_quant_int_marlin_gemv_sm90.py > "$LOGS/tests.log" 2>&1 &
PIDS=$!
for i in 0 1 2 3 4 5 6 7; do
  step "warm-$i" 240 $PY $GEMM --warm 8:$i > "$LOGS/warm-$i.log" 2>&1 &
  PIDS="$PIDS $!"
done
wait $PIDS
cat "$LOGS/tests.log"
grep -h "==\|FAILED" "$LOGS"/warm-*.log
echo "== warm-up and tests done at $SECONDS s"
step gemm $((580 - SECONDS)) $PY $GEMM --out "$OUT/gemm.json"
echo "== done at $SECONDS s"
