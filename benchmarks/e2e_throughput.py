"""End to end: `fairseq-hydra-train` on one GPU, fast_hubert vs stock HuBERT, audio seconds trained per
second, the GPU-hours HuBERT Base's iteration (400k updates of 2,800 s) would take at that rate, model FLOPs
utilisation, and every precision a user can set (common.fp16 / bf16 / amp) for pretraining, ILS and
hubert_ctc fine-tuning.

Configs: ``--fast-config`` and ``--stock-config`` in ``--config-dir`` (default: the package's pretraining
configs; the Base ones), with ``--fast-override`` / ``--stock-override`` on top, and ``--update-freq`` (1 by
default: one GPU's share of the Base batch per update; ``config``: the config's own, e.g. a 1-GPU config's
2,800 s per update).

Data: the utterances of ``--manifest`` (speech folder format) at least one full crop long (15.62 s),
listed often enough that one epoch outlasts the run (no loader restarts; ``--repeat`` times at least), with
random 500-unit labels at 50 Hz (the cost does not depend on their values) and the CMVN of that audio.
Every utterance is then cropped to the configs' 15.62 s, so audio per update = sentences per update x
15.62 s. Throughput is measured from fairseq's own train_inner log records (``ups``, ``bsz``) between the
first record after ``--skip`` updates and the last one, so start-up and the first updates are excluded;
its spread is that of the log intervals. MFU (with ``--peak-tflops``, the chip's measured matrix-product
peak) = FLOPs per audio-second x audio-s/s / peak, the FLOPs from the analytic count of each run's model
at its crop (``fast_hubert_plugin/utils/flops.py``; it agrees with torch's count to 0.1 %,
``tests/test_flops.py``), masked frames at their expected share.

    python benchmarks/e2e_throughput.py --speech-dir SPEECH --manifest librispeech_train_clean_100.tsv \\
        --updates 300 --workers 2 --output benchmarks/results/e2e_throughput_gpu.md
    python benchmarks/e2e_throughput.py --speech-dir SPEECH --fast-config fast_hubert_base_librispeech_1gpu \\
        --stock-config hubert_base_librispeech_1gpu --update-freq config --runs stock,fast --updates 25 \\
        --skip 5 --log-interval 5 --workers 4 --update-audio 2800 --peak-tflops 700 --output OUT/e2e_1gpu.md

``--tiny`` runs the tiny config on the CPU instead (a rehearsal of the script, not a measurement).
"""

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.recipes.runner import parse_log_records
from fast_hubert_plugin.utils.atomic import atomic_write_text

from common import REPO, SPEECH_DIR, Log, reproduce, speech_rows, write_random_unit_data

CROP_S = 15.62  # the Base configs' max_sample_size: 1562 fbank frames, 250000 samples
NUM_UNITS = 500
UPDATE_AUDIO_S = 2_800  # HuBERT Base's audio per update (32 GPUs x 87.5 s)
ITERATION_AUDIO_S = 400_000 * UPDATE_AUDIO_S  # HuBERT Base's iteration: 400k updates
PRECISIONS = {
    "fp16": ("common.fp16=true",),
    "bf16": ("common.fp16=false", "common.bf16=true"),
    "amp": ("common.fp16=false", "common.amp=true"),
}


def prepare(speech_dir: Path, manifest: str, min_seconds: float, args, work: Path, log) -> Path:
    """A fairseq data folder: train/valid manifests, random km labels, dict.km.txt, cmvn.npz; the rows listed
    ``--repeat`` times, or more: enough crops for ``--updates`` updates of ``--update-audio`` seconds."""
    data = work / "data"
    if (data / "cmvn.npz").is_file():
        return data
    rows = speech_rows(speech_dir, [manifest], min_seconds)
    crops_needed = (args.updates + 2) * args.update_audio / min_seconds
    repeat = max(args.repeat, math.ceil(crops_needed / len(rows)))
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


def rate(audio_seconds_per_second: float) -> str:
    """Whole audio-s/s, 3 digits below 100 (a CPU rehearsal)."""
    x = audio_seconds_per_second
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def interval_rates(records, skip: int, crop_s: float) -> list:
    """Audio-s/s of each log interval after ``skip`` (the spread of ``throughput``)."""
    recs = [r for r in records if int(r["num_updates"]) >= skip]
    return [float(r["ups"]) * float(r["bsz"]) * crop_s for r in recs[1:] if float(r["ups"]) > 0]


