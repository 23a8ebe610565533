"""End to end: `fairseq-hydra-train` with the Base configs, fast_hubert vs stock HuBERT, audio seconds
trained per second, and every precision a user can set (common.fp16 / bf16 / amp) for pretraining,
ILS and hubert_ctc fine-tuning.

Data: the utterances of ``--manifest`` (speech folder format) at least one full crop long (15.62 s),
listed ``--repeat`` times so that one epoch outlasts the run (no loader restarts), with random
500-unit labels at 50 Hz (the cost does not depend on their values) and the CMVN of that audio.
Every utterance is then cropped to the configs' 15.62 s and both systems batch 5 per update
(max_tokens 87.5 s), so audio per update = sentences per update x 15.62 s. Throughput is measured
from fairseq's own train_inner log records (``ups``, ``bsz``) between the first record after
``--skip`` updates and the last one, so start-up and the first updates are excluded.

    python benchmarks/e2e_throughput.py --speech-dir SPEECH --manifest librispeech_train_clean_100.tsv \\
        --updates 300 --workers 2 --output benchmarks/results/e2e_throughput_gpu.md

``--tiny`` runs the tiny config on the CPU instead (a rehearsal of the script, not a measurement).
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.recipes.runner import parse_log_records

from common import REPO, SPEECH_DIR, Log, reproduce, speech_rows, write_random_unit_data

CROP_S = 15.62  # the Base configs' max_sample_size: 1562 fbank frames, 250000 samples
NUM_UNITS = 500
PRECISIONS = {
    "fp16": ("common.fp16=true",),
    "bf16": ("common.fp16=false", "common.bf16=true"),
    "amp": ("common.fp16=false", "common.amp=true"),
}


def prepare(speech_dir: Path, manifest: str, min_seconds: float, repeat: int, work: Path, log) -> Path:
    """A fairseq data folder: train/valid manifests, random km labels, dict.km.txt, cmvn.npz."""
    data = work / "data"
    if (data / "cmvn.npz").is_file():
        return data
    rows = speech_rows(speech_dir, [manifest], min_seconds)
    write_random_unit_data(data, speech_dir, {"train": rows * repeat, "valid": rows[:8]}, NUM_UNITS)
    log(f"data: {len(rows)} utterances ({sum(int(r['num_samples']) for r in rows) / 16000 / 60:.1f} min) x {repeat}")
    return data


def hydra_train(
    config_dir: Path, config_name: str, run_dir: Path, overrides, timeout: int
) -> subprocess.CompletedProcess:
    cmd = [
        "fairseq-hydra-train",
        "--config-dir",
        str(config_dir),
        "--config-name",
        config_name,
        f"hydra.run.dir={run_dir}",
        f"common.user_dir={REPO / 'fast_hubert_plugin'}",
        *overrides,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def throughput(records, skip: int, crop_s: float):
    """(audio-s/s, updates/s, sentences per update, updates measured) between the records after ``skip``.

    Time comes from each record's ``ups`` (updates over the seconds since the previous record, 2
    decimals): fairseq rounds ``wall`` to whole seconds, too coarse for short or fast runs."""
    recs = [r for r in records if int(r["num_updates"]) >= skip]
    if len(recs) < 2:
        return None
    steps = [int(b["num_updates"]) - int(a["num_updates"]) for a, b in zip(recs, recs[1:])]
    rates = [float(r["ups"]) for r in recs[1:]]
    if min(rates) <= 0:
        return None
    updates = sum(steps)
    seconds = sum(n / ups for n, ups in zip(steps, rates))
    bsz = float(np.mean([float(r["bsz"]) for r in recs[1:]]))
    return updates * bsz * crop_s / seconds, updates / seconds, bsz, updates


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--speech-dir", default=SPEECH_DIR)
    data.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    data.add_argument("--work-dir", default="e2e_throughput_work")
    data.add_argument("--repeat", type=int, default=60, help="times the utterances are listed in train.tsv")
    data.add_argument("--workers", type=int, default=2, help="data-loader processes per GPU")
    runs = p.add_argument_group("runs")
    runs.add_argument("--updates", type=int, default=300)
    runs.add_argument("--skip", type=int, default=50, help="updates left out of the measurement (warm-up)")
    runs.add_argument("--log-interval", type=int, default=25)
    runs.add_argument("--precision-updates", type=int, default=20, help="updates of each precision run (0: none)")
    runs.add_argument("--precisions", default="fp16,bf16,amp", help="comma-separated precision runs (fp16, bf16, amp)")
    runs.add_argument("--no-throughput", action="store_true", help="only the precision runs")
    runs.add_argument("--tiny", action="store_true", help="CPU rehearsal: the tiny config, no fp16")
    runs.add_argument("--timeout", type=int, default=600)
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def common_overrides(args, data: Path) -> list:
    """Every pretraining run's: the data, one device, the loader processes, no validation or checkpoints."""
    return [
        f"task.data={data}",
        f"task.label_dir={data}",
        "task.labels=[km]",
        "model.label_rate=50",
        f"dataset.num_workers={args.workers}",
        "distributed_training.distributed_world_size=1",
        "distributed_training.nprocs_per_node=1",
        "optimization.update_freq=[1]",
        f"common.log_interval={args.log_interval}",
        "dataset.validate_interval=100000",
        "dataset.validate_interval_updates=0",
        "checkpoint.save_interval=100000",
        "checkpoint.save_interval_updates=0",
        "checkpoint.no_save=true",
        "common.tensorboard_logdir=null",
    ]


