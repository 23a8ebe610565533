"""Can the data loader feed a GPU? Audio seconds per second that fairseq's own batch iterator delivers for
fast_hubert_pretraining batches (waveforms decoded from 16-bit FLAC and cropped; the fbank is computed
later, on the GPU), with no model.

The target (issue 32): one H100/H200 training HuBERT Base's 400k updates in a day takes 12,963 audio-s/s of
2,800 s batches from at most 4 loader processes, so one process (the training process on the other core)
must deliver 3,250 audio-s/s. The defaults are those batches: ``--max-tokens 280000`` fbank frames (2,800 s,
the Base configs' total batch on one GPU), the Base crop 15.62 s (1562 frames), utterances of at least 2 s.

Variants, each measured ``--repeats`` times, interleaved (A, B, C, A, B, C, ...), each measurement in a fresh
process (the same data folder; the first ``--warmup`` batches are not timed):

  batch-reads   this checkout as training runs it: the DataLoader fetcher calls the dataset's
                ``__getitems__``, which reads each waveform only as far as its crop
  item-reads    this checkout with ``__getitems__`` switched off: ``dataset[i]`` per index, whole files
  other         ``--other DIR``: another checkout's ``fast_hubert_plugin`` folder (e.g. ``git archive``
                of main), imported in its place
  decode-only   no loader: the same batches' crops read with soundfile (``read_pcm16_span``) in one
                process: no labels, no collate, no transfer. What FLAC decoding alone allows.

    python benchmarks/loader_throughput.py --speech-dir SPEECH --workers 1 \\
        --output benchmarks/results/loader_throughput_cpu.md
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fast_hubert_plugin.utils.atomic import atomic_write_text
from fast_hubert_plugin.utils.machine import cpu_model_name

from common import REPO, SPEECH_DIR, reproduce, speech_rows, write_random_unit_data

BASE_CROP = 1562  # fbank frames: HuBERT Base's 250,000-sample crop, 15.62 s
BASE_MIN = 200  # fbank frames: HuBERT Base's min_sample_size, 2 s
VARIANTS = ("batch-reads", "item-reads", "other", "decode-only")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", default=SPEECH_DIR)
    p.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    p.add_argument("--max-tokens", type=int, default=280000, help="fbank frames per batch (100 per second)")
    p.add_argument("--crop", type=int, default=BASE_CROP, help="task.max_sample_size, fbank frames")
    p.add_argument("--min-size", type=int, default=BASE_MIN, help="task.min_sample_size, fbank frames")
    p.add_argument("--workers", default="1", help="comma-separated numbers of loader processes to measure")
    p.add_argument("--batches", type=int, default=20, help="batches timed per measurement")
    p.add_argument("--warmup", type=int, default=3, help="batches before the timed ones")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", default="batch-reads,item-reads,decode-only", help=f"comma-separated: {VARIANTS}")
    p.add_argument("--other", type=Path, default=None, help="another checkout's fast_hubert_plugin folder")
    p.add_argument("--other-label", default="other checkout")
    p.add_argument("--work-dir", type=Path, default=None, help="the data folder (default: a temporary one)")
    p.add_argument(
        "--profile", type=int, default=0, help="only profile the batch path on this many batches, in one process"
    )
    p.add_argument("--output", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one measurement: JSON of the variant
    args = p.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",")]
    if args.other is not None and "other" not in args.variant_list:
        args.variant_list.append("other")
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown or ("other" in args.variant_list and args.other is None):
        p.error(f"variants must be among {VARIANTS}, 'other' with --other (got {args.variants})")
    return args


# ----------------------------------------------------------------------------- one measurement (a child)
def pretraining_task(data: Path, crop: int, min_size: int):
    """The fast_hubert_pretraining task with the given crops, its train split loaded from ``data``."""
    from fairseq.tasks import TASK_REGISTRY

    import fast_hubert_plugin  # noqa: F401  (registers the task)
    from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig

    cfg = FastHubertPretrainingConfig(
        data=str(data),
        label_dir=str(data),
        labels=["km"],
        label_rate=50.0,
        max_sample_size=crop,
        min_sample_size=min_size,
        random_crop=True,
        cmvn_stats_path=str(data / "cmvn.npz"),
    )
    task = TASK_REGISTRY["fast_hubert_pretraining"].setup_task(cfg)
    task.load_dataset("train")
    return task


def batch_iterator(task, max_tokens: int, workers: int, seed: int):
    return task.get_batch_iterator(
        task.datasets["train"],
        max_tokens=max_tokens,
        max_positions=None,
        seed=seed,
        num_workers=workers,
        epoch=1,
        required_batch_size_multiple=1,
    )


def loader_rate(task, max_tokens: int, workers: int, warmup: int, batches: int, seed: int) -> float:
    """Audio-s/s of fairseq's batch iterator with ``workers`` processes, over ``batches`` after ``warmup``."""
    it = batch_iterator(task, max_tokens, workers, seed).next_epoch_itr(shuffle=True)
    seconds, t0 = 0.0, None
    for i, batch in enumerate(it):
        if i == warmup:
            t0, seconds = time.perf_counter(), 0.0
        seconds += batch["net_input"]["source"].numel() / 16000
        if i == warmup + batches:
            return seconds / (time.perf_counter() - t0)
    raise SystemExit(f"the epoch ended after {i + 1} batches: list the utterances more often")