def flops_per_audio_second(run_dir: Path, stock: bool) -> float:
    """Analytic FLOPs of a training step per audio-second for the model and crop that a run composed (its
    ``.hydra/config.yaml``, on the config dataclass's defaults), masked frames at their expected share."""
    from fairseq.models.hubert.hubert import HubertConfig

    from fast_hubert_plugin.models.fast_hubert import FastHubertConfig
    from fast_hubert_plugin.utils.flops import fast_hubert_step_flops, hubert_step_flops

    composed = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    model = OmegaConf.to_container(composed.model, resolve=True)
    cfg = HubertConfig() if stock else FastHubertConfig()
    for key, value in model.items():
        setattr(cfg, key, value)
    crop = int(composed.task.max_sample_size)
    if stock:  # sizes in samples
        return hubert_step_flops(cfg, crop).step / (crop / 16000)
    return fast_hubert_step_flops(cfg, crop, NUM_UNITS + 4).step / (crop / 100)  # fbank frames; 4 special symbols


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--speech-dir", default=SPEECH_DIR)
    data.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    data.add_argument("--work-dir", default="e2e_throughput_work")
    data.add_argument("--repeat", type=int, default=60, help="times the utterances are listed in train.tsv (at least)")
    data.add_argument("--workers", type=int, default=2, help="data-loader processes per GPU")
    data.add_argument(
        "--update-audio", type=float, default=87.5, help="seconds of audio per update (sizes the data to the runs)"
    )
    cfgs = p.add_argument_group("configs")
    cfgs.add_argument("--config-dir", type=Path, default=None, help="default: the package's pretraining configs")
    cfgs.add_argument("--fast-config", default="fast_hubert_base_librispeech")
    cfgs.add_argument("--stock-config", default="hubert_base_librispeech")
    cfgs.add_argument("--fast-override", action="append", default=[], help="a Hydra override of fast_hubert's runs")
    cfgs.add_argument("--stock-override", action="append", default=[], help="a Hydra override of stock HuBERT's run")
    cfgs.add_argument(
        "--update-freq", default="1", help="optimization.update_freq of the throughput runs; 'config': the config's"
    )
    runs = p.add_argument_group("runs")
    runs.add_argument("--runs", default="stock,fast,fast fairseq-adam", help="comma-separated throughput runs")
    runs.add_argument("--peak-tflops", type=float, default=None, help="the chip's measured matrix-product peak: MFU")
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
        f"common.log_interval={args.log_interval}",
        "dataset.validate_interval=100000",
        "dataset.validate_interval_updates=0",
        "checkpoint.save_interval=100000",
        "checkpoint.save_interval_updates=0",
        "checkpoint.no_save=true",
        "common.tensorboard_logdir=null",
    ] + ([] if args.update_freq == "config" else [f"optimization.update_freq=[{args.update_freq}]"])