def configs(tiny: bool):
    """(config dir, name, extra overrides) of fast_hubert and of stock HuBERT: Base, or tiny on the CPU."""
    if tiny:
        fast_cfg = (config_dir("pretraining"), "fast_hubert_tiny_cpu", ["task.max_sample_size=200"])
        stock_extra = [
            "common.fp16=false",
            "common.cpu=true",
            "task.max_sample_size=32000",
            "task.min_sample_size=32000",
            "dataset.max_tokens=64000",
            "+model.encoder_layers=2",
            "+model.encoder_embed_dim=128",
            "+model.encoder_ffn_embed_dim=256",
            "+model.encoder_attention_heads=2",
        ]
        fast_cfg[2].append("common.cpu=true")
    else:
        # the Base config's former 87.5 s per GPU (it now carries 350 s), as stock's recipe and the record
        fast_cfg = (config_dir("pretraining"), "fast_hubert_base_librispeech", ["dataset.max_tokens=8750"])
        stock_extra = []
    stock_cfg = (config_dir("pretraining"), "hubert_base_librispeech", stock_extra)
    return fast_cfg, stock_cfg


def finetuning_data(work: Path) -> Path:
    """hubert_ctc data of 40 so762 utterances of the committed speech (letters, dictionary)."""
    ft_data = work / "ft_data"
    if (ft_data / "dict.ltr.txt").is_file():
        return ft_data
    rows = speech_rows(REPO / "tests" / "data" / "speech", ["so762_train.tsv"], 0.0)[:40]
    tsv = work / "ft_in.tsv"
    tsv.write_text(
        "path\ttext\n" + "".join(f"{REPO / 'tests/data/speech' / r['path']}\t{r['text']}\n" for r in rows),
        encoding="utf-8",
    )
    for split in ("train", "valid"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "fast_hubert_plugin.finetuning.prepare",
                str(tsv),
                "--split",
                split,
                "--output-dir",
                str(ft_data),
                "--quiet",
            ]
            + (["--write-dict"] if split == "train" else []),
            check=True,
            cwd=REPO,
        )
    return ft_data


