#!/usr/bin/env bash
# Fast-HuBERT Base pretraining on several GPU nodes under SLURM: srun starts one torchrun per node, and
# torchrun one fast-hubert-hydra-train process per GPU (fairseq reads the ranks from torchrun's environment).
#
#   sbatch examples/slurm/pretrain.sh DATA LABELS [KEY=VALUE ...]
#
# DATA holds train.tsv, valid.tsv and cmvn.npz (fast-hubert-cmvn); LABELS {train,valid}.km and dict.km.txt.
# KEY=VALUE are fairseq-hydra-train overrides, applied last (model.label_rate=100 for 100 Hz labels). Submit from the environment of `make setup-gpu` (sbatch passes
# it on); the run folder must be on a file system all nodes share.
# The batch per update is GPUs x dataset.max_tokens x optimization.update_freq: the 8-GPU config
# (fast_hubert_base_librispeech, 350 s per GPU) keeps HuBERT-Base's 2,800 s on the 2 nodes x 4 GPUs below;
# on 2 nodes x 8 GPUs add dataset.max_tokens=17500 (README, "Multi-GPU and multi-node").
# Preempted or out of time: submit the same command again; fairseq resumes from RUN_DIR/checkpoints.
# Environment: CONFIG (fast_hubert_base_librispeech), RUN_DIR (outputs/$CONFIG), MASTER_PORT (29500).
#SBATCH --job-name=fast_hubert_base
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=2-00:00:00
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: sbatch $0 DATA LABELS [KEY=VALUE ...]" >&2
  exit 2
fi
DATA=$(realpath "$1") LABELS=$(realpath "$2")
shift 2
CONFIG=${CONFIG:-fast_hubert_base_librispeech}
RUN_DIR=$(realpath -m "${RUN_DIR:-outputs/$CONFIG}")
# the first node of the job hosts torchrun's rendezvous (sed reads every line: head would end the pipe
# early, and pipefail would fail the job)
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)
export DATA LABELS CONFIG RUN_DIR MASTER_ADDR
export MASTER_PORT=${MASTER_PORT:-29500}
export GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-4}
CONFIG_DIR=$(python -m fast_hubert_plugin.config pretraining)
USER_DIR=$(python -m fast_hubert_plugin.config user-dir)
export CONFIG_DIR USER_DIR

# single quotes: each node's task expands its own SLURM_NODEID
srun --kill-on-bad-exit=1 bash -c 'exec torchrun --nnodes "$SLURM_NNODES" --node_rank "$SLURM_NODEID" \
  --nproc_per_node "$GPUS_PER_NODE" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  "$(which fast-hubert-hydra-train)" --config-dir "$CONFIG_DIR" --config-name "$CONFIG" \
  common.user_dir="$USER_DIR" hydra.run.dir="$RUN_DIR" task.data="$DATA" task.label_dir="$LABELS" \
  "task.labels=[km]" model.label_rate=50 "$@"' fast_hubert_node "$@"
