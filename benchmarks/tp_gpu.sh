#!/usr/bin/env bash
# Issue 18's 2-GPU measurement, for a host with 2 GPUs (the device tool's nvidia-h200-x2), in
# one call of at most BUDGET_S (530) seconds: every step runs under `timeout`, cut to what is
# left of the budget (a step with nothing left is skipped), and the script prints each step's
# exit code and time, then which ember processes and GPU processes are left.
#   1. all-reduce microbenchmark: NCCL against the one-shot path through symmetric memory,
#      7 KB .. 4 MB bf16, eager and CUDA-graphed, results checked equal (allreduce_gpu.py); if
#      it fails, the rest of the run has the one-shot path switched off (NCCL alone);
#   2. the tensor-parallel GPU tests: shutdown first (a TP=2 LLM process exits within 5 s of its
#      last request; `ember serve -tp 2` exits 0 after SIGTERM; needs fastapi and uvicorn, else
#      skipped), then the one-shot all-reduce equal to NCCL's (eager, in a CUDA graph) and TP=2
#      greedy tokens equal to TP=1 (NCCL, CUDA graphs on each rank);
#   3. batch-1 latency (7B shape, 64 in / 256 out, 2 warm-up + 5 iterations), TP=1 then TP=2,
#      then TP=2 with programmatic dependent launch off (EMBER_PDL=0: what it saves);
#   4. where a batch-1 decode step's time goes on rank 0, TP=1 then TP=2 (torch.profiler: GPU
#      kernels by group, the GPU's idle gaps and the host calls during them; cProfile of the
#      driver's host functions; tp_profile.py), and TP=2 at batch 64;
#   5. rand7b, greedy, TP=1 then TP=2, each in its own process: throughput and the token-for-
#      token comparison (NUM_PROMPTS=N takes the first N of the 128 requests, 64 by default).
# Everything goes to $OUT/tp_gpu.log; the JSON results beside it (6 files). Record in
# docs/benchmarks.md. TP_STEPS="latency_tp1 latency_tp2 ..." runs only the steps named.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks/*.py import ember from the checkout
export PYTHONUNBUFFERED=1
# NVLink multicast stays off (the device README: it can take the host's GPUs down).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
PY=${PY:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}/ember-tp}
NUM_PROMPTS=${NUM_PROMPTS:-64}
BUDGET_S=${BUDGET_S:-530}
mkdir -p "$OUT"
LOG="$OUT/tp_gpu.log"
STEPS=$(mktemp -d)
: > "$LOG"
SUMMARY=()
LAST_CODE=0

left_behind() {
  local workers="" gpu c args
  for c in /proc/[0-9]*/cmdline; do
    args=$(tr '\0' ' ' < "$c" 2>/dev/null) || continue
    case $args in *ember.executor.mp_worker*|*ember.entrypoints*) workers+="${c//[!0-9]/} $args; ";; esac
  done
  gpu=$(nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader 2>/dev/null || true)
  echo "    ember processes left: ${workers:-none}"
  echo "    GPU processes left: ${gpu:-none}"
}

# step NAME LIMIT_S COMMAND...: runs COMMAND under `timeout`, its output into the log, then
# prints the tail, the exit code and time, and what is left running.
step() {
  local name=$1 limit=$2 start=$SECONDS code
  shift 2
  if [ -n "${TP_STEPS:-}" ] && [[ " $TP_STEPS " != *" $name "* ]]; then return; fi
  local left=$((BUDGET_S - SECONDS))
  if (( left < 10 )); then
    echo "=== $name: SKIPPED (the ${BUDGET_S} s budget is spent)" | tee -a "$LOG"
    SUMMARY+=("$name: SKIPPED (budget)")
    return
  fi
  (( limit > left )) && limit=$left
  echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
  timeout -k 5 "$limit" "$@" > "$STEPS/$name.log" 2>&1
  code=$?
  cat "$STEPS/$name.log" >> "$LOG"
  tail -n 12 "$STEPS/$name.log"
  local verdict="exit $code after $((SECONDS - start)) s"
  [ "$code" = 124 ] || [ "$code" = 137 ] && verdict="$verdict (TIMED OUT)"
  echo "=== $name: $verdict" | tee -a "$LOG"
  left_behind | tee -a "$LOG"
  SUMMARY+=("$name: $verdict")
  LAST_CODE=$code
}