class Benchmark:
    """The runs, their results so far and the record, rewritten after every precision run (a run that
    times out leaves the record of the ones before it)."""

    def __init__(self, args, argv):
        self.args, self.argv, self.log = args, argv, Log()
        self.work = Path(args.work_dir).resolve()
        self.crop_s = 2.0 if args.tiny else CROP_S
        data = prepare(Path(args.speech_dir), args.manifest, self.crop_s + 0.1, args.repeat, self.work, self.log)
        self.common = common_overrides(args, data)
        self.fast_cfg, self.stock_cfg = configs(args.tiny)
        self.results = []  # (name, what, exit code, wall seconds, throughput or None)
        self.precision = []  # (name, exit code, train losses)

    def throughput_runs(self) -> None:
        runs = [  # name, (config dir, name, extra), overrides, what
            ("stock", self.stock_cfg, [], "fairseq `hubert` Base, its recipe (fp16, fairseq's adam)"),
            ("fast", self.fast_cfg, [], "fast_hubert Base config as shipped (fbank on the GPU, torch_adamw)"),
            ("fast fairseq-adam", self.fast_cfg, ["optimizer._name=adam"], "fast_hubert Base with fairseq's adam"),
        ]
        for name, (cdir, cname, extra), overrides, what in runs:
            run_dir = self.work / "runs" / name.replace(" ", "_")
            shutil.rmtree(run_dir, ignore_errors=True)
            t0 = time.perf_counter()
            updates = [f"optimization.max_update={self.args.updates}"]
            proc = hydra_train(cdir, cname, run_dir, self.common + extra + overrides + updates, self.args.timeout)
            wall = time.perf_counter() - t0
            (self.work / f"{name.replace(' ', '_')}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
            tp = throughput(parse_log_records(proc.stdout + proc.stderr), self.args.skip, self.crop_s)
            self.log(
                f"{name}: exit {proc.returncode} in {wall:.0f} s; "
                + (
                    f"{tp[0]:,.0f} audio-s/s, {tp[1]:.2f} updates/s, {tp[2]:.2f} utterances per update over {tp[3]} updates"
                    if tp
                    else "no throughput: " + (proc.stderr or proc.stdout)[-2000:]
                )
            )
            self.results.append((name, what, proc.returncode, wall, tp))

    def precision_runs(self) -> None:
        """fast_hubert pretraining (+ ILS) and hubert_ctc fine-tuning of it at each precision."""
        precisions = [PRECISIONS[p.strip()] for p in self.args.precisions.split(",")]
        if self.args.tiny:  # CPU: no fp16 (it needs CUDA) and amp is a no-op there
            precisions = [PRECISIONS["bf16"]]
        ft_data = finetuning_data(self.work)
        for prec in precisions:
            label = " ".join(prec[-1:])
            for ils in (False, True):
                rc = self.pretrain(prec, label, ils)
                if not ils and rc == 0:
                    self.finetune(prec, label, ft_data)

    def interval(self) -> int:
        return max(1, self.args.precision_updates // 4)

    def run_dir(self, name: str) -> Path:
        return self.work / "prec" / name.replace(" ", "_").replace("=", "-").replace("+", "")

    def pretrain(self, prec, label: str, ils: bool) -> int:
        name = f"pretrain {label}{' + ILS' if ils else ''}"
        run_dir = self.run_dir(name)
        shutil.rmtree(run_dir, ignore_errors=True)
        ov = (
            self.common
            + self.fast_cfg[2]
            + list(prec)
            + [
                f"optimization.max_update={self.args.precision_updates}",
                f"common.log_interval={self.interval()}",
                "checkpoint.no_save=false",
                "checkpoint.save_interval_updates=0",
                "checkpoint.save_interval=1",
            ]
        )
        if ils:
            ov.append('model.supervised_layers="[4]"' if not self.args.tiny else 'model.supervised_layers="[2]"')
        return self.note(name, hydra_train(self.fast_cfg[0], self.fast_cfg[1], run_dir, ov, self.args.timeout))

    def finetune(self, prec, label: str, ft_data: Path) -> int:
        ckpt = self.run_dir(f"pretrain {label}") / "checkpoints" / "checkpoint_last.pt"
        name = f"fine-tune {label}"
        ft_dir = self.run_dir(name)
        shutil.rmtree(ft_dir, ignore_errors=True)
        ft_cfg = "tiny_cpu" if self.args.tiny else "base_10h"
        ov = [
            f"task.data={ft_data}",
            f"task.label_dir={ft_data}",
            f"model.w2v_path={ckpt}",
            *prec,
            f"optimization.max_update={self.args.precision_updates}",
            f"common.log_interval={self.interval()}",
            "model.freeze_finetune_updates=0",
            "dataset.validate_interval=100000",
            "dataset.validate_interval_updates=0",
            "checkpoint.no_save=true",
            "distributed_training.distributed_world_size=1",
            "common.tensorboard_logdir=null",
            "dataset.max_tokens=8000",
        ] + (["common.cpu=true"] if self.args.tiny else [])
        proc = hydra_train(config_dir("finetuning"), ft_cfg, ft_dir, ov, self.args.timeout)
        return self.note(name, proc)

    def note(self, name: str, proc: subprocess.CompletedProcess) -> int:
        """A precision run's train losses into the log and the record; returns its exit code."""
        losses = [float(r["loss"]) for r in parse_log_records(proc.stdout + proc.stderr)]
        self.precision.append((name, proc.returncode, losses))
        self.log(
            f"{name}: exit {proc.returncode}, losses {losses}"
            + ("" if proc.returncode == 0 else "\n" + (proc.stderr or proc.stdout)[-1500:])
        )
        self.write_report()
        return proc.returncode

    def write_report(self) -> None:
        if self.args.output:
            Path(self.args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(self.args.output).write_text("\n".join(self.record()), encoding="utf-8")
            print(f"wrote {self.args.output}")

    def record(self) -> list:
        import torch

        args = self.args
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
        stock_tp = next((r[4] for r in self.results if r[0] == "stock" and r[4]), None)
        out = [
            "# End to end: fairseq-hydra-train, fast_hubert Base vs stock HuBERT Base",
            "",
            f"Reproduce: `{reproduce('e2e_throughput.py', self.argv)}`",
            "",
            f"- machine: {device}; {os.cpu_count()} CPU cores; Python {platform.python_version()}, torch {torch.__version__}",
            f"- {args.workers} data-loader processes, one GPU (distributed_world_size=1, update_freq [1]), "
            f"{args.updates} updates, measured from update {args.skip} on (fairseq's train_inner `ups` and `bsz`)",
            f"- audio per update = sentences per update x {self.crop_s:g} s (every utterance is longer than the crop)",
            "",
            "| run | what | exit | wall (s) | audio-s/s | updates/s | utterances/update | vs stock |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, what, rc, wall, tp in self.results:
            if tp:
                ratio = f"{tp[0] / stock_tp[0]:.2f}x" if stock_tp else "-"
                out.append(
                    f"| {name} | {what} | {rc} | {wall:.0f} | {tp[0]:,.0f} | {tp[1]:.2f} | {tp[2]:.2f} | {ratio} |"
                )
            else:
                out.append(f"| {name} | {what} | {rc} | {wall:.0f} | - | - | - | - |")
        if self.precision:
            out += [
                "",
                "## Precisions (fast_hubert Base; fine-tuning: hubert_ctc base_10h on 40 so762 utterances)",
                "",
                "| run | exit | train losses (fairseq's train_inner records) |",
                "|---|---:|---|",
            ]
            out += [
                f"| {n} | {rc} | {', '.join(f'{v:.3f}' for v in losses) or '-'} |" for n, rc, losses in self.precision
            ]
        return out + ["", "<details><summary>log</summary>", "", "```", *self.log.lines, "```", "", "</details>", ""]

    def exit_code(self) -> int:
        return 0 if all(r[2] == 0 for r in self.results) and all(rc == 0 for _, rc, _ in self.precision) else 1


def main(argv=None):
    args = parse_args(argv)
    bench = Benchmark(args, argv)
    if not args.no_throughput:
        bench.throughput_runs()
    bench.write_report()
    if args.precision_updates > 0:
        bench.precision_runs()
    return bench.exit_code()


if __name__ == "__main__":
    sys.exit(main())
