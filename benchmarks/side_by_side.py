"""Side by side on real speech and the same CPU time: stock HuBERT vs fast_hubert vs fast_hubert + ILS.

Each system is pretrained with ``fairseq-hydra-train`` for the same wall-clock budget on the same
audio and the same iteration-1 labels (MFCC k-means, 50 Hz), with the same Transformer (4 x 256,
the tiny CPU config) and the same optimiser; stock HuBERT keeps its waveform CNN and cosine loss
(fairseq's ``hubert`` model, ``hubert_pretraining`` task and ``hubert`` criterion). Then each is
fine-tuned identically (letter CTC through fairseq's ``hubert_ctc``, same updates, no masking or
SpecAugment for any) and scored by fairseq's own validation on the dev set. A fast_hubert that
was never pretrained is fine-tuned the same way, as the floor.

Usage: .venv/bin/python benchmarks/side_by_side.py [--budget-minutes 6] [--finetune-updates 600]
Writes benchmarks/results/side_by_side_cpu.md (and the runs under --work-dir).
"""
import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("demo", REPO / "examples" / "demo.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

FRAMES_TO_SAMPLES = 160  # our sizes are fbank frames (100/s); stock HuBERT counts 16 kHz samples

def stock_hubert_pretraining(data: Path, labels: Path):
    """Overrides turning the tiny fast_hubert config into stock fairseq HuBERT of the same size."""
    return [
        "task._name=hubert_pretraining", "~task.cmvn_stats_path",
        f"task.max_sample_size={600 * FRAMES_TO_SAMPLES}", f"task.min_sample_size={150 * FRAMES_TO_SAMPLES}",
        f"dataset.max_tokens={3600 * FRAMES_TO_SAMPLES}",
        "model._name=hubert", "~model.conv_kernel_sizes", "~model.conv_channels", "~model.fbank_encoder_dim",
        "~model.supervised_layers", "+model.final_dim=256", "model.mask_length=10",  # 10 x 20 ms = 5 x 40 ms
        "model.feature_grad_mult=0.1", "criterion._name=hubert", "+criterion.loss_weights=[10]",
    ]


def stock_hubert_finetuning():
    return [
        "task._name=hubert_pretraining", f"dataset.max_tokens={2000 * FRAMES_TO_SAMPLES}",
        "~task.spec_aug_freq_masks", "~task.spec_aug_freq_width", "~task.spec_aug_time_masks", "~task.spec_aug_time_width",
    ]


def accuracy(rec: dict) -> str:
    """Masked-unit accuracy of each head: ours logs acc_m_L<layer>; fairseq's hubert criterion
    logs correct_m_<i> already divided by count_m_<i>."""
    keys = [k for k in rec if k.startswith(("valid_acc_m", "acc_m", "correct_m", "valid_correct_m"))]
    return ", ".join(f"{k.split('_')[-1]} {float(rec[k]):.3f}" for k in sorted(keys)) or "-"


def mean_batch_seconds(data: Path, labels: Path) -> float:
    """Audio seconds per update of the tiny pretraining batches (the same batching for all systems)."""
    sys.path.insert(0, str(REPO))
    from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask

    task = FastHubertPretrainingTask(FastHubertPretrainingConfig(
        data=str(data), label_dir=str(labels), labels=["km"], label_rate=50.0, cmvn_stats_path=str(data / "cmvn.npz"),
        max_sample_size=600, min_sample_size=150))
    task.load_dataset("train")
    ds = task.datasets["train"]
    batches = ds.batch_by_size(ds.ordered_indices(), max_tokens=3600, required_batch_size_multiple=1)
    seconds = [len(b) * min(min(ds.sizes[i] for i in b), 600) / 100 for b in batches]
    return sum(seconds) / len(seconds)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, default=3.5, help="pretraining wall clock per system")
    p.add_argument("--finetune-updates", type=int, default=600)
    p.add_argument("--work-dir", type=Path, default=REPO / "demo_output",
                   help="shares the data and iteration-1 labels of examples/demo.py")
    p.add_argument("--speech-dir", type=Path, help="as the demo's --speech-dir (default: the demo's choice)")
    p.add_argument("--reuse-pretraining", action="store_true", help="keep finished pretraining runs, redo fine-tuning")
    p.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "side_by_side_cpu.md")
    args = p.parse_args(argv)

    work = args.work_dir.resolve()
    demo.main(["--work-dir", str(work), "--stop-after", "iteration1"]
              + (["--speech-dir", str(args.speech_dir)] if args.speech_dir else []))
    pre_data, ctc_data, labels = work / "data" / "pretrain", work / "data" / "ctc", work / "labels" / "it1"
    cfg_pre, cfg_ft = REPO / "config" / "pretraining", REPO / "config" / "finetuning"
    hours = args.budget_minutes / 60
    common_pre = [f"task.data={pre_data}", f"task.label_dir={labels}", "model.label_rate=50",
                  "optimization.max_update=1000000", f"optimization.stop_time_hours={hours}",
                  "dataset.validate_interval=100000", "dataset.validate_interval_updates=100000",
                  "checkpoint.save_interval_updates=100000", "common.log_interval=10"]
    systems = {
        "stock HuBERT (waveform CNN, cosine loss)": stock_hubert_pretraining(pre_data, labels),
        "fast_hubert": ['model.supervised_layers="[]"'],
        "fast_hubert + ILS (blocks 2, 4)": ['model.supervised_layers="[2]"'],
    }
    results = {}
    for i, (name, extra) in enumerate(systems.items()):
        run_dir = work / f"pretrain_{i}"
        if args.reuse_pretraining and (run_dir / "checkpoints" / "checkpoint_last.pt").exists():
            secs = float(next(line.split("done training in ")[1].split()[0]
                              for line in open(work / f"pretrain_{i}.log") if "done training in" in line))
        else:
            secs = demo.train(cfg_pre, "fast_hubert_tiny_cpu", run_dir, common_pre + extra,
                              int(args.budget_minutes * 60 * 4), f"pretrain {i}", log=work / f"pretrain_{i}.log")
        recs = demo.log_records(work / f"pretrain_{i}.log", "train_inner")
        valid = demo.log_records(work / f"pretrain_{i}.log", "valid")
        results[name] = {"pretrain_wall_s": round(secs), "updates": int(recs[-1]["num_updates"]),
                         "train_acc": accuracy(recs[-1]), "valid_acc": accuracy(valid[-1]) if valid else "-",
                         "ckpt": run_dir / "checkpoints" / "checkpoint_last.pt", "stock": i == 0}
    # the floor: fast_hubert with its initial weights (one update at a learning rate of ~0)
    floor_dir = work / "pretrain_none"
    if not (args.reuse_pretraining and (floor_dir / "checkpoints" / "checkpoint_last.pt").exists()):
        demo.train(cfg_pre, "fast_hubert_tiny_cpu", floor_dir,
                   [f"task.data={pre_data}", f"task.label_dir={labels}", "model.label_rate=50", "optimization.max_update=1",
                    "optimization.lr=[1e-30]", "dataset.validate_interval=100000"], 1, "init",
                   log=work / "pretrain_none.log")
    results["no pretraining (floor)"] = {"pretrain_wall_s": 0, "updates": 0, "train_acc": "-", "valid_acc": "-",
                                        "ckpt": floor_dir / "checkpoints" / "checkpoint_last.pt", "stock": False}

    for i, (name, r) in enumerate(results.items()):
        overrides = [f"task.data={ctc_data}", f"task.label_dir={ctc_data}", f"model.w2v_path={r['ckpt']}",
                     f"optimization.max_update={args.finetune_updates}", "model.apply_mask=false",
                     "dataset.validate_interval=100000", f"dataset.validate_interval_updates={args.finetune_updates}",
                     f"checkpoint.save_interval_updates={args.finetune_updates}", "dataset.max_tokens=2000",
                     "optimization.lr=[0.001]", "model.freeze_finetune_updates=0"]  # front-end frozen, as the recipes
        if r["stock"]:
            overrides += stock_hubert_finetuning()
        else:
            overrides += ["task.spec_aug_freq_masks=0", "task.spec_aug_time_masks=0"]
        secs = demo.train(cfg_ft, "tiny_cpu", work / f"finetune_{i}", overrides, args.finetune_updates,
                          f"fine-tune {i}", log=work / f"finetune_{i}.log")
        valid = demo.log_records(work / f"finetune_{i}.log", "valid")[-1]
        r.update(finetune_wall_s=round(secs), cer=float(valid["valid_uer"]), wer=float(valid["valid_wer"]))

    per_update = mean_batch_seconds(pre_data, labels)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [
        "# Side by side: stock HuBERT vs fast_hubert vs fast_hubert + ILS (same CPU time, same data)", "",
        f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
        f"Command: `.venv/bin/python benchmarks/side_by_side.py --budget-minutes {args.budget_minutes:g} "
        f"--finetune-updates {args.finetune_updates}`", "",
        f"Pretraining: {args.budget_minutes:g} min of training per system (`optimization.stop_time_hours`), tiny "
        "Transformer (4 x 256) for all, iteration-1 labels (MFCC k-means, 100 units, 50 Hz) on all the shared "
        f"audio; batches of up to 36 s, on average {per_update:.1f} s of audio per update for every system. "
        f"Fine-tuning: {args.finetune_updates} updates of letter CTC on so762_train (hubert_ctc, tiny_cpu recipe, "
        "batches of up to 20 s, lr 1e-3, Transformer trained from the first update, front-end (CNN / subsampler) frozen as in fairseq's recipes, no masking/SpecAugment for any system), scored by fairseq's validation on so762_dev (CER = letter error "
        "rate incl. word boundaries, `valid_uer`; greedy, no LM).", "",
        "| system | pretraining updates | audio seconds seen | masked-unit acc (train, last log) | dev CER % | dev WER % |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['updates']} | {r['updates'] * per_update:.0f} | {r['train_acc']} | "
                     f"{r['cer']:.1f} | {r['wer']:.1f} |")
    lines += ["", "Masked-unit accuracy: stock HuBERT predicts every 50 Hz label, fast_hubert every second one (25 Hz "
              "frames); accuracies are of the supervised layers (`L4` last block, `L2` ILS).", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    (work / "side_by_side.json").write_text(json.dumps({k: {kk: str(vv) for kk, vv in v.items()} for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
