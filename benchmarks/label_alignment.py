"""Are fast_hubert's frames aligned with their labels? Pretrain on labels shifted in time and compare.

The iteration-1 units (50 Hz) are shifted by k label frames (k x 20 ms; k > 0: each frame gets the
unit of k frames later) and the tiny fast_hubert is pretrained on each shifted copy with the same
seed, updates, masks and data. A shift works both ways on masked prediction: the frame loses the
unit of its own audio, but near the edge of a masked span its target moves towards audio the model
can see. Either way the effect depends on |k + m| for a pipeline misaligned by m label frames, so
the curve of validation accuracy over k is symmetric about k = -m: the record fits a parabola and
reports its axis. Aligned (fbank framing, 40 ms subsampling, random crops, every-second-label
selection all consistent) means an axis near 0; a pipeline bug (an off-by-one crop, a wrong label
stride) moves it by whole label frames. Each accuracy comes from one run on a small held-out set,
so the axis is only good to about a label frame.

    python benchmarks/label_alignment.py [--shifts -3 -2 -1 0 1 2 3] [--updates 300]

Reuses the data and iteration-1 units of ``benchmarks/quality_vs_compute.py`` (its --work-dir).
Writes ``benchmarks/results/label_alignment_cpu.md``.
"""

import argparse
import os
import platform
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from fast_hubert_plugin.recipes.runner import log_records
from fast_hubert_plugin.recipes.two_iterations import ITERATION1_LABEL_RATE, SYSTEMS, pretrain
from fast_hubert_plugin.utils.machine import cpu_model_name

from common import RESULTS, add_workspace_args, workspace


def shift_units(line: str, k: int) -> str:
    """The units of one utterance moved by ``k`` frames, the edge unit repeated (same length)."""
    units = line.split()
    if k > 0:
        units = units[k:] + units[-1:] * k
    elif k < 0:
        units = units[:1] * -k + units[:k]
    return " ".join(units)


def shifted_labels(src: Path, dst: Path, k: int) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        lines = (src / f"{split}.km").read_text().splitlines()
        (dst / f"{split}.km").write_text("".join(shift_units(line, k) + "\n" for line in lines))
    shutil.copyfile(src / "dict.km.txt", dst / "dict.km.txt")
    return dst


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shifts", type=int, nargs="+", default=[-3, -2, -1, 0, 1, 2, 3])
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--clusters", type=int, default=100, help="k-means units (as quality_vs_compute.py's --clusters)")
    add_workspace_args(p)
    p.add_argument("--output", type=Path, default=RESULTS / "label_alignment_cpu.md")
    return p.parse_args(argv)


def pretrained_on_shift(ws, updates: int, k: int):
    """(k, valid masked accuracy, valid loss, last train masked accuracy) of fast_hubert pretrained on the
    iteration-1 units shifted by ``k`` label frames."""
    labels = shifted_labels(ws.iteration1_labels, ws.work / "labels" / f"it1_shift{k:+d}", k)
    run = pretrain(
        ws.work / "alignment",
        f"shift{k:+d}_{updates}",
        SYSTEMS["fast_hubert"],
        ws.pretrain_data,
        labels,
        ITERATION1_LABEL_RATE,
        updates,
        threads=1,
        progress=False,
    )
    valid = log_records(Path(run.log), "valid")[-1]
    return k, float(valid["valid_acc_m_L4"]), float(valid["valid_loss"]), run.masked_accuracy.get("acc_m_L4")


def record(args, rows) -> list:
    """The table and the verdict: the axis of the least-squares parabola through the accuracies."""
    best = max(rows, key=lambda r: r[1])
    a, b, _ = np.polyfit([r[0] for r in rows], [r[1] for r in rows], 2)
    axis = -b / (2 * a) if abs(a) > 1e-12 else float("nan")  # flat: no axis
    lines = [
        "# Label alignment: fast_hubert pretrained on time-shifted iteration-1 units",
        "",
        f"Machine: {cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__} (1 thread per run), Python "
        f"{platform.python_version()}.",
        "Command: `.venv/bin/python benchmarks/label_alignment.py --shifts "
        + " ".join(str(k) for k in args.shifts)
        + f" --updates {args.updates}`",
        "",
        f"Tiny fast_hubert (no ILS), {args.updates} updates, seed 1, MFCC units (K=100, 50 Hz) shifted by k "
        "label frames (20 ms each); accuracy of masked-frame unit prediction on the held-out pretraining "
        "utterances at the end.",
        "",
        "| shift k (ms) | valid masked accuracy | valid masked CE (bits) | train masked accuracy (last log) |",
        "|---|---|---|---|",
    ]
    for k, acc, loss, train_acc in rows:
        lines.append(
            f"| {k:+d} ({20 * k:+d}) | {acc:.4f}{' (best)' if k == best[0] else ''} | {loss:.3f} | "
            f"{train_acc if train_acc is not None else '-'} |"
        )
    shape = "lowest" if a > 0 else "highest"
    verdict = (
        f"the least-squares parabola through the accuracies is {shape} at k = {axis:+.2f} label frames "
        f"({20 * axis:+.0f} ms); "
        + (
            "less than one label frame from 0: no whole-frame misalignment (an off-by-one "
            "crop or label stride would move it by whole frames)"
            if abs(axis) < 1
            else "a label frame or more from 0: look for a misalignment"
        )
    )
    return lines + ["", f"Verdict: {verdict}.", ""]


def main(argv=None):
    args = parse_args(argv)
    ws = workspace(args.work_dir, args.speech_dir, args.clusters)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = sorted(pool.map(lambda k: pretrained_on_shift(ws, args.updates, k), args.shifts))
    lines = record(args, rows)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
