"""The equal-updates control of ``quality_vs_compute.py``: stock fairseq HuBERT and fast_hubert, the
same tiny Transformer, trained on the same MFCC units for the same number of updates, then probed
with ``fast-hubert-probe`` exactly as the benchmark probes its systems (same workspace, so the MFCC,
fbank and initial-weights baselines are shared). If stock HuBERT's probe beats MFCC where
fast_hubert's does not, fast_hubert has a defect.

Two ways to train the pair:

- ``cpu``: here, one run after the other (stock HuBERT costs ~28x fast_hubert's CPU per update, so
  300 updates take about 1.7 CPU-hours); each run resumes from its last checkpoint if killed.
- ``pack`` / ``probe``: ``gpu_runs.sh`` trains the pair on a GPU and returns each checkpoint as
  ``NAME_meta.pt`` + ``NAME_weights_{a,b}.pt`` (fp16 weights, no optimizer state); ``probe``
  rebuilds fp32 checkpoints and probes them here.

    python benchmarks/stock_control.py cpu --updates 313 [--threads 2] [--work-dir quality_vs_compute_work]
    python benchmarks/stock_control.py pack CHECKPOINT OUT NAME       (on the GPU machine, by gpu_runs.sh)
    python benchmarks/stock_control.py probe GPU_OUT [--work-dir quality_vs_compute_work]
"""

import argparse
import sys
import tarfile
from pathlib import Path
from typing import Dict

import torch

from fast_hubert_plugin.recipes.runner import log_records
from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    Workspace,
    masked_accuracy,
    pretrain,
    probe,
)
from fast_hubert_plugin.utils.atomic import atomic_path

from common import BASELINES, RESULTS, add_workspace_args, baseline_probe, machine, workspace


def pack(checkpoint: Path, out: Path, name: str):
    """A checkpoint -> NAME_meta.pt (no optimizer state) + two halves of its weights in fp16, so that
    each file comes back from a machine that returns files of at most 16 MiB."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    ckpt["last_optimizer_state"] = None
    model = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()}
    keys = sorted(model)
    torch.save(ckpt, out / f"{name}_meta.pt")
    torch.save({k: model[k] for k in keys[: len(keys) // 2]}, out / f"{name}_weights_a.pt")
    torch.save({k: model[k] for k in keys[len(keys) // 2 :]}, out / f"{name}_weights_b.pt")


def rebuild(gpu_out: Path, name: str, dest: Path) -> Path:
    """NAME_meta.pt + NAME_weights_{a,b}.pt -> a fairseq checkpoint with fp32 weights."""
    ckpt = torch.load(gpu_out / f"{name}_meta.pt", map_location="cpu", weights_only=False)
    weights = {}
    for part in ("a", "b"):
        weights.update(torch.load(gpu_out / f"{name}_weights_{part}.pt", map_location="cpu"))
    ckpt["model"] = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        torch.save(ckpt, tmp)
    return dest


def write_record(out: Path, header: str, rows, baselines: Dict[str, float]):
    """rows: (system title, updates, masked accuracy of the last log, CPU-s of training or None, probe CER)."""
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
            + f" | {'?' if cpu_s is None else f'{cpu_s / 60:.1f}'} | {cer:.1f} |"
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


def probe_gpu_checkpoints(args):
    ws = workspace(args.work_dir, args.speech_dir)
    if (args.gpu_out / "logs.tar.gz").exists() and not (args.gpu_out / "logs").exists():
        with tarfile.open(args.gpu_out / "logs.tar.gz") as tar:
            tar.extractall(args.gpu_out, filter="data")
    rows = []
    for name in ("fast_hubert", "hubert"):
        ckpt = rebuild(args.gpu_out, name, ws.work / "control" / f"{name}.pt")
        recs = log_records(args.gpu_out / "logs" / f"pretrain_{name}.log", "train_inner")
        res = probe(ws, f"control_{name}", str(ckpt), args.probe_updates, threads=1)
        rows.append(
            (
                SYSTEMS[name].title,
                recs[-1]["num_updates"] if recs else "?",
                masked_accuracy(recs[-1]) if recs else {},
                None,
                res["cer"],
            )
        )
    logs = args.gpu_out / "logs"
    gpu_machine = (logs / "machine.txt").read_text().strip() if logs.is_dir() else "?"
    header = (
        f"Pretrained on: {gpu_machine} (`benchmarks/gpu_runs.sh`); probed on the CPU: "
        f"`python benchmarks/stock_control.py probe GPU_OUT --probe-updates {args.probe_updates}`."
    )
    write_record(args.output, header, rows, baselines(ws, args.probe_updates, threads=1))


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
    gpu = sub.add_parser("probe", help="probe the checkpoints gpu_runs.sh brought back")
    gpu.add_argument("gpu_out", type=Path, help="the OUT folder of gpu_runs.sh")
    gpu.add_argument("--output", type=Path, default=RESULTS / "stock_control_gpu.md")
    for mode in (cpu, gpu):
        add_workspace_args(mode)
        mode.add_argument("--probe-updates", type=int, default=1000)
    return p.parse_args(argv)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "pack":  # on the GPU machine, by gpu_runs.sh: CHECKPOINT OUT NAME
        return pack(Path(argv[1]), Path(argv[2]), argv[3])
    args = parse_args(argv)
    return train_here(args) if args.mode == "cpu" else probe_gpu_checkpoints(args)


if __name__ == "__main__":
    main()
