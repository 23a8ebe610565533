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
import tempfile
import time
from pathlib import Path

import numpy as np

from fast_hubert_plugin.utils.machine import cpu_model_name

from common import SPEECH_DIR, reproduce, speech_rows, write_random_unit_data

REPEAT = 20  # times the utterances are listed: one epoch outlasts every measurement (workers never restart)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", default=SPEECH_DIR)
    p.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    p.add_argument("--workers", default="1,2", help="comma-separated numbers of loader processes to measure")
    p.add_argument("--batches", type=int, default=150, help="batches timed per measurement (after 10 warm-up ones)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def pretraining_task(rows, speech: Path):
    """The fast_hubert_pretraining task with the Base config's crops, its train split loaded from ``rows``
    (random unit labels)."""
    from fairseq.tasks import TASK_REGISTRY

    import fast_hubert_plugin  # noqa: F401  (registers the task)
    from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig

    work = Path(tempfile.mkdtemp(prefix="loader_"))
    write_random_unit_data(work, speech, {"train": rows * REPEAT, "valid": rows[:4]}, 500)
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
    return task


def audio_seconds_per_second(task, workers: int, batches: int, seed: int) -> float:
    """What fairseq's batch iterator delivers with ``workers`` processes, over ``batches`` batches after 10."""
    itr = task.get_batch_iterator(
        task.datasets["train"],
        max_tokens=8750,
        max_positions=None,
        seed=seed,
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
        if i == 10 + batches:
            break
    return seconds / (time.perf_counter() - t0)


def measure(args, task) -> list:
    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        rates = []
        for rep in range(args.repeats):
            rates.append(audio_seconds_per_second(task, workers, args.batches, seed=rep + 1))
            print(f"{workers} workers, repeat {rep + 1}: {rates[-1]:,.0f} audio-s/s", flush=True)
        results.append((workers, rates))
    return results


def record(args, argv, n_rows: int, results) -> list:
    out = [
        "# Data-loader throughput: fast_hubert_pretraining, Base batches (87.5 s), no model",
        "",
        f"Reproduce: `{reproduce('loader_throughput.py', argv)}`",
        "",
        f"- CPU: {cpu_model_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; Python "
        f"{platform.python_version()}",
        f"- {n_rows} utterances of `{args.manifest}` (16-bit FLAC), listed {REPEAT} times; fairseq's batch "
        f"iterator, {args.batches} batches timed after 10, {args.repeats} repeats",
        "",
        "| loader processes | audio-s/s (median) | min | max |",
        "|---:|---:|---:|---:|",
    ]
    for workers, rates in results:
        out.append(f"| {workers} | {np.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} |")
    out.append("")
    return out


def main(argv=None):
    args = parse_args(argv)
    speech = Path(args.speech_dir).resolve()
    rows = speech_rows(speech, [args.manifest], 2.0)
    results = measure(args, pretraining_task(rows, speech))
    out = record(args, argv, len(rows), results)
    if args.output:
        Path(args.output).write_text("\n".join(out), encoding="utf-8")
        print(f"wrote {args.output}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
