#!/usr/bin/env bash
# The GPU records, in one run (about 8 minutes on one H100/H200):
#   1. the control of benchmarks/quality_vs_compute.md: stock fairseq HuBERT and fast_hubert, the same
#      tiny Transformer, the same MFCC units and the same number of updates (UPDATES), pretrained on DATA;
#      their checkpoints (optimizer state dropped, weights in fp16) are probed afterwards on the CPU;
#   2. the exported model on CUDA against CPU (benchmarks/export_gpu_check.py);
#   3. training-step speed, stock HuBERT Base vs fast_hubert Base, bf16 autocast (train_step_speed.py).
# Usage: benchmarks/gpu_runs.sh DATA OUT [UPDATES]
#   DATA: a fairseq manifest pair (train.tsv, valid.tsv), iteration-1 labels (train.km, valid.km,
#         dict.km.txt), cmvn.npz, and audio/speed.tsv (a manifest in the speech folder's format, of
#         utterances of at least 9 s, for the speed benchmark).
set -uo pipefail
DATA=$(realpath "$1"); OUT=$(realpath "$2"); UPDATES=${3:-1000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=$(mktemp -d)
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/logs/machine.txt" 2>&1
python3 -c "import torch, fairseq, platform; print('torch', torch.__version__, 'fairseq', fairseq.__version__, 'python', platform.python_version(), torch.cuda.get_device_name(0))" >> "$OUT/logs/machine.txt" 2>&1

CONFIGS=$(cd "$REPO" && python3 -m fast_hubert_plugin.config pretraining)
pretrain() {  # name, config, extra overrides...
  local name=$1 config=$2; shift 2
  ( time fairseq-hydra-train --config-dir "$CONFIGS" --config-name "$config" \
      common.user_dir="$REPO/fast_hubert_plugin" hydra.run.dir="$RUNS/$name" task.data="$DATA" task.label_dir="$DATA" \
      model.label_rate=50 optimization.max_update="$UPDATES" dataset.num_workers=6 common.log_interval=50 \
      dataset.validate_interval=100000 dataset.validate_interval_updates="$UPDATES" \
      checkpoint.save_interval_updates="$UPDATES" "$@" ) > "$OUT/logs/pretrain_$name.log" 2>&1
  echo "pretrain $name: exit $?"
}
pretrain fast_hubert fast_hubert_tiny_cpu 'model.supervised_layers="[]"'
pretrain hubert hubert_tiny_cpu  # stock fairseq HuBERT with the same tiny Transformer
for name in fast_hubert hubert; do  # each returned file must stay under 16 MiB: fp16 halves, no optimizer
  (cd "$REPO" && python3 benchmarks/stock_control.py pack "$RUNS/$name/checkpoints/checkpoint_last.pt" "$OUT" $name)
done

(cd "$REPO" && python3 benchmarks/export_gpu_check.py "$RUNS/fast_hubert/checkpoints/checkpoint_last.pt" \
   "$RUNS/export" "$DATA/audio" > "$OUT/logs/export_gpu_check.md" 2>&1); echo "export check: exit $?"

(cd "$REPO" && python3 benchmarks/train_step_speed.py --device cuda --dtype bf16 --no-levers \
   --speech-dir "$DATA/audio" --manifest speed.tsv --shapes 4x9,16x9 --repeats 10 \
   --output "$OUT/logs/train_step_gpu_bf16.md" > "$OUT/logs/train_step_gpu_bf16.log" 2>&1); echo "speed: exit $?"
tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$OUT/logs"
