#!/usr/bin/env bash
# Issue 17's GPU measurement, for one H200 (the device tool's nvidia-h200), in one call of at
# most ~9.7 minutes (each step has its own timeout, so one hang costs only its step):
#   1. the quantized GEMM paths ember/quantization/gemm_paths.py's tables can choose, against
#      bf16 cuBLAS on the 7B shapes at M = 1, 16, 256, 4096 (benchmarks/quant_gemm_gpu.py): the
#      fastest path per M and each table's pick;
#   2. the quantized-model GPU tests (prompt logprobs and greedy tokens of every format against
#      its dequantized bf16 twin) and the quantized kernel tests on the GPU;
#   3. rand7b throughput (the first $PROMPTS requests) and batch-1 latency (64 in / 256 out) for
#      bf16, fp8, gptq and awq weights, each in its own process.
# Everything printed goes to $OUT/run.log; the GEMM timings to $OUT/gemm.json and the bench
# results to $OUT/bench.json (the device tool returns at most 8 files). Record the rows in
# docs/benchmarks.md.
#   OUT=$OUT bash benchmarks/quant_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-quant}
PROMPTS=${PROMPTS:-64}
RUNS=$(mktemp -d)  # one JSON per bench run, gathered into $OUT/bench.json at the end
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
B="$PY -m ember.entrypoints.bench.cli"

source benchmarks/gpu_step.sh

nvidia-smi -L
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log -1 --format='commit %h %s' 2>/dev/null
[ -n "${SKIP_GEMM:-}" ] || step gemm 150 $PY benchmarks/quant_gemm_gpu.py --formats bf16,int4,fp8,fp8-block,int8 --out "$OUT/gemm.json"
step gpu-quantized-tests 100 $PY -m pytest -q -s -p no:cacheprovider tests/quantization/test_gpu_quantized.py
step kernel-tests 90 $PY -m pytest -q -p no:cacheprovider tests/kernels/test_quant_gemm.py \
  tests/kernels/test_quant_fp8_w8a8.py tests/kernels/test_quant_linear_paths.py
quantization() { [ "$1" = bf16 ] || echo "--quantization $1"; }
# bf16 took 24 s (throughput) and 20 s (latency) on the H200, start-up included.
for q in bf16 fp8 gptq awq; do
  step "throughput-$q" 35 $B throughput --workload rand7b --num-prompts "$PROMPTS" --backend ember \
    $(quantization $q) --output-json "$RUNS/throughput-$q.json"
done
for q in bf16 fp8 gptq awq; do
  step "latency-$q" 25 $B latency --batch-size 1 --input-len 64 --output-len 256 --num-iters-warmup 1 \
    --num-iters 3 $(quantization $q) --output-json "$RUNS/latency-$q.json"
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