def decode_rate(task, max_tokens: int, warmup: int, batches: int, seed: int) -> float:
    """Audio-s/s of soundfile alone reading the crops of the same batches (no labels, collate or transfer)."""
    ds = task.datasets["train"]
    itr = batch_iterator(task, max_tokens, 0, seed)
    itr.next_epoch_itr(shuffle=True)
    picked = list(itr.epoch_batch_sampler)[warmup : warmup + batches]
    t0, samples = time.perf_counter(), 0
    for indices in picked:
        size = ds.batch_size_frames([int(ds.sizes[i]) for i in indices])
        for i in indices:
            frames = int(ds.sizes[i])
            samples += len(
                ds.get_audio_span(i, ds.crop_start(frames, size, ds.rng_key(i)), size if frames >= size else None)
            )
    return samples / 16000 / (time.perf_counter() - t0)


def profile_batches(task, max_tokens: int, warmup: int, batches: int) -> str:
    """cProfile of the batch path (``__getitems__`` and the collater, as a loader process runs them) over
    ``batches`` batches in this process: where a loader process spends its time."""
    import cProfile
    import io
    import pstats

    ds = task.datasets["train"]
    itr = batch_iterator(task, max_tokens, 0, seed=1)
    itr.next_epoch_itr(shuffle=True)
    picked = list(itr.epoch_batch_sampler)[warmup : warmup + batches]
    profiler = cProfile.Profile()
    profiler.enable()
    for indices in picked:
        ds.collater(ds.__getitems__(indices))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def child(args) -> None:
    """One measurement of ``args.child`` (a JSON [variant, workers, seed]); prints its rate as JSON."""
    variant, workers, seed = json.loads(args.child)
    task = pretraining_task(args.work_dir, args.crop, args.min_size)
    if variant == "profile":
        return print(profile_batches(task, args.max_tokens, args.warmup, args.profile))
    if variant == "decode-only":
        rate = decode_rate(task, args.max_tokens, args.warmup, args.batches, seed)
    else:
        if variant == "item-reads":  # torch's fetcher then calls dataset[i] per index
            task.datasets["train"].__getitems__ = None
        rate = loader_rate(task, args.max_tokens, workers, args.warmup, args.batches, seed)
    import fast_hubert_plugin

    print(json.dumps({"rate": rate, "plugin": str(Path(fast_hubert_plugin.__file__).resolve().parent)}))


# ----------------------------------------------------------------------------- the benchmark
def prepare(args, rows) -> int:
    """The data folder: ``rows`` listed often enough that one epoch outlasts a measurement (workers never
    restart), random unit labels, CMVN. Returns the times the rows are listed."""
    crop_s = args.crop / 100
    per_listing = sum(min(int(r["num_samples"]) / 16000, crop_s) for r in rows)
    needed = (args.warmup + args.batches + 2) * args.max_tokens / 100
    listings = math.ceil(needed / per_listing) + 1
    write_random_unit_data(args.work_dir, Path(args.speech_dir), {"train": rows * listings, "valid": rows[:4]}, 500)
    return listings


