#!/usr/bin/env bash
# Run one challenge pool as a SLURM job array (one shard per array task), then score it.
#
#   scripts/slurm_pool_array.sh METHOD ORIGINAL_DIR POOL_DIR [N_MODELS] [N_SHARDS] [CACHE_DIR]
#
# submits (from a login node)
#   1. an array of N_SHARDS tasks; task i runs `imgunlearn challenge run ... --shard auto`, which reads
#      SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, so the shards split the pool's members exactly (member k
#      belongs to shard k % N_SHARDS); with a GPU per task (#SBATCH --gres=gpu:1) set DEVICE=cuda;
#   2. a scoring job that starts when every task has succeeded: `imgunlearn challenge score --pool POOL_DIR`.
# A task that dies (time limit, pre-emption) loses only the model it was making: resubmitting the same array
# skips every finished model. Run METHOD=retrain once first to build the shared reference pool, or let the
# first method's array build the retrained half it needs. Point CACHE_DIR at shared storage to reuse retrained
# pools across pool directories. Adjust the #SBATCH lines (partition, GPUs, time) to your cluster.
#
# Inside an array task the script is re-entered with IMGUNLEARN_POOL_TASK=1 and runs its shard.
#SBATCH --job-name=imgunlearn-pool
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=04:00:00
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
METHOD=$1 ORIGINAL=$2 POOL=$3 N_MODELS=${4:-512} N_SHARDS=${5:-64} CACHE=${6:-}
PYTHON=${PYTHON:-python}
CACHE_ARGS=()
if [[ -n "$CACHE" ]]; then CACHE_ARGS=(--cache "$CACHE"); fi

if [[ "${IMGUNLEARN_POOL_TASK:-}" == 1 ]]; then
  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  exec "$PYTHON" -m imgunlearn.cli challenge run --method "$METHOD" --n_models "$N_MODELS" \
    --original "$ORIGINAL" --out "$POOL" ${CACHE_ARGS[@]+"${CACHE_ARGS[@]}"} \
    --shard auto --device "${DEVICE:-cpu}" --threads "$OMP_NUM_THREADS" --no_progress
fi

mkdir -p "$POOL/logs"
array_id=$(sbatch --parsable --array="0-$((N_SHARDS - 1))" --output="$POOL/logs/shard-%A_%a.out" \
  --export=ALL,IMGUNLEARN_POOL_TASK=1 "$0" "$@")
score_id=$(sbatch --parsable --dependency="afterok:${array_id}" --job-name=imgunlearn-score \
  --output="$POOL/logs/score-%j.out" --cpus-per-task=1 --time=00:30:00 \
  --wrap="$PYTHON -m imgunlearn.cli challenge score --pool '$POOL'")
echo "submitted shards as job array ${array_id} (${N_SHARDS} tasks) and scoring as job ${score_id}"
