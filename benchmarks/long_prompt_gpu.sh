#!/usr/bin/env bash
# Issue 19 item 1's GPU measurement of long prompts, for one H200 (the device tool's nvidia-h200),
# in one call of at most 4 minutes (each step has its own timeout, so one hang costs only its step):
#   0. the GPU-marked tests of the prefill paths (7B shape, bf16, against the reference; a 3000-token
#      prompt through the engine on cuDNN and on Triton against transformers);
#   1. kernels: benchmarks/prefill_attention_gpu.py for the engine's attention call, the unified
#      kernel alone (the before), the Triton prefill kernel, cuDNN for a lone sequence and FA2 at
#      8k, an 8k chunk over 24k, 32k and 128k tokens, then each one's first call at new lengths;
#   2-6. end to end, benchmarks/long_prompt.py (fresh random prompts, 1 output token, random
#      weights; seconds per request in order, median, prefill TFLOP/s): 32,000 tokens at the 7B
#      shape as the engine runs (profiled: GPU ms in attention, GEMMs, the rest), 8,000 tokens,
#      131,000 tokens at the Qwen3-0.6B shape with YaRN x4 (`--rope-scaling`, `--max-model-len
#      131072`), then 32,000 tokens on the Triton kernels only and on the unified kernel alone
#      (the before, profiled).
# Everything printed goes to $OUT/run.log, each end-to-end result to $OUT/<step>.json. STEPS
# (default: all) picks some by name, e.g. STEPS="gpu-tests 32k 8k 128k-yarn-qwen3-0.6b".
#   OUT=$OUT bash benchmarks/long_prompt_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-long-prompt}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source benchmarks/gpu_step.sh
STEPS=${STEPS:-gpu-tests kernels 32k 8k 128k-yarn-qwen3-0.6b 32k-triton 32k-unified}
pick() {  # pick NAME LIMIT COMMAND...: the step, if STEPS names it
  [[ " $STEPS " == *" $1 "* ]] && step "$@"
}

gpu_header
L="$PY benchmarks/long_prompt.py"
YARN='{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}'
pick gpu-tests 35 $PY -m pytest -q -p no:cacheprovider -m gpu tests/kernels/test_prefill_attention.py \
  tests/kernels/test_prefill_attention_dense.py
pick kernels 25 $PY benchmarks/prefill_attention_gpu.py --paths engine,triton-unified,triton-prefill,cudnn-lone,cudnn-lone-repeated,aten-flash-gqa \
  --cases 8k,chunk,32k,128k --sweep '' --budget 22
# Warm-up requests of 8,192 tokens compile the kernels without paying for a long prompt.
pick 32k 40 $L --input-len 32000 --max-model-len 32768 --warmup-len 8192 --iters 3 --profile \
  --output-json "$OUT/32k.json"
pick 8k 45 $L --input-len 8000 --iters 3 --output-json "$OUT/8k.json"
pick 128k-yarn-qwen3-0.6b 40 $L --shape qwen3-0.6b --input-len 131000 --max-model-len 131072 \
  --rope-scaling "$YARN" --warmup-len 8192 --iters 2 --output-json "$OUT/128k-qwen3-0.6b.json"
pick 32k-triton 35 $L --input-len 32000 --max-model-len 32768 --warmup-len 8192 --iters 2 --attention triton \
  --output-json "$OUT/32k-triton.json"
pick 32k-unified 35 $L --input-len 32000 --max-model-len 32768 --warmup-len 8192 --iters 2 --profile \
  --attention unified --output-json "$OUT/32k-unified.json"
echo "== results"
$PY - "$OUT" <<'PYEOF'
import glob, json, sys
for path in sorted(glob.glob(f"{sys.argv[1]}/*.json")):
    r = json.load(open(path))
    print(f"{r['shape']:<11} {r['input_len']:>6} in, {r['attention']:<8} {r['median_s']:.3f} s (in order "
          f"{[round(t, 3) for t in r['seconds']]}), prefill {r['tflops_per_s']} TFLOP/s; GPU ms {r.get('gpu_ms')}, "
          f"attention {r.get('attention_tflops_per_s')} TFLOP/s")
PYEOF