def measure_one(args, argv, variant: str, workers: int, seed: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if variant == "other":  # the other checkout's plugin, found before this checkout's installed one
        shadow = args.work_dir / "other_plugin"
        if not shadow.is_dir():
            shadow.mkdir()
            (shadow / "fast_hubert_plugin").symlink_to(args.other.resolve())
        env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
    cmd += ["--work-dir", str(args.work_dir), "--child", json.dumps([variant, workers, seed])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} ({workers} workers) failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = args.other if variant == "other" else REPO / "fast_hubert_plugin"
    if Path(result["plugin"]) != expected.resolve():
        raise SystemExit(f"{variant} ran the plugin in {result['plugin']}, not {expected}")
    return result["rate"]


def measure(args, argv) -> dict:
    """{(variant, workers): [audio-s/s per repeat]}, the variants interleaved within each repeat."""
    cells = [(v, w) for w in [int(w) for w in args.workers.split(",")] for v in args.variant_list if v != "decode-only"]
    if "decode-only" in args.variant_list:
        cells.append(("decode-only", 0))
    results = {cell: [] for cell in cells}
    for rep in range(args.repeats):
        for variant, workers in cells:
            rate = measure_one(args, argv, variant, workers, seed=rep + 1)
            results[(variant, workers)].append(rate)
            print(
                f"{variant}, {workers} workers, repeat {rep + 1}: {rate:,.0f} audio-s/s  load {os.getloadavg()[0]:.2f}"
            )
    return results


def variant_name(args, variant: str) -> str:
    return f"{variant}: {args.other_label}" if variant == "other" else variant


def record(args, argv, n_rows: int, listings: int, results: dict, loads) -> list:
    out = [
        f"# Data-loader throughput: fast_hubert_pretraining, {args.max_tokens / 100:,.1f} s batches, no model",
        "",
        f"Reproduce: `{reproduce('loader_throughput.py', argv)}`",
        "",
        f"- CPU: {cpu_model_name()}, {os.cpu_count()} cores; load average before {loads[0]:.2f}, after "
        f"{loads[1]:.2f}; Python {platform.python_version()}",
        f"- {n_rows} utterances of `{args.manifest}` (16-bit FLAC, at least {args.min_size / 100:g} s) listed "
        f"{listings} times; batches of {args.max_tokens:,} fbank frames, crops of at most {args.crop} frames "
        f"({args.crop / 100:g} s); fairseq's batch iterator, {args.batches} batches timed after {args.warmup}; "
        f"{args.repeats} repeats, variants interleaved, each measurement in a fresh process (OMP_NUM_THREADS=1)",
        "",
        "| variant | loader processes | audio-s/s (median) | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for (variant, workers), rates in results.items():
        procs = "- (one process)" if variant == "decode-only" else str(workers)
        out.append(
            f"| {variant_name(args, variant)} | {procs} | {np.median(rates):,.0f} | {min(rates):,.0f} | "
            f"{max(rates):,.0f} |"
        )
    return out + [""] + paired_ratios(args, results)


def paired_ratios(args, results: dict) -> list:
    """The first variant's rate over each other's, repeat by repeat: measured back to back, so less
    exposed to the machine's other work than the medians."""
    (first, first_workers), *others = list(results)
    if not others:
        return []
    out = [f"{first} ({first_workers} loader processes) against the others, repeat by repeat:", ""]
    for variant, workers in others:
        ratios = [a / b for a, b in zip(results[(first, first_workers)], results[(variant, workers)])]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        out.append(f"- / {variant_name(args, variant)} ({workers}): {listed} (median {np.median(ratios):.2f})")
    return out + [""]


def main(argv=None):
    args = parse_args(argv)
    if args.child is not None:
        return child(args)
    speech = Path(args.speech_dir).resolve()
    rows = speech_rows(speech, [args.manifest], args.min_size / 100)
    with tempfile.TemporaryDirectory(prefix="loader_") as tmp:
        args.work_dir = (args.work_dir or Path(tmp)).resolve()
        listings = prepare(args, rows)
        if args.profile:
            args.child = json.dumps(["profile", 0, 1])
            return child(args)
        load_before = os.getloadavg()[0]
        results = measure(args, argv)
        out = record(args, argv, len(rows), listings, results, (load_before, os.getloadavg()[0]))
    if args.output:
        atomic_write_text(args.output, "\n".join(out))
        print(f"wrote {args.output}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
