#!/usr/bin/env bash
# Issue 7's GPU measurement, for one GPU (the device tool's nvidia-h100-x1):
#   1. the quantized-model tests on the GPU (Triton int4/int8/fp8 GEMMs against the reference);
#   2. rand7b at bf16, with the fp8 (e5m2) KV cache, and with GPTQ int4 weights, each in its own
#      process; each log states the weights' size and the KV cache's tokens.
#   3. the GPU correctness and kernel tests, and the seed workload, as a regression check.
# Everything printed goes to $OUT/run.log, the results to $OUT/*.json (the device tool returns
# only a few files). Record the rows in docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-quant}
mkdir -p "$OUT"
B="$PY -m ember.entrypoints.bench.cli"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/run.log") 2>&1
nvidia-smi -L
$PY -m pytest -q -s tests/quantization/test_gpu_quantized.py 2>&1 | grep -E "max abs|passed|failed|error" 
for variant in bf16 fp8kv gptq; do
  case $variant in
    bf16) flags=() ;;
    fp8kv) flags=(--kv-cache-dtype fp8_e5m2) ;;
    gptq) flags=(--quantization gptq) ;;
  esac
  echo "== rand7b $variant"
  $B throughput --workload rand7b --backend ember "${flags[@]}" --output-json "$OUT/rand7b-$variant.json" 2>&1 |
    grep -E "weights take|KV cache:|Throughput|Error"
done
echo "== seed"
$B throughput --workload seed --backend ember --output-json "$OUT/seed.json" 2>&1 | grep -E "Throughput|Error"
$PY -m pytest -q tests/gpu tests/kernels 2>&1 | tail -5
