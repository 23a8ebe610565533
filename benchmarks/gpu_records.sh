#!/usr/bin/env bash
# The GPU records of the speed claims, on one H100/H200 without network: the project's checkout, a bundle of
# its pure-Python dependencies and a speech subset carried beside it (see benchmarks/README.md, "GPU records").
# The default parts (issue 32: HuBERT Base's 400k-update iteration in one GPU-day), about 7 minutes with start-up;
# their timeouts add up to 450 s:
#   peak      the chip's bf16 matrix-product peak, 8192^3 products timed with CUDA events: the MFU
#             denominator of the other parts                                                (matmul_peak.py)
#   step      the train step at 8 x 11 s, stock HuBERT vs fast_hubert (+ ILS), bf16 autocast, fbank inside,
#             10 repeats: step time with its spread, counted FLOPs per step and MFU; then the check that
#             forward, criterion and backward run under torch.cuda.set_sync_debug_mode("error"): pass/fail
#                                                                                         (train_step_speed.py)
#   loader    fairseq's batch iterator with 4 loader processes on the node's cores, 2,800 s batches of
#             15.62 s crops, 3 repeats                                                 (loader_throughput.py)
#   e2e1gpu   fairseq-hydra-train on one GPU at 2,800 s per update: fast_hubert's 1-GPU config against stock
#             HuBERT's (its largest per-GPU batch, update_freq making 2,800 s), 4 loader processes: audio-s/s
#             with the spread of the log intervals, GPU-hours for 400k updates, MFU       (e2e_throughput.py)
#             The configs: FAST_1GPU / STOCK_1GPU of config/pretraining (fast_hubert: 1,400 s x update_freq 2;
#             stock: 350 s x update_freq 8).
# Other parts (PARTS=...; the earlier records, each run apart within the device budget):
#   levers    the train step at 4 x 9, 8 x 11 and 16 x 9 s with the lever rows              (train_step_speed.py)
#   largest   each system's largest batch of 9 s utterances within 80 GiB, timed           (train_step_speed.py)
#   official  the official Fast-HuBERT code at the same batches (--official; fetched from yanghaha0908/FastHuBERT,
#             MIT, carried as .gpu_official/fasthubert_official, never committed)         (train_step_speed.py)
#   compile   torch.compile of the blocks; profile: the profile of fast_hubert's step at 8 x 11 s
#   e2e       fairseq-hydra-train with the Base configs (87.5 s per update on one GPU), 300 updates, 2 loader
#             processes; fp16 / bf16 / amp pretraining (+ ILS) and fine-tuning          (e2e_throughput.py)
#   demo      (about 10 minutes) the demo with its GPU budget (the same fine-tuning from the pretrained and the
#             never-pretrained model, two seeds of the latter; probes of every upstream, two seeds) on a
#             transcribed speech folder DEMO_SPEECH (speechocean762 layout, see examples/demo.py); its
#             report/results.json is the record that every later demo run shows (commit it as
#             benchmarks/results/demo_gpu.json)
#   quality   (about 6 minutes) quality at equal GPU time: fast_hubert vs stock HuBERT, both iterations, 1 GPU-minute
#             of pretraining each, every model + fbank + MFCC probed with 3 seeds, and the exported model on CUDA
#             vs CPU, on DEMO_SPEECH (the project's speech copied by tools/offline_gpu/pack_speech.py); commit
#             OUT/quality_vs_gpu_time_cuda.{md,json} and export_gpu_check_cuda.md   (quality_vs_gpu_time.py)
# Usage: [PARTS=peak,step,loader,e2e1gpu|demo|quality|...] benchmarks/gpu_records.sh OUT SPEECH_DIR [cpu]
#   OUT: where the records go; SPEECH_DIR: a speech folder (speech-folder manifests, see benchmarks/README.md)
#   holding librispeech_train_clean_100.tsv; "cpu": the rehearsal (tiny shapes and runs, no GPU needed).
set -uo pipefail
OUT=$(realpath "$1"); SPEECH=$(realpath "$2"); MODE=${3:-cuda}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"; cd "$REPO" || exit 2
WORK=${WORK:-$(mktemp -d)}  # the runs' data and outputs: kept out of OUT (records only)
export PYTHONUNBUFFERED=1
SECONDS=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  python3 -c "import torch, fairseq, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'fairseq', fairseq.__version__, 'cuda', torch.version.cuda)"
  nproc; } > "$OUT/machine.txt" 2>&1
PARTS=${PARTS:-peak,step,loader,e2e1gpu}
OFFICIAL=${OFFICIAL:-.gpu_official}                # the official code as the package fasthubert_official
FAST_1GPU=${FAST_1GPU:-fast_hubert_base_librispeech_1gpu}; STOCK_1GPU=${STOCK_1GPU:-hubert_base_librispeech_1gpu}
if [ "$MODE" = cpu ]; then
  SLOW=${SLOW:-8}  # the parts' timeouts are the GPU budget's: a CPU (the rehearsal) takes longer
  COMMON=(--device cpu --dtype bf16 --threads 2 --repeats 1)
  PEAK_ARGS=(--device cpu --dtype fp32 --n 512 --iters 4)
  STEP_SHAPE=(--shapes 1x2); SHAPES=(--shapes 1x2,2x1.5); BIG=(--shapes 1x2 --largest 1 --largest-limit 8)
  LOADER=(--workers 1 --max-tokens 20000 --batches 2 --warmup 1 --repeats 1)
  E2E1=(--tiny --updates 8 --skip 2 --log-interval 2 --workers 1 --timeout 150 --update-audio 36)
  E2E=(--tiny --updates 12 --skip 4 --log-interval 2 --repeat 10 --precision-updates 4 --workers 2)
  DEMO=(--budget cuda --clusters 8 --pretrain-updates 3 --probe-updates 4 --probe-utterances 20 --finetune-updates 3)
  DEMO_SPEECH=${DEMO_SPEECH:-tests/data/speech}