def configs(args):
    """(config dir, name, extra overrides) of fast_hubert and of stock HuBERT: --fast-config / --stock-config
    with their overrides, or with --tiny the tiny fast_hubert and a tiny stock HuBERT on the CPU."""
    if args.tiny:
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
        stock_cfg = (config_dir("pretraining"), "hubert_base_librispeech", stock_extra)
    else:
        folder = args.config_dir or config_dir("pretraining")
        fast_cfg = (folder, args.fast_config, [])
        stock_cfg = (folder, args.stock_config, [])
    return (fast_cfg[0], fast_cfg[1], fast_cfg[2] + args.fast_override), (
        stock_cfg[0],
        stock_cfg[1],
        stock_cfg[2] + args.stock_override,
    )


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
        data = prepare(Path(args.speech_dir), args.manifest, self.crop_s + 0.1, args, self.work, self.log)
        self.common = common_overrides(args, data)
        self.fast_cfg, self.stock_cfg = configs(args)
        self.results = []  # (name, what, exit code, wall seconds, throughput or None, interval rates, FLOPs/audio-s)
        self.precision = []  # (name, exit code, train losses)

    def throughput_runs(self) -> None:
        runs = [  # name, (config dir, name, extra), overrides, what
            ("stock", self.stock_cfg, [], f"fairseq `hubert`: `{self.stock_cfg[1]}` (fp16, fairseq's adam)"),
            ("fast", self.fast_cfg, [], f"fast_hubert: `{self.fast_cfg[1]}` as shipped (fbank on the GPU)"),
            ("fast fairseq-adam", self.fast_cfg, ["optimizer._name=adam"], "the same with fairseq's adam"),
        ]
        chosen = [r.strip() for r in self.args.runs.split(",")]
        for name, (cdir, cname, extra), overrides, what in [r for r in runs if r[0] in chosen]:
            run_dir = self.work / "runs" / name.replace(" ", "_")
            shutil.rmtree(run_dir, ignore_errors=True)
            t0 = time.perf_counter()
            updates = [f"optimization.max_update={self.args.updates}"]
            proc = hydra_train(cdir, cname, run_dir, self.common + extra + overrides + updates, self.args.timeout)
            wall = time.perf_counter() - t0
            (self.work / f"{name.replace(' ', '_')}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
            records = parse_log_records(proc.stdout + proc.stderr)
            tp = throughput(records, self.args.skip, self.crop_s)
            spread = interval_rates(records, self.args.skip, self.crop_s)
            flops = flops_per_audio_second(run_dir, stock=name == "stock") if proc.returncode == 0 else None
            self.log(
                f"{name}: exit {proc.returncode} in {wall:.0f} s; "
                + (
                    f"{tp[0]:,.0f} audio-s/s, {tp[1]:.2f} updates/s, {tp[2]:.2f} utterances per update over {tp[3]} updates"
                    if tp
                    else "no throughput: " + (proc.stderr or proc.stdout)[-2000:]
                )
            )
            self.results.append((name, what, proc.returncode, wall, tp, spread, flops))

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
            atomic_write_text(self.args.output, "\n".join(self.record()))
            print(f"wrote {self.args.output}")

    def record(self) -> list:
        import torch

        args = self.args
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
        stock_tp = next((r[4] for r in self.results if r[0] == "stock" and r[4]), None)
        update_freq = "the configs' own" if args.update_freq == "config" else f"[{args.update_freq}]"
        out = [
            "# End to end: fairseq-hydra-train, fast_hubert Base vs stock HuBERT Base",
            "",
            f"Reproduce: `{reproduce('e2e_throughput.py', self.argv)}`",
            "",
            f"- machine: {device}; {os.cpu_count()} CPU cores; Python {platform.python_version()}, torch {torch.__version__}",
            f"- {args.workers} data-loader processes, one GPU (distributed_world_size=1, update_freq {update_freq}), "
            f"{args.updates} updates, measured from update {args.skip} on (fairseq's train_inner `ups` and `bsz`)",
            f"- audio per update = sentences per update x {self.crop_s:g} s (every utterance is longer than the crop)",
            f"- GPU-hours: HuBERT Base's iteration, 400k updates of 2,800 s ({ITERATION_AUDIO_S:,} audio-s), at the "
            "run's audio-s/s; MFU: analytic FLOPs per audio-second at the crop x audio-s/s / "
            + (f"the measured peak {args.peak_tflops:g} TFLOP/s" if args.peak_tflops else "a peak (not given: -)"),
            "",
            "| run | what | exit | wall (s) | audio-s/s | per log interval (min-max) | updates/s | audio per update (s) "
            "| GPU-hours for the iteration | GFLOP per audio-s | MFU | vs stock |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, what, rc, wall, tp, spread, flops in self.results:
            if not tp:
                out.append(f"| {name} | {what} | {rc} | {wall:.0f} | - | - | - | - | - | - | - | - |")
                continue
            ratio = f"{tp[0] / stock_tp[0]:.2f}x" if stock_tp else "-"
            hours = ITERATION_AUDIO_S / tp[0] / 3600
            gflops = f"{flops / 1e9:.2f}" if flops else "-"
            mfu = f"{flops * tp[0] / (args.peak_tflops * 1e12):.1%}" if flops and args.peak_tflops else "-"
            out.append(
                f"| {name} | {what} | {rc} | {wall:.0f} | {rate(tp[0])} | {rate(min(spread))}-{rate(max(spread))} | "
                f"{tp[1]:.3f} | {tp[2] * self.crop_s:,.0f} | {hours:,.1f} | {gflops} | {mfu} | {ratio} |"
            )
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
