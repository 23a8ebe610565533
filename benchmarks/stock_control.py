"""The equal-updates control, second half: probe the checkpoints that ``gpu_runs.sh`` brought back.

``gpu_runs.sh`` pretrains stock fairseq HuBERT and fast_hubert (same tiny Transformer, same MFCC
units, same number of updates) on a GPU and returns each checkpoint as ``NAME_meta.pt`` +
``NAME_weights_{a,b}.pt`` (fp16 weights, no optimizer state). This script rebuilds fp32
checkpoints, probes both with ``fast-hubert-probe`` exactly as ``quality_vs_compute.py`` probes
its systems (same workspace, so the MFCC and fbank baselines are shared), and writes the record.
If stock HuBERT's probe beats MFCC where fast_hubert's does not, fast_hubert has a defect.

    python benchmarks/stock_control.py pack CHECKPOINT OUT NAME       (on the GPU machine, by gpu_runs.sh)
    python benchmarks/stock_control.py probe GPU_OUT [--work-dir quality_vs_compute_work]
"""
import argparse
import sys
import tarfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fast_hubert_plugin.recipes.corpus import load_corpus, resolve_speech_dir  # noqa: E402
from fast_hubert_plugin.recipes.runner import log_records  # noqa: E402
from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, Workspace, masked_accuracy, probe  # noqa: E402
from fast_hubert_plugin.utils.atomic import atomic_path  # noqa: E402


def pack(checkpoint: Path, out: Path, name: str):
    """A checkpoint -> NAME_meta.pt (no optimizer state) + two halves of its weights in fp16, so that
    each file comes back from a machine that returns files of at most 16 MiB."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    ckpt["last_optimizer_state"] = None
    model = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()}
    keys = sorted(model)
    torch.save(ckpt, out / f"{name}_meta.pt")
    torch.save({k: model[k] for k in keys[: len(keys) // 2]}, out / f"{name}_weights_a.pt")
    torch.save({k: model[k] for k in keys[len(keys) // 2:]}, out / f"{name}_weights_b.pt")


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


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "pack":
        return pack(Path(argv[1]), Path(argv[2]), argv[3])
    argv = argv[1:] if argv and argv[0] == "probe" else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gpu_out", type=Path, help="the OUT folder of gpu_runs.sh")
    p.add_argument("--work-dir", type=Path, default=REPO / "quality_vs_compute_work")
    p.add_argument("--speech-dir", type=Path)
    p.add_argument("--probe-updates", type=int, default=1000)
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "stock_control.md")
    args = p.parse_args(argv)
    ws = Workspace(args.work_dir, load_corpus(resolve_speech_dir(args.speech_dir)), threads=2).prepare()
    if (args.gpu_out / "logs.tar.gz").exists() and not (args.gpu_out / "logs").exists():
        with tarfile.open(args.gpu_out / "logs.tar.gz") as tar:
            tar.extractall(args.gpu_out, filter="data")
    rows = []
    for name in ("fast_hubert", "hubert"):
        ckpt = rebuild(args.gpu_out, name, ws.work / "control" / f"{name}.pt")
        log = args.gpu_out / "logs" / f"pretrain_{name}.log"
        recs = log_records(log, "train_inner")
        res = probe(ws, f"control_{name}", str(ckpt), args.probe_updates, threads=1)
        rows.append((SYSTEMS[name].title, recs[-1]["num_updates"] if recs else "?",
                     masked_accuracy(recs[-1]) if recs else {}, res["cer"]))
    base = {n: probe(ws, n, n, args.probe_updates, threads=1)["cer"] for n in ("fbank", "mfcc")}
    machine = (args.gpu_out / "logs" / "machine.txt").read_text().strip() if (args.gpu_out / "logs").is_dir() else "?"
    lines = ["# Equal-updates control: stock HuBERT vs fast_hubert on the same units", "",
             f"Pretrained on: {machine} (`benchmarks/gpu_runs.sh`); probed on the CPU: "
             f"`python benchmarks/stock_control.py GPU_OUT --probe-updates {args.probe_updates}`.", "",
             "| system | updates | masked accuracy (last log) | probe dev CER % |", "|---|---|---|---|"]
    for title, updates, acc, cer in rows:
        lines.append(f"| {title} | {updates} | " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(acc.items()))
                     + f" | {cer:.1f} |")
    lines += ["", *[f"- {k} probe: {v:.1f} %" for k, v in base.items()], ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
