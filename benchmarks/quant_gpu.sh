#!/usr/bin/env bash
# Issue 17's GPU measurement, for one H200 (the device tool's nvidia-h200), in one call of at
# most $BUDGET seconds (540: 9 minutes; each step has its own timeout, so one hang costs only
# its step):
#   1. correctness, four processes at once (none of them times anything): the FP8 per-layer
#      diagnostic (benchmarks/fp8_layer_gpu.py, also in $OUT/fp8_layer.txt), the quantized
#      kernel tests (two processes), and the quantized-model tests (prompt logprobs and greedy
#      tokens of every format against its dequantized twin);
#   2. the quantized GEMM paths against bf16 cuBLAS on the 7B shapes at M = 1, 4, 16, 64, 128,
#      256, 4096 (benchmarks/quant_gemm_gpu.py): the fastest path per M and the table
#      ember/quantization/gemm_paths.py should hold (int8 last: cut first);
#   3. rand7b throughput (the first $PROMPTS requests) and batch-1 latency (64 in / 256 out) for
#      bf16, fp8, gptq and awq weights, each in its own process, one at a time, while the
#      budget lasts.
# Everything printed goes to $OUT/run.log; the GEMM timings to $OUT/gemm.json and the bench
# results to $OUT/bench.json. Record the rows in docs/benchmarks.md.
#   OUT=$OUT bash benchmarks/quant_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-quant}
PROMPTS=${PROMPTS:-64}
BUDGET=${BUDGET:-540}
RUNS=$(mktemp -d)  # one JSON per bench run, gathered into $OUT/bench.json at the end
LOGS=$(mktemp -d)  # the parallel steps' logs, appended to run.log in order once all ended
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
B="$PY -m ember.entrypoints.bench.cli"

source benchmarks/gpu_step.sh

nvidia-smi -L
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log -1 --format='commit %h %s' 2>/dev/null
echo "== correctness steps in parallel (logs below once all have ended)"
# The kernel tests in two processes: each case compiles its kernels (about a second each).
step fp8-layer-diagnostic 90 $PY benchmarks/fp8_layer_gpu.py > "$LOGS/1-fp8-layer.log" 2>&1 &
PIDS=$!
step kernel-tests 150 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_gemm.py \
  tests/kernels/test_quant_fp8_w8a8.py tests/kernels/test_quant_fp8_dequant.py tests/kernels/test_quant_linear_paths.py \
  > "$LOGS/2-kernel-tests.log" 2>&1 &
PIDS="$PIDS $!"
step int-kernel-tests 150 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_int_gemv_tiled.py \
  > "$LOGS/3-int-kernel-tests.log" 2>&1 &
PIDS="$PIDS $!"
step gpu-quantized-tests 200 $PY -m pytest -q -s -p no:cacheprovider tests/quantization/test_gpu_quantized.py \
  > "$LOGS/4-gpu-quantized-tests.log" 2>&1 &
PIDS="$PIDS $!"
wait $PIDS
cat "$LOGS"/*.log
cp "$LOGS/1-fp8-layer.log" "$OUT/fp8_layer.txt"
echo "== correctness steps done at $SECONDS s"
# 2. The per-GEMM sweep, formats in order of interest (its summary is printed after each).
if [ -z "${SKIP_GEMM:-}" ]; then
  step gemm 150 $PY benchmarks/quant_gemm_gpu.py --formats bf16,int4,fp8,fp8-block,int8 --out "$OUT/gemm.json"
fi
# 3. bf16 first (the baseline), then each format's throughput and latency; a step that could
# overrun $BUDGET is skipped and says so (awq runs gptq's kernels: it goes last).
# bf16 took 24 s (throughput) and 20 s (latency) on the H200, start-up included (17 s of it,
# CUDA graphs for 20 batch sizes); fp8's latency run did not end in 25 s. The quantized runs
# also compile their kernels, mostly found in Triton's cache from the tests above.
quantization() { [ "$1" = bf16 ] || echo "--quantization $1"; }
for q in bf16 fp8 gptq awq; do
  if [ $((SECONDS + 45)) -le "$BUDGET" ]; then
    step "throughput-$q" 45 $B throughput --workload rand7b --num-prompts "$PROMPTS" --backend ember \
      $(quantization $q) --output-json "$RUNS/throughput-$q.json"
  else
    echo "== throughput-$q skipped: ${SECONDS}s of ${BUDGET}s used"
  fi
  if [ $((SECONDS + 45)) -le "$BUDGET" ]; then
    step "latency-$q" 45 $B latency --batch-size 1 --input-len 64 --output-len 256 --num-iters-warmup 1 \
      --num-iters 3 $(quantization $q) --output-json "$RUNS/latency-$q.json"
  else
    echo "== latency-$q skipped: ${SECONDS}s of ${BUDGET}s used"
  fi
done
# One file of all bench results, and the rows against bf16.
$PY - "$OUT" "$RUNS" <<'PY'
import glob, json, os, sys
out, runs_dir = sys.argv[1:]
runs = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(f"{runs_dir}/*.json"))}
json.dump(runs, open(f"{out}/bench.json", "w"), indent=1)
for kind, key, better in (("throughput", "output_tokens_per_second", "higher"), ("latency", "time_per_output_token_ms", "lower")):
    base = runs.get(f"{kind}-bf16", {}).get(key)
    for q in ("bf16", "fp8", "gptq", "awq"):
        r = runs.get(f"{kind}-{q}")
        value = r and r.get(key)
        ratio = f"{value / base:.2f}x bf16" if value and base else "-"
        print(f"{kind:10} {q:5} {key} = {value if value else 'missing'}  {ratio} ({better} is better)")
PY
echo "== done at $SECONDS s"
