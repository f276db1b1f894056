# Sourced by the GPU scripts: step NAME SECONDS COMMAND... runs COMMAND with a time limit and
# says how it ended, so one hang costs only its own step of a device call.
step() {
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout -k 5 "$limit" "$@"
  echo "== $name: exit $? after $((SECONDS - start)) s"
}

# What the log's numbers ran on: the GPUs, torch and Triton, the commit.
gpu_header() {
  nvidia-smi -L
  ${PY:-python3} -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  git log -1 --format='commit %h %s' 2>/dev/null
}