nvidia-smi -L | tee -a "$LOG"
$PY -c 'import torch, torch.distributed as d; print("torch", torch.__version__, "cuda", torch.version.cuda,
"nccl", torch.cuda.nccl.version(), "gpus", torch.cuda.device_count(),
"abort", hasattr(d.distributed_c10d, "_abort_process_group"),
"one-shot op", hasattr(getattr(torch.ops, "symm_mem", None), "one_shot_all_reduce_copy_out"),
"peer access 0->1", torch.cuda.device_count() > 1 and torch.cuda.can_device_access_peer(0, 1))' 2>&1 | tee -a "$LOG"
nvidia-smi topo -m 2>&1 | head -n 4 | tee -a "$LOG"

TESTS=tests/distributed/test_tensor_parallel_gpu.py
step allreduce_bench 60 $PY benchmarks/allreduce_gpu.py --out "$OUT/allreduce.json"
if [ "$LAST_CODE" != 0 ]; then
  # A set-up that fails or hangs there would in every engine: the rest of the run measures NCCL.
  export EMBER_ALLREDUCE_USE_SYMM_MEM=0
  echo "=== the all-reduce microbenchmark failed: one-shot path switched off for the rest of the run" | tee -a "$LOG"
fi
step shutdown_tests 140 $PY -m pytest -v -s -p no:cacheprovider -o faulthandler_timeout=100 "$TESTS" -k exits
step greedy_and_allreduce_tests 200 $PY -m pytest -v -s -p no:cacheprovider -o faulthandler_timeout=150 \
  tests/distributed/test_all_reduce_gpu.py "$TESTS" -k "greedy or one_shot"
LATENCY=(-m ember.entrypoints.cli bench latency --model qwen2.5-7b --batch-size 1 --input-len 64 --output-len 256
         --num-iters-warmup 2 --num-iters 5 --max-num-seqs 8)
step latency_tp1 50 $PY "${LATENCY[@]}" -tp 1 --output-json "$OUT/latency_tp1.json"
step latency_tp2 55 $PY "${LATENCY[@]}" -tp 2 --output-json "$OUT/latency_tp2.json"
EMBER_PDL=0 step latency_tp2_nopdl 55 $PY "${LATENCY[@]}" -tp 2 --output-json "$OUT/latency_tp2_nopdl.json"
step profile_tp1 60 $PY benchmarks/tp_profile.py --tp 1
step profile_tp2 60 $PY benchmarks/tp_profile.py --tp 2
step profile_tp2_b64 70 $PY benchmarks/tp_profile.py --tp 2 --batch 64
step rand7b_tp1 75 $PY benchmarks/tp_rand7b.py --tp 1 --num-prompts "$NUM_PROMPTS" --out "$OUT/rand7b_tp1.json"
step rand7b_tp2 75 $PY benchmarks/tp_rand7b.py --tp 2 --num-prompts "$NUM_PROMPTS" --out "$OUT/rand7b_tp2.json"
step rand7b_compare 10 $PY benchmarks/tp_rand7b.py --compare "$OUT/rand7b_tp1.json" "$OUT/rand7b_tp2.json"

echo "=== summary" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG"
grep -h -E "^(TP=|Throughput:|Output throughput|Avg time per output token|Avg latency|all-reduce|GPU busy|wall time)|^  (all-reduce|other collectives|GEMM|attention|other) |^ +[0-9]+ +[0-9]+ \||exit code .* after" \
  "$STEPS"/*.log | tee -a "$LOG"