else
  COMMON=(--device cuda --dtype bf16 --repeats 10)
  PEAK_ARGS=(--device cuda --dtype bf16 --n 8192 --iters 20)
  STEP_SHAPE=(--shapes 8x11); SHAPES=(--shapes 4x9,8x11,16x9); BIG=(--shapes 1x9 --repeats 1 --largest 9)
  LOADER=(--workers 4 --max-tokens 280000 --batches 20 --warmup 3 --repeats 3)
  E2E1=(--updates 25 --skip 5 --log-interval 5 --workers 4 --timeout 115 --update-audio 2800)
  E2E1+=(--fast-config "$FAST_1GPU" --stock-config "$STOCK_1GPU")
  # the former e2e record's batch: the Base configs at HuBERT's 87.5 s per GPU
  E2E=(--updates 300 --skip 50 --log-interval 25 --repeat 60 --precision-updates 10 --workers 2 --timeout 100
    --fast-override dataset.max_tokens=8750)
  DEMO=(); DEMO_SPEECH=${DEMO_SPEECH:-.gpu_demo_speech}; SLOW=1
fi
STEP="python3 benchmarks/train_step_speed.py --speech-dir $SPEECH ${COMMON[*]}"
FAILED=""
PEAK=""
# run PART SECONDS LOG COMMAND...: the part if PARTS names it, within SECONDS (x SLOW), its output into LOG
run() {
  local name=$1 limit=$2 log=$3; shift 3
  [[ ",$PARTS," == *",$name,"* ]] || return 0
  timeout $((limit * SLOW)) "$@" > "$OUT/$log" 2>&1; local rc=$?
  echo "$name: exit $rc at ${SECONDS}s"; [ "$rc" = 0 ] || FAILED="$FAILED $name"
}
run peak 30 peak.log python3 benchmarks/matmul_peak.py "${PEAK_ARGS[@]}" --output "$OUT/matmul_peak_${MODE}.md"
[ -f "$OUT/peak.log" ] && PEAK=$(sed -n 's/^PEAK_TFLOPS=//p' "$OUT/peak.log")
MFU=(); [ -n "$PEAK" ] && MFU=(--peak-tflops "$PEAK")
run step 100 step.log $STEP "${STEP_SHAPE[@]}" --no-levers --flops --sync-check "${MFU[@]}" \
  --output "$OUT/train_step_${MODE}_bf16.md"
run loader 70 loader.log python3 benchmarks/loader_throughput.py --speech-dir "$SPEECH" --variants batch-reads \
  "${LOADER[@]}" --output "$OUT/loader_throughput_${MODE}.md"
run e2e1gpu 250 e2e1gpu.log python3 benchmarks/e2e_throughput.py --speech-dir "$SPEECH" --work-dir "$WORK/e2e1gpu" \
  "${E2E1[@]}" --update-freq config --runs stock,fast --precision-updates 0 "${MFU[@]}" \
  --output "$OUT/e2e_throughput_1gpu_${MODE}.md"
run levers 150 levers.log $STEP "${SHAPES[@]}" "${MFU[@]}" --output "$OUT/train_step_levers_${MODE}_bf16.md"
run largest 75 largest.log $STEP --no-levers "${BIG[@]}" --output "$OUT/train_step_largest_${MODE}_bf16.md"
run official 45 official.log $STEP --official "$OFFICIAL" "${SHAPES[@]}" --output "$OUT/train_step_official_${MODE}_bf16.md"
run compile 65 compile.log $STEP --no-levers --compile --only "fast,fast +compile" "${STEP_SHAPE[@]}" \
  --output "$OUT/train_step_compile_${MODE}_bf16.md"
run profile 40 profile_fast.txt $STEP --no-levers "${STEP_SHAPE[@]}" --profile fast --profile-rows 25
run e2e 270 e2e.log python3 benchmarks/e2e_throughput.py --speech-dir "$SPEECH" --work-dir "$WORK/e2e" "${E2E[@]}" \
  "${MFU[@]}" --output "$OUT/e2e_throughput_${MODE}.md"
run demo 660 demo.log python3 examples/demo.py --device "$MODE" --speech-dir "$DEMO_SPEECH" --work-dir "$WORK/demo" \
  "${DEMO[@]}"
run quality 540 quality.log python3 benchmarks/quality_vs_gpu_time.py "$OUT" "$DEMO_SPEECH" "$MODE" --work-dir "$WORK/quality"
if [[ ",$PARTS," == *",demo,"* && -f "$WORK/demo/report/results.json" ]]; then
  cp "$WORK/demo/report/results.json" "$OUT/demo_${MODE}.json"
  cp "$WORK/demo/report/summary.md" "$OUT/demo_${MODE}_summary.md"
fi
echo "peak: ${PEAK:-not measured} TFLOP/s"
{ grep -h "^| " "$OUT"/*.md; grep -h "largest\|^sync check" "$OUT"/*.log; } 2>/dev/null | cut -c1-200
[ -z "$FAILED" ] || { echo "failed:$FAILED"; exit 1; }
