#!/usr/bin/env bash
# Issue 19's GPU measurement, for one H200 (the device tool's nvidia-h200): Ember against the
# hardware floor (every step: about 8 minutes; STEPS picks). Run it first on a fresh machine: the first
# step's "ready in" is the cold start (Triton's cache empty), the second step's the warm one.
#   1. rand7b (128 requests) cold, then the `seed` workload warm;
#   2. batch-1 latency, 7B shape, 64 in / 256 out;
#   3. nano (256 requests);
#   4. where the GPU time goes (benchmarks/step_profile.py): rand7b's first 64 requests, nano,
#      batch 1, seed: GPU time by kind of kernel and the GPU's idle share;
#   5. decode-sweep: the decode attention's launch knobs swept (benchmarks/decode_attention_gpu.py,
#      ~1 min, TB/s per config), then nano-tuned / rand7b-tuned / latency-tuned: the same runs with
#      the sweep's winner (EMBER_DECODE_ATTENTION), skipped when the winner is the default;
#   6. gemv: Triton's GEMV against cuBLAS for decode's few-row products (benchmarks/gemv_gpu.py,
#      ~30 s), then latency-cublas: batch-1 latency without it (EMBER_GEMV=0);
#   7. latency-nopdl: batch-1 latency with programmatic dependent launch off (EMBER_PDL=0);
#   8. cold-noprecompile: the 7B shape's start with an empty Triton cache again (a fresh
#      TRITON_CACHE_DIR) but without the precompiling children (EMBER_PRECOMPILE=0): against
#      rand7b-cold's "ready in", what they save (the OS's file cache is warm by then).
# Everything printed goes to $OUT/floor.log, the results to $OUT/floor.json and the profiles to
# $OUT/profile-*.txt. STEPS (default: all) picks some, e.g. STEPS="profile-nano nano".
#   OUT=$OUT bash benchmarks/floor_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-floor}
STEPS=${STEPS:-"rand7b-cold seed latency nano profile-rand7b profile-nano profile-batch1 profile-seed decode-sweep nano-tuned rand7b-tuned latency-tuned gemv latency-cublas latency-nopdl cold-noprecompile"}
RUNS=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/floor.log") 2>&1
B="$PY -m ember.entrypoints.bench.cli"
source benchmarks/gpu_step.sh
wanted() { [[ " $STEPS " == *" $1 "* ]]; }

nvidia-smi -L
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
git log -1 --format='commit %h %s' 2>/dev/null
wanted rand7b-cold && step rand7b-cold 90 $B throughput --workload rand7b --output-json "$RUNS/rand7b.json"
wanted seed && step seed 60 $B throughput --workload seed --output-json "$RUNS/seed.json"
wanted latency && step latency 60 $B latency --batch-size 1 --input-len 64 --output-len 256 \
  --num-iters-warmup 2 --num-iters 5 --output-json "$RUNS/latency.json"
wanted nano && step nano 60 $B throughput --workload nano --output-json "$RUNS/nano.json"
P="$PY benchmarks/step_profile.py"
wanted profile-rand7b && step profile-rand7b 120 $P --workload rand7b --num-prompts 64 --out "$OUT/profile-rand7b.txt"
wanted profile-nano && step profile-nano 120 $P --workload nano --out "$OUT/profile-nano.txt"
wanted profile-batch1 && step profile-batch1 60 $P --batch-size 1 --input-len 64 --output-len 256 \
  --out "$OUT/profile-batch1.txt"
wanted profile-seed && step profile-seed 60 $P --workload seed --out "$OUT/profile-seed.txt"
if wanted decode-sweep; then
  step decode-sweep 150 $PY benchmarks/decode_attention_gpu.py --best "$OUT/decode_best.txt"
fi
BEST=$(cat "$OUT/decode_best.txt" 2>/dev/null)
DEFAULT=$($PY -c "import dataclasses as d, ember.kernels.paged_attention as p; t = p.DecodeTuning(); print(','.join(f'{f.name}={getattr(t, f.name)}' for f in d.fields(t)))")
if [[ -n "$BEST" && "$BEST" != "$DEFAULT" ]]; then
  echo "decode attention: sweep winner $BEST (default $DEFAULT)"
  export EMBER_DECODE_ATTENTION=$BEST
  wanted nano-tuned && step nano-tuned 60 $B throughput --workload nano --output-json "$RUNS/nano-tuned.json"
  wanted rand7b-tuned && step rand7b-tuned 60 $B throughput --workload rand7b --output-json "$RUNS/rand7b-tuned.json"
  wanted latency-tuned && step latency-tuned 60 $B latency --batch-size 1 --input-len 64 --output-len 256 \
    --num-iters-warmup 2 --num-iters 5 --output-json "$RUNS/latency-tuned.json"
  unset EMBER_DECODE_ATTENTION
elif [[ -n "$BEST" ]]; then
  echo "decode attention: the default $DEFAULT won the sweep; no tuned runs"
fi
wanted gemv && step gemv 90 $PY benchmarks/gemv_gpu.py
wanted latency-cublas && EMBER_GEMV=0 step latency-cublas 60 $B latency --batch-size 1 --input-len 64 --output-len 256 \
  --num-iters-warmup 2 --num-iters 5 --output-json "$RUNS/latency-gemv.json"
wanted latency-nopdl && EMBER_PDL=0 step latency-nopdl 60 $B latency --batch-size 1 --input-len 64 --output-len 256 \
  --num-iters-warmup 2 --num-iters 5 --output-json "$RUNS/latency-nopdl.json"
wanted cold-noprecompile && TRITON_CACHE_DIR=$(mktemp -d) EMBER_PRECOMPILE=0 step cold-noprecompile 60 \
  $B throughput --workload rand7b --num-prompts 16 --output-json "$RUNS/cold-noprecompile.json"
$PY - "$OUT" "$RUNS" <<'PY'
import glob, json, os, sys
out, runs_dir = sys.argv[1:]
runs = {os.path.basename(p)[:-5]: json.load(open(p)) for p in sorted(glob.glob(f"{runs_dir}/*.json"))}
json.dump(runs, open(f"{out}/floor.json", "w"), indent=1)
for name, r in runs.items():
    value = r.get("output_tokens_per_second") or r.get("time_per_output_token_ms")
    print(f"{name:13} elapsed {r.get('elapsed_time', r.get('avg_latency')):.3f} s  {value:.2f}  "
          f"ready in {r['startup_seconds']:.1f} s")
PY
