#!/usr/bin/env bash
# The host-step work's effect on the GPU (benchmarks/host_step_cpu.py measured it on the CPU
# only), on one H200 (the device tool's nvidia-h200), about 3 minutes:
#   1. nano: `ember bench throughput --workload nano` (first run also compiles: see "ready in");
#   2. nano-again: the same, warm: its wall time against the 6.45 s before this work;
#   3. profile-nano: benchmarks/step_profile.py --workload nano --idle: GPU busy time, idle
#      share and the host calls during the long gaps (before: ~5.66 s busy, ~12% idle).
# Everything printed goes to $OUT/host_step.log, the results to $OUT/nano*.json and the profile
# to $OUT/profile-nano.txt.
#   OUT=$OUT bash benchmarks/host_step_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-host-step}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/host_step.log") 2>&1
B="$PY -m ember.entrypoints.bench.cli"
source benchmarks/gpu_step.sh

gpu_header
step nano 120 $B throughput --workload nano --output-json "$OUT/nano.json"
step nano-again 90 $B throughput --workload nano --output-json "$OUT/nano-again.json"
step profile-nano 180 $PY benchmarks/step_profile.py --workload nano --idle --out "$OUT/profile-nano.txt"
