#!/usr/bin/env bash
# Issue 19 item 1's end-to-end measurement of long prompts, for one H200 (the device tool's
# nvidia-h200), in one call of at most ~4 minutes (each step has its own timeout, so one hang
# costs only its step). Each step is benchmarks/long_prompt.py: fresh random prompts, 1 output
# token, random weights, seconds per request (median) and the prefill's TFLOP/s:
#   1. 32,000 tokens, 7B shape (the issue's 1.43 s case; 4 chunks of 8,192), with a kernel profile;
#   2. 8,000 tokens, 7B shape;
#   3. 131,000 tokens, Qwen3-0.6B shape, YaRN x4 (`--rope-scaling`, `--max-model-len 131072`);
#   4. the 32,000-token case again with the unified kernel alone (the before), profiled;
#   5. 131,000 tokens at the 7B shape with YaRN (one request).
# Everything printed goes to $OUT/run.log, each step's result to $OUT/<step>.json.
#   OUT=$OUT bash benchmarks/long_prompt_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-long-prompt}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1

source benchmarks/gpu_step.sh

nvidia-smi -L
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log -1 --format='commit %h %s' 2>/dev/null
L="$PY benchmarks/long_prompt.py"
YARN='{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}'
# Warm-up requests of 8,192 tokens compile the kernels without paying for a long prompt.
step 32k 50 $L --input-len 32000 --max-model-len 32768 --warmup-len 8192 --iters 3 --profile \
  --output-json "$OUT/32k.json"
step 8k 35 $L --input-len 8000 --iters 3 --output-json "$OUT/8k.json"
step 128k-yarn-qwen3-0.6b 50 $L --shape qwen3-0.6b --input-len 131000 --max-model-len 131072 \
  --rope-scaling "$YARN" --warmup-len 8192 --iters 2 --output-json "$OUT/128k-qwen3-0.6b.json"
step 32k-unified 45 $L --input-len 32000 --max-model-len 32768 --warmup-len 8192 --iters 2 --profile \
  --attention unified --output-json "$OUT/32k-unified.json"
step 128k-yarn-7b 55 $L --input-len 131000 --max-model-len 131072 --rope-scaling "$YARN" --warmup 0 \
  --iters 1 --output-json "$OUT/128k-7b.json"
echo "== results"
$PY - "$OUT" <<'PYEOF'
import glob, json, sys
for path in sorted(glob.glob(f"{sys.argv[1]}/*.json")):
    r = json.load(open(path))
    print(f"{r['shape']:<11} {r['input_len']:>6} in, {r['attention']:<8} {r['median_s']:.3f} s, prefill "
          f"{r['tflops_per_s']} TFLOP/s; GPU ms {r.get('gpu_ms')}, attention {r.get('attention_tflops_per_s')} TFLOP/s")
PYEOF
