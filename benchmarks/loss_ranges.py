"""What pretraining's loss and masked accuracy look like when training works: the numbers the README's
"When training misbehaves" quotes.

Pretrains the tiny fast_hubert + ILS recipe (the package's ``fast_hubert_tiny_cpu.yaml``: 4 blocks x 256,
blocks 2 and 4 supervised, logits / 0.1) on the speech folder's pretraining audio with the iteration-1
units (MFCC k-means, K=100, 50 Hz) for --updates updates, once per --seeds seed, and records fairseq's
own log records: the loss (cross-entropy in bits per masked frame and head, averaged over both heads)
and the masked accuracy of each supervised block at a few updates, and the held-out loss and accuracy at
the end, with the spread over seeds. Chance level for K units is log2(K) bits (a uniform guess); the
0.1 logit temperature starts the loss far above it.

    python benchmarks/loss_ranges.py [--updates 1000] [--seeds 1 2] [--jobs 1]

Reuses the data and iteration-1 units of ``benchmarks/quality_vs_compute.py`` (its --work-dir).
Writes ``benchmarks/results/loss_ranges_cpu.md``.
"""

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence

from fast_hubert_plugin.recipes.runner import log_records
from fast_hubert_plugin.recipes.two_iterations import ITERATION1_LABEL_RATE, SYSTEMS, pretrain
from fast_hubert_plugin.utils.atomic import atomic_write_text

from common import RESULTS, Log, add_workspace_args, machine, reproduce, workspace

SYSTEM = "fast_hubert_ils"  # the tiny config as shipped: blocks 2 and 4 supervised
KEYS = ("loss", "acc_m_L2", "acc_m_L4")
MILESTONES = (10, 30, 100, 300, 1000, 3000)  # logged updates the table shows (those a run reaches, and its last)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    p.add_argument("--clusters", type=int, default=100, help="k-means units (as quality_vs_compute.py's --clusters)")
    add_workspace_args(p)
    p.add_argument("--output", type=Path, default=RESULTS / "loss_ranges_cpu.md")
    return p.parse_args(argv)


def curve(log: Path) -> Dict[int, Dict[str, float]]:
    """{update: {key: value}} of fairseq's train_inner records (every log_interval updates)."""
    return {int(r["num_updates"]): {k: float(r[k]) for k in KEYS if k in r} for r in log_records(log, "train_inner")}


def held_out(log: Path) -> Dict[str, float]:
    """The last validation record: loss and masked accuracies on the held-out pretraining utterances."""
    last = log_records(log, "valid")[-1]
    return {k: float(last[f"valid_{k}"]) for k in KEYS if f"valid_{k}" in last}


def spread(values: Sequence[float], digits: int) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}-{hi:.{digits}f}"


def table(runs: List[Dict], updates: int) -> List[str]:
    """One row per milestone: each key's range over the seeds."""
    logged = set.intersection(*(set(r["curve"]) for r in runs))
    rows = sorted({u for u in MILESTONES if u in logged} | {max(logged)})
    lines = ["| update | loss (bits) | masked accuracy, block 2 | masked accuracy, block 4 |", "|---:|---|---|---|"]
    for u in rows:
        cells = [spread([r["curve"][u][k] for r in runs], 3) for k in KEYS]
        lines.append(f"| {u} | " + " | ".join(cells) + " |")
    cells = [spread([r["valid"][k] for r in runs], 3) for k in KEYS]
    lines.append(f"| held out, after {updates} | " + " | ".join(cells) + " |")
    return lines


def seed_run(ws, updates: int, seed: int) -> Dict:
    """{"seed", "curve", "valid"} of the tiny recipe pretrained for ``updates`` with ``seed``."""
    run = pretrain(
        ws.work / "runs",
        f"loss_ranges_s{seed}_u{updates}",
        SYSTEMS[SYSTEM],
        ws.pretrain_data,
        ws.iteration1_labels,
        ITERATION1_LABEL_RATE,
        updates,
        seed=seed,
        threads=1,
        progress=False,
    )
    return {"seed": seed, "curve": curve(Path(run.log)), "valid": held_out(Path(run.log))}


def record(args, argv, ws, runs: List[Dict], seconds: float) -> List[str]:
    rows = (ws.pretrain_data / "train.tsv").read_text().splitlines()[1:]
    hours = sum(int(line.split("\t")[1]) for line in rows) / (16000 * 3600)
    return [
        "# Pretraining loss and masked accuracy when training works (CPU, real speech)",
        "",
        f"Reproduce: `{reproduce('loss_ranges.py', argv)}`",
        "",
        f"- machine: {machine(1)}; {seconds:.0f} s for this invocation (stages done before are reused), load "
        f"average at the end {os.getloadavg()[0]:.1f}",
        "- model: the tiny config `fast_hubert_tiny_cpu` as shipped (4 blocks x 256, 40 ms frames, ILS on blocks 2 "
        "and 4, logit temperature 0.1, lr 5e-4 after 30 warm-up updates, 36 s batches of 6 s crops)",
        f"- data: the speech folder's pretraining audio ({hours:.2f} h of read English), iteration-1 units: MFCC "
        f"k-means K={args.clusters} at 50 Hz (chance level log2({args.clusters}) = "
        f"{math.log2(args.clusters):.2f} bits)",
        f"- {args.updates} updates per seed, seeds {', '.join(map(str, args.seeds))}: each cell is the range over "
        "the seeds of fairseq's train_inner record at that update (the mean over the 10 updates before it)",
        "",
        *table(runs, args.updates),
        "",
    ]


def main(argv=None):
    args = parse_args(argv)
    log = Log()
    start = time.time()
    ws = workspace(args.work_dir, args.speech_dir, args.clusters)
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda seed: seed_run(ws, args.updates, seed), args.seeds))
    lines = record(args, argv, ws, runs, time.time() - start)
    for line in lines:
        log(line)
    atomic_write_text(args.output, "\n".join(lines))


if __name__ == "__main__":
    main()
