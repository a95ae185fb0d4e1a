#!/usr/bin/env bash
# Unlearn (or pretrain) an I2I model on several GPU nodes with SLURM: Lightning DDP, one task per GPU.
#
#   sbatch --nodes=2 scripts/slurm_i2i.sh unlearn RUN_DIR --config configs/method/encoder_teacher.yaml \
#       --config configs/data/synthetic.yaml --model.init_args.model runs/original/model
#   sbatch --nodes=2 scripts/slurm_i2i.sh pretrain RUN_DIR --config configs/experiment/pretrain.yaml \
#       --config configs/model/unet_small.yaml --config configs/data/synthetic.yaml
#
# Every task runs the same `imgunlearn COMMAND` under `srun`; Lightning reads its rank from SLURM (SLURM_PROCID,
# SLURM_LOCALID, SLURM_NODEID), so --trainer.devices must equal the tasks per node and --trainer.num_nodes the
# nodes. All tasks write into RUN_DIR (--out, required with several processes; only global rank zero manages it).
# A job that is stopped (time limit, pre-emption) resumes from RUN_DIR/checkpoints/last.ckpt when resubmitted
# with RESUME=1. Adjust the #SBATCH lines (partition, GPUs per node, time) to your cluster.
#SBATCH --job-name=imgunlearn-i2i
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=08:00:00
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
COMMAND=$1 RUN_DIR=$2
shift 2
NODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
TASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-4}
TASKS_PER_NODE=${TASKS_PER_NODE%%(*}  # SLURM may write e.g. "4(x2)"
RESUME_ARGS=()
if [[ "${RESUME:-0}" == "1" ]]; then RESUME_ARGS=(--ckpt_path last); fi

srun imgunlearn "$COMMAND" --config configs/trainer/gpu_ddp.yaml \
  --trainer.devices "$TASKS_PER_NODE" --trainer.num_nodes "$NODES" \
  --out "$RUN_DIR" "${RESUME_ARGS[@]}" "$@"
