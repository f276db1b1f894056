#!/usr/bin/env bash
# Two independent jobs side by side on a 2-GPU host (the device tool's nvidia-h200-x2), one per
# GPU, each with its own Triton cache, so a device call's time serves two measurements; then
# everything under one archive, since the device returns only a few files from $OUT.
#   bash benchmarks/gpu_pair.sh "JOB FOR GPU 0" "JOB FOR GPU 1"
# Each job is a bash command line run from the repository root with OUT set to its own folder
# (OUT=$OUT/gpu0 or $OUT/gpu1); its output goes to $OUT/gpuN.log. At the end: $OUT/pair.tgz
# (the two folders and logs) and the logs' last lines.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-${TMPDIR:-/tmp}/ember-pair}
WORK=$(mktemp -d)
for gpu in 0 1; do
  job=${1:-true}; shift || true
  mkdir -p "$WORK/gpu$gpu"
  (export CUDA_VISIBLE_DEVICES=$gpu TRITON_CACHE_DIR="$WORK/triton$gpu" OUT="$WORK/gpu$gpu"
   bash -c "$job") > "$WORK/gpu$gpu.log" 2>&1 &
done
wait
mkdir -p "$OUT"
tar czf "$OUT/pair.tgz" -C "$WORK" gpu0 gpu1 gpu0.log gpu1.log
for gpu in 0 1; do echo "== GPU $gpu"; tail -n 25 "$WORK/gpu$gpu.log"; done
