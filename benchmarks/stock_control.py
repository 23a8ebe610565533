"""The equal-updates control of ``quality_vs_compute.py``: stock fairseq HuBERT and fast_hubert, the
same tiny Transformer, trained on the same MFCC units for the same number of updates, then probed
with ``fast-hubert-probe`` exactly as the benchmark probes its systems (same workspace, so the MFCC,
fbank and initial-weights baselines are shared). If stock HuBERT's probe beats MFCC where
fast_hubert's does not, fast_hubert has a defect.

It trains the pair here, one run after the other (stock HuBERT costs ~28x fast_hubert's CPU per
update, so 300 updates take about 1.7 CPU-hours); each run resumes from its last checkpoint if killed.
On a GPU, ``quality_vs_gpu_time.py`` compares the two systems at equal GPU time instead.

    python benchmarks/stock_control.py cpu --updates 313 [--threads 2] [--work-dir quality_vs_compute_work]
"""

import argparse
import sys
from pathlib import Path
from typing import Dict

from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    Workspace,
    pretrain,
    probe,
)
from fast_hubert_plugin.utils.atomic import atomic_path

from common import BASELINES, RESULTS, add_workspace_args, baseline_probe, machine, workspace


def write_record(out: Path, header: str, rows, baselines: Dict[str, float]):
    """rows: (system title, updates, masked accuracy of the last log, CPU-s of training, probe CER)."""
    lines = [
        "# Equal-updates control: stock HuBERT vs fast_hubert on the same units",
        "",
        header,
        "",
        "| system | updates | masked accuracy (last log) | training CPU-min | probe dev CER % |",
        "|---|---|---|---|---|",
    ]
    for title, updates, acc, cpu_s, cer in rows:
        lines.append(
            f"| {title} | {updates} | "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(acc.items()))
            + f" | {cpu_s / 60:.1f} | {cer:.1f} |"
        )
    lines += ["", *[f"- {k} probe: {v:.1f} %" for k, v in baselines.items()], ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def baselines(ws: Workspace, probe_updates: int, threads: int) -> Dict[str, float]:
    """The benchmark's no-pretraining probes (reused from its workspace when they are done there)."""
    return dict(baseline_probe(ws, name, probe_updates, threads) for name in BASELINES)


def train_here(args):
    """Both systems pretrained here for --updates on the workspace's iteration-1 units, then probed."""
    ws = workspace(args.work_dir, args.speech_dir, args.clusters, threads=args.threads)
    rows = []
    for name in ("fast_hubert", "hubert"):
        tag = f"control_{name}_u{args.updates}_s{args.seed}"
        run = pretrain(
            ws.work / "control",
            tag,
            SYSTEMS[name],
            ws.pretrain_data,
            ws.iteration1_labels,
            ITERATION1_LABEL_RATE,
            args.updates,
            seed=args.seed,
            threads=args.threads,
        )
        cer = probe(ws, tag, run.checkpoint, args.probe_updates, threads=args.threads)["cer"]
        rows.append((SYSTEMS[name].title, run.updates, run.masked_accuracy, run.cpu_s, cer))
    header = (
        f"Pretrained and probed on: {machine(args.threads)}. Command: `.venv/bin/python "
        f"benchmarks/stock_control.py cpu --updates {args.updates} --seed {args.seed} --threads {args.threads} "
        f"--probe-updates {args.probe_updates}`. Both on the iteration-1 (MFCC, {args.clusters} units) labels "
        "of the benchmark's workspace, from the same seed, with the tiny recipe's defaults."
    )
    write_record(args.output, header, rows, baselines(ws, args.probe_updates, args.threads))


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    cpu = sub.add_parser("cpu", help="train both systems here, then probe them")
    cpu.add_argument(
        "--updates",
        type=int,
        required=True,
        help="updates of each run: fast_hubert's updates per iteration at the benchmark's largest budget",
    )
    cpu.add_argument("--seed", type=int, default=1)
    cpu.add_argument("--threads", type=int, default=2, help="threads of each run (they run one after the other)")
    cpu.add_argument("--clusters", type=int, default=100, help="k-means units of iteration 1 (as the benchmark)")
    cpu.add_argument("--output", type=Path, default=RESULTS / "stock_control_cpu.md")
    add_workspace_args(cpu)
    cpu.add_argument("--probe-updates", type=int, default=1000)
    return p.parse_args(argv)


def main(argv=None):
    train_here(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
