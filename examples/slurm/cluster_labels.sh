#!/usr/bin/env bash
# HuBERT-style k-means labels for a large corpus on a SLURM cluster, with no full feature dump on disk:
#   1. fast-hubert-dump --sample-fraction: features of a random sample of the training utterances,
#      one job per shard (a job array);
#   2. fast-hubert-learn-kmeans on that sample: one job;
#   3. fast-hubert-label: every utterance of each split labelled on the fly, one job per shard; the job
#      that finds all shards done writes {split}.km and dict.km.txt (checked as the pretraining task does).
# Each step waits for the one before (--dependency=afterok). After a failure, submit the same command
# again: finished shards are skipped, unfinished ones are redone.
#
# usage: examples/slurm/cluster_labels.sh DATA OUT FEATURE_FLAGS...
#   DATA           folder with {split}.tsv fairseq manifests (train.tsv is sampled for k-means)
#   OUT            work folder: OUT/sample (the sampled dump), OUT/km.npy (centroids), OUT/labels
#   FEATURE_FLAGS  the features, as fast-hubert-dump and fast-hubert-label take them, e.g.
#                  --feature layer --checkpoint outputs/it1/checkpoints/checkpoint_best.pt --layer 6
#                  --feature mfcc   (iteration 1; then LABEL_RATE=50)
# Environment (defaults in brackets):
#   NSHARD [8] jobs per array; N_CLUSTERS [500]; SAMPLE_FRACTION [0.1] of the training utterances;
#   MAX_FRAMES [2000000] sampled frames k-means keeps (memory: frames x dim x 4 bytes);
#   LABEL_RATE [the features' rate: 25 for a fast_hubert layer]; SPLITS ["train valid"];
#   SBATCH_ARGS [""] e.g. "--partition gpu --gres gpu:1 --cpus-per-task 8 --time 4:00:00";
#   SBATCH [sbatch] the submitting command.
# Pretrain with task.label_dir=OUT/labels task.labels='["km"]' model.label_rate=LABEL_RATE.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d'
  exit 2
fi
DATA=$1 OUT=$2
shift 2
FEATURES=$(printf '%q ' "$@")
NSHARD=${NSHARD:-8} N_CLUSTERS=${N_CLUSTERS:-500} SAMPLE_FRACTION=${SAMPLE_FRACTION:-0.1}
MAX_FRAMES=${MAX_FRAMES:-2000000} SPLITS=${SPLITS:-train valid} SBATCH=${SBATCH:-sbatch}
RATE=${LABEL_RATE:+--label-rate $LABEL_RATE}
ARRAY="--array=0-$((NSHARD - 1))"
RANK='--nshard '$NSHARD' --rank $SLURM_ARRAY_TASK_ID'  # expanded by each array job, not here
mkdir -p "$OUT/logs"
submit() {  # submit NAME DEPENDENCY [ARRAY] COMMAND: prints the job id
  local name=$1 after=$2 array=$3 cmd=$4
  # shellcheck disable=SC2086  # SBATCH_ARGS and the array flag are lists of words
  $SBATCH --parsable --job-name "$name" ${after:+--dependency=afterok:$after} $array ${SBATCH_ARGS:-} \
    --output "$OUT/logs/$name-%A_%a.log" --wrap "$cmd"
}
dump=$(submit sample "" "$ARRAY" \
  "fast-hubert-dump $(printf '%q' "$DATA/train.tsv") $(printf '%q' "$OUT/sample") $FEATURES \
   --sample-fraction $SAMPLE_FRACTION $RANK")
learn=$(submit learn "$dump" "" \
  "fast-hubert-learn-kmeans $(printf '%q' "$OUT/sample") train $(printf '%q' "$OUT/km.npy") \
   --n-clusters $N_CLUSTERS --max-frames $MAX_FRAMES")
for split in $SPLITS; do
  label=$(submit "label_$split" "$learn" "$ARRAY" \
    "fast-hubert-label $(printf '%q' "$DATA/$split.tsv") $(printf '%q' "$OUT/km.npy") \
     $(printf '%q' "$OUT/labels") $FEATURES $RATE $RANK")
  echo "submitted: sample $dump, learn $learn, label $split $label"
done
