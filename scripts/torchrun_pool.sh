#!/usr/bin/env bash
# Run one challenge pool on the GPUs of one node (or several nodes) with torchrun, one shard per process.
#
#   scripts/torchrun_pool.sh METHOD ORIGINAL_DIR POOL_DIR [N_MODELS] [PROCS_PER_NODE] [CACHE_DIR]
#
# torchrun starts PROCS_PER_NODE processes (default: one per visible GPU); each runs
#   imgunlearn challenge run --method METHOD ... --shard auto --device cuda
# and `--shard auto` reads RANK / WORLD_SIZE, `--device cuda` becomes cuda:LOCAL_RANK, so process r makes the
# members whose index is r modulo WORLD_SIZE on its own GPU. The processes never talk to each other (the pool is
# embarrassingly parallel), so no rendezvous traffic beyond torchrun's start-up. When all have finished, the pool
# is scored once. A process that dies loses only the model it was making: run the script again to resume.
# On several nodes, run the same command on each node with torchrun's --nnodes / --node_rank / --rdzv_endpoint
# (set TORCHRUN_ARGS); WORLD_SIZE then counts every process on every node. Without a GPU, DEVICE=cpu works too.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
METHOD=$1 ORIGINAL=$2 POOL=$3 N_MODELS=${4:-512}
GPUS=$(python -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
PROCS=${5:-$(( GPUS > 0 ? GPUS : 2 ))}
CACHE=${6:-}
DEVICE=${DEVICE:-$([[ "$GPUS" -gt 0 ]] && echo cuda || echo cpu)}
CACHE_ARGS=()
if [[ -n "$CACHE" ]]; then CACHE_ARGS=(--cache "$CACHE"); fi

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# shellcheck disable=SC2086
torchrun --nproc_per_node "$PROCS" ${TORCHRUN_ARGS:---standalone} --no-python \
  imgunlearn challenge run --method "$METHOD" --n_models "$N_MODELS" --original "$ORIGINAL" --out "$POOL" \
  ${CACHE_ARGS[@]+"${CACHE_ARGS[@]}"} --shard auto --device "$DEVICE" --no_progress
imgunlearn challenge score --pool "$POOL"
