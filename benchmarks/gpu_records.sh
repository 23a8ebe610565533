#!/usr/bin/env bash
# The GPU records of the speed claims, in one run of about 7 minutes on one H100/H200, on a GPU machine
# without network: the project's checkout, a bundle of its pure-Python dependencies and a speech subset
# carried beside it (see benchmarks/README.md, "GPU records").
#   1. train step, Base, bf16 autocast: stock fairseq HuBERT, fast_hubert, + ILS, and the levers, at
#      4 x 9 s, 8 x 11 s (the Base configs' 87.5 s per GPU) and 16 x 9 s, fbank inside fast_hubert's step;
#      each system's largest batch of 9 s utterances within 80 GiB                  (train_step_speed.py)
#   2. a profile of fast_hubert's step at 8 x 11 s (what bounds it)                  (train_step_speed.py)
#   3. end to end: fairseq-hydra-train with the Base configs, 300 updates, 2 loader workers, fast_hubert vs
#      stock HuBERT; then fp16 / bf16 / amp pretraining (+ ILS) and fine-tuning        (e2e_throughput.py)
# Usage: benchmarks/gpu_records.sh OUT SPEECH_DIR [cpu]
#   OUT: where the records go; SPEECH_DIR: a speech folder (speech-folder manifests, see benchmarks/README.md)
#   holding librispeech_train_clean_100.tsv; "cpu": the rehearsal (tiny shapes and runs, no GPU needed).
set -uo pipefail
OUT=$(realpath "$1"); SPEECH=$(realpath "$2"); MODE=${3:-cuda}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"; cd "$REPO" || exit 2
export PYTHONUNBUFFERED=1
SECONDS=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  python3 -c "import torch, fairseq, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'fairseq', fairseq.__version__, 'cuda', torch.version.cuda)"
  nproc; } > "$OUT/machine.txt" 2>&1
if [ "$MODE" = cpu ]; then
  STEP=(--device cpu --dtype bf16 --shapes 1x2,2x1.5 --repeats 1 --largest 1 --largest-limit 8 --threads 2)
  PROFILE=(--device cpu --dtype bf16 --shapes 1x2 --profile fast --profile-rows 15)
  E2E=(--tiny --updates 12 --skip 4 --log-interval 2 --repeat 10 --precision-updates 4 --workers 2)
else
  STEP=(--device cuda --dtype bf16 --shapes 4x9,8x11,16x9 --repeats 10,10,10 --largest 9)
  PROFILE=(--device cuda --dtype bf16 --shapes 8x11 --profile fast --profile-rows 25)
  E2E=(--updates 300 --skip 50 --log-interval 25 --repeat 60 --precision-updates 20 --workers 2)
fi
timeout 200 python3 benchmarks/train_step_speed.py --speech-dir "$SPEECH" --no-ablations "${STEP[@]}" \
  --output "$OUT/train_step_${MODE}_bf16.md" > "$OUT/train_step.log" 2>&1; echo "train step: exit $? at ${SECONDS}s"
timeout 45 python3 benchmarks/train_step_speed.py --speech-dir "$SPEECH" --no-ablations --no-levers "${PROFILE[@]}" \
  > "$OUT/profile_fast.txt" 2>&1; echo "profile: exit $? at ${SECONDS}s"
timeout 300 python3 benchmarks/e2e_throughput.py --speech-dir "$SPEECH" --work-dir /tmp/e2e_work "${E2E[@]}" \
  --timeout 120 --output "$OUT/e2e_throughput_${MODE}.md" > "$OUT/e2e.log" 2>&1; echo "e2e: exit $? at ${SECONDS}s"
tail -n 40 "$OUT/train_step_${MODE}_bf16.md" "$OUT/e2e_throughput_${MODE}.md" 2>/dev/null | grep "^|" | cut -c1-200
