#!/usr/bin/env bash
# The GPU records of the speed claims, in one run of about 8 minutes on one H100/H200, on a GPU machine
# without network: the project's checkout, a bundle of its pure-Python dependencies and a speech subset
# carried beside it (see benchmarks/README.md, "GPU records").
#   1. train step, Base, bf16 autocast: stock fairseq HuBERT, fast_hubert, + ILS, and the levers, at
#      4 x 9 s, 8 x 11 s (the Base configs' 87.5 s per GPU) and 16 x 9 s, fbank inside fast_hubert's step;
#      each system's largest batch of 9 s utterances within 80 GiB                  (train_step_speed.py)
#   2. the official Fast-HuBERT code at the same batches and dtype (--official; fetched from
#      yanghaha0908/FastHuBERT, MIT, carried as .gpu_official/fasthubert_official, never committed)
#      and a profile of fast_hubert's step at 8 x 11 s (what bounds it)              (train_step_speed.py)
#   3. end to end: fairseq-hydra-train with the Base configs, 300 updates, 2 loader workers, fast_hubert vs
#      stock HuBERT; then fp16 / bf16 / amp pretraining (+ ILS) and fine-tuning        (e2e_throughput.py)
#   4. (PARTS=demo, run apart: about 10 minutes) the demo with its GPU budget (the same fine-tuning from the
#      pretrained and the never-pretrained model, two seeds of the latter; probes of every upstream, two
#      seeds) on a transcribed speech folder DEMO_SPEECH (speechocean762 layout, see examples/demo.py); its
#      report/results.json is the record that every later demo run shows (commit it as
#      benchmarks/results/demo_gpu.json)
# Usage: [PARTS=step,largest,official,profile,e2e,compile|demo] benchmarks/gpu_records.sh OUT SPEECH_DIR [cpu]
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
PARTS=${PARTS:-step,largest,official,profile,e2e}   # also: compile (torch.compile of the blocks, ~1 min more)
OFFICIAL=${OFFICIAL:-.gpu_official}                # the official code as the package fasthubert_official
if [ "$MODE" = cpu ]; then
  COMMON=(--device cpu --dtype bf16 --threads 2 --repeats 1)
  SHAPES=(--shapes 1x2,2x1.5); BIG=(--shapes 1x2 --largest 1 --largest-limit 8); ONE=(--shapes 1x2)
  E2E=(--tiny --updates 12 --skip 4 --log-interval 2 --repeat 10 --precision-updates 4 --workers 2)
  DEMO=(--budget cuda --clusters 8 --pretrain-updates 3 --probe-updates 4 --probe-utterances 20 --finetune-updates 3)
  DEMO_SPEECH=${DEMO_SPEECH:-tests/data/speech}
else
  COMMON=(--device cuda --dtype bf16 --repeats 10)
  SHAPES=(--shapes 4x9,8x11,16x9); BIG=(--shapes 1x9 --repeats 1 --largest 9); ONE=(--shapes 8x11)
  E2E=(--updates 300 --skip 50 --log-interval 25 --repeat 60 --precision-updates 10 --workers 2)
  DEMO=(); DEMO_SPEECH=${DEMO_SPEECH:-.gpu_demo_speech}
fi
STEP="python3 benchmarks/train_step_speed.py --speech-dir $SPEECH ${COMMON[*]}"
FAILED=""
# run PART SECONDS LOG COMMAND...: the part if PARTS names it, within SECONDS, its output into LOG
run() {
  local name=$1 limit=$2 log=$3; shift 3
  [[ ",$PARTS," == *",$name,"* ]] || return 0
  timeout "$limit" "$@" > "$OUT/$log" 2>&1; local rc=$?
  echo "$name: exit $rc at ${SECONDS}s"; [ "$rc" = 0 ] || FAILED="$FAILED $name"
}
run step 150 step.log $STEP "${SHAPES[@]}" --output "$OUT/train_step_${MODE}_bf16.md"
run largest 75 largest.log $STEP --no-levers "${BIG[@]}" --output "$OUT/train_step_largest_${MODE}_bf16.md"
run official 45 official.log $STEP --official "$OFFICIAL" "${SHAPES[@]}" --output "$OUT/train_step_official_${MODE}_bf16.md"
run compile 65 compile.log $STEP --no-levers --compile --only "fast,fast +compile" "${ONE[@]}" \
  --output "$OUT/train_step_compile_${MODE}_bf16.md"
run profile 40 profile_fast.txt $STEP --no-levers "${ONE[@]}" --profile fast --profile-rows 25
run e2e 270 e2e.log python3 benchmarks/e2e_throughput.py --speech-dir "$SPEECH" --work-dir /tmp/e2e_work "${E2E[@]}" \
  --timeout 100 --output "$OUT/e2e_throughput_${MODE}.md"
run demo 660 demo.log python3 examples/demo.py --device "$MODE" --speech-dir "$DEMO_SPEECH" --work-dir /tmp/demo_work \
  "${DEMO[@]}"
if [[ ",$PARTS," == *",demo,"* && -f /tmp/demo_work/report/results.json ]]; then
  cp /tmp/demo_work/report/results.json "$OUT/demo_${MODE}.json"
  cp /tmp/demo_work/report/summary.md "$OUT/demo_${MODE}_summary.md"
fi
{ grep -h "^| \|largest" "$OUT"/*.md "$OUT/largest.log" 2>/dev/null || true; } | cut -c1-160
[ -z "$FAILED" ] || { echo "failed:$FAILED"; exit 1; }
