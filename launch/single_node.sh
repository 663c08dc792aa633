#!/usr/bin/env bash
# One node, NPROC processes: NPROC/TP sampling replicas (TP GPUs each) and NPROC training processes.
#
#   NPROC=8 launch/single_node.sh configs/demo.yaml --run-dir runs/demo-8gpu [--set key=value ...]
#   NPROC=2 launch/single_node.sh configs/demo.yaml --run-dir runs/demo-cpu2   # CPU: 2 gloo processes
#
# Environment (all optional):
#   NPROC              processes on this node, one per GPU (default: GPUs visible, else 1)
#   LAUNCHER           torchrun (default) or accelerate             -> train.launch.launcher
#   DEEPSPEED          DeepSpeed JSON for torchrun, e.g. configs/deepspeed/zero2.json -> train.launch.deepspeed
#   ACCELERATE_CONFIG  accelerate YAML, e.g. configs/accelerate/zero3.yaml (sets LAUNCHER=accelerate)
#   TP                 GPUs per sampling replica (default 1)         -> sampling.tensor_parallel_size
# Everything else is `starloop run`'s own arguments; a --set given here wins over these defaults.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${STARLOOP:-}" ]; then
  if command -v starloop >/dev/null 2>&1; then STARLOOP=starloop; else STARLOOP="$REPO/.venv/bin/starloop"; fi
fi

if [ -z "${NPROC:-}" ]; then
  NPROC=$(nvidia-smi -L 2>/dev/null | wc -l || true)
  [ "${NPROC:-0}" -ge 1 ] || NPROC=1
fi
TP=${TP:-1}
if [ $((NPROC % TP)) -ne 0 ]; then
  echo "NPROC=$NPROC is not a multiple of TP=$TP" >&2
  exit 2
fi
LAUNCHER=${LAUNCHER:-torchrun}
[ -n "${ACCELERATE_CONFIG:-}" ] && LAUNCHER=accelerate

ARGS=(--set "train.launch.launcher=$LAUNCHER" --set "train.launch.num_processes=$NPROC" --set "train.launch.num_machines=1"
      --set "sampling.data_parallel_size=$((NPROC / TP))" --set "sampling.tensor_parallel_size=$TP")
[ -n "${DEEPSPEED:-}" ] && ARGS+=(--set "train.launch.deepspeed=$DEEPSPEED")
[ -n "${ACCELERATE_CONFIG:-}" ] && ARGS+=(--set "train.launch.accelerate_config=$ACCELERATE_CONFIG")

set -x
exec $STARLOOP run "${ARGS[@]}" "$@"
