"""Can N data-loader processes feed a GPU? Audio seconds per second that fairseq's own batch iterator
delivers for the Base pretraining config (fast_hubert_pretraining task, 87.5 s batches, waveforms
decoded from 16-bit FLAC and cropped; the fbank is computed later, on the GPU), with no model.

The target of the GPU path: one H100/H200 trains fast_hubert Base at 2,000-4,700 audio-s/s per step
at 87.5-144 s batches (``results/train_step_gpu_bf16.md``), so 2 processes must deliver more.

    python benchmarks/loader_throughput.py --speech-dir SPEECH --workers 2 --output benchmarks/results/loader_throughput_cpu.md
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fast_hubert_plugin.utils.machine import cpu_model_name

from random_units import speech_rows, write_random_unit_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))  # speech_folder: the demo's speech folders

from speech_folder import default_speech_dir  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--speech-dir",
        default=str(default_speech_dir()),
        help="default: $FAST_HUBERT_SPEECH_DIR, else ../shared/speech",
    )
    p.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    p.add_argument("--workers", default="1,2", help="comma-separated numbers of loader processes to measure")
    p.add_argument("--batches", type=int, default=150, help="batches timed per measurement (after 10 warm-up ones)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default=None)
    args = p.parse_args(argv)

    from fairseq.tasks import TASK_REGISTRY

    import fast_hubert_plugin  # noqa: F401  (registers the task)
    from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig

    speech = Path(args.speech_dir).resolve()
    rows = speech_rows(speech, [args.manifest], 2.0)
    work = Path(tempfile.mkdtemp(prefix="loader_"))
    repeat = 20  # one epoch outlasts every measurement (workers never restart)
    write_random_unit_data(work, speech, {"train": rows * repeat, "valid": rows[:4]}, 500)
    cfg = FastHubertPretrainingConfig(
        data=str(work),
        label_dir=str(work),
        labels=["km"],
        label_rate=50.0,
        max_sample_size=1562,
        min_sample_size=200,
        random_crop=True,
        cmvn_stats_path=str(work / "cmvn.npz"),
    )
    task = TASK_REGISTRY["fast_hubert_pretraining"].setup_task(cfg)
    task.load_dataset("train")
    dataset = task.datasets["train"]

    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        rates = []
        for rep in range(args.repeats):
            itr = task.get_batch_iterator(
                dataset,
                max_tokens=8750,
                max_positions=None,
                seed=rep + 1,
                num_workers=workers,
                epoch=1,
                required_batch_size_multiple=1,
            )
            it = itr.next_epoch_itr(shuffle=True)
            seconds, t0 = 0.0, None
            for i, batch in enumerate(it):
                if i == 10:
                    t0, seconds = time.perf_counter(), 0.0
                seconds += batch["net_input"]["source"].numel() / 16000
                if i == 10 + args.batches:
                    break
            rates.append(seconds / (time.perf_counter() - t0))
            print(f"{workers} workers, repeat {rep + 1}: {rates[-1]:,.0f} audio-s/s", flush=True)
        results.append((workers, rates))

    cpu = cpu_model_name()
    cmd = "python benchmarks/loader_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = [
        "# Data-loader throughput: fast_hubert_pretraining, Base batches (87.5 s), no model",
        "",
        f"Reproduce: `{cmd.strip()}`",
        "",
        f"- CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; Python "
        f"{platform.python_version()}",
        f"- {len(rows)} utterances of `{args.manifest}` (16-bit FLAC), listed {repeat} times; fairseq's batch "
        f"iterator, {args.batches} batches timed after 10, {args.repeats} repeats",
        "",
        "| loader processes | audio-s/s (median) | min | max |",
        "|---:|---:|---:|---:|",
    ]
    for workers, rates in results:
        out.append(f"| {workers} | {np.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} |")
    out.append("")
    if args.output:
        Path(args.output).write_text("\n".join(out), encoding="utf-8")
        print(f"wrote {args.output}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
