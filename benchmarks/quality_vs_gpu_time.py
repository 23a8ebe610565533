"""Representation quality at equal GPU time: fast_hubert vs stock fairseq HuBERT, the GPU record.

Both systems run HuBERT's two-iteration recipe (``fast_hubert_plugin.recipes.two_iterations``, as
``quality_vs_compute.py`` runs it on CPUs): iteration 1 on the same MFCC units, iteration 2 on k-means
units of a block of each system's own iteration-1 model (fast_hubert's block for fast_hubert, stock
HuBERT's for stock HuBERT), each iteration a fresh model. Both share one Transformer size, optimiser,
precision and batch (``Preset``). A budget is GPU wall-clock minutes of pretraining per system, both
iterations, half each: each system's wall seconds per update are measured first, alone on the GPU, by
two runs of different lengths (start-up cancels), and its updates per iteration are budget / 2 / that.
The two systems' chains then run side by side, with the probes, so their runs take longer than their
budget; the budget is held by the updates. Every pretrained model, fbank, MFCC and fast_hubert's initial
weights are probed with ``fast-hubert-probe`` (frozen, weighted layer sum, BiLSTM letter CTC; trained on
so762_train, scored on so762_dev), once per probe seed: the seeds' mean and spread. The exported
transformers model of fast_hubert's iteration 2 is checked on the device against the CPU
(``export_gpu_check.py``).

    python3 benchmarks/quality_vs_gpu_time.py OUT SPEECH_DIR [cuda|cpu] [--budget MIN] [--probe-seeds N]

OUT: where the records go (``quality_vs_gpu_time_MODE.md`` and ``.json``, ``export_gpu_check_MODE.md``;
no checkpoints); SPEECH_DIR: a transcribed speech folder of the so762 layout (the project's speech, or a
copy made small enough to carry by ``tools/offline_gpu/pack_speech.py``); ``cuda`` (default): the GPU
record, ``cpu``: its rehearsal on a CPU with a tiny model and budget (``PRESETS``; its budget is CPU time,
since wall-clock on a shared CPU times the load). Stages are resumable in ``--work-dir``: a killed run
continues where it was.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, PretrainingRun, Recipe, System, probe
from fast_hubert_plugin.utils.atomic import atomic_write_text

from common import (
    BASELINES,
    QUALITY_WORK_DIR,
    REPO,
    baseline_upstream,
    machine,
    run_tag,
    seconds_per_update,
    spread,
    verdict,
    workspace,
)

COMPARED = ("fast_hubert", "hubert")
CLOCKS = {"wall": "Wall-clock", "cpu": "CPU"}  # what a budget's minute is


class Outcome(NamedTuple):
    recipes: List[Recipe]  # fast_hubert's, stock HuBERT's
    runs: Dict[str, Tuple[PretrainingRun, PretrainingRun]]  # system -> its two iterations
    baselines: Dict[str, str]  # title -> probe name
    probes: Dict[Tuple[str, int], dict]  # (probe name, probe seed) -> fast-hubert-probe's result
    export_rc: int  # export_gpu_check.py's exit code


@dataclass(frozen=True)
class Preset:
    """What one record runs: the budget, the model size every system shares, the probes."""

    budget: float  # minutes of pretraining per system, both iterations (half each)
    clock: str  # what a minute is: "wall" (a GPU's time) or "cpu" (the training processes' CPU time)
    calibration: Tuple[Tuple[int, int], Tuple[int, int]]  # updates of the two timing runs: fast_hubert, stock
    layers: int  # Transformer blocks
    dim: int  # Transformer width; FFN 4x, heads of 64 dimensions
    conv_pos: int  # positional convolution kernel (16 groups)
    batch_seconds: float  # audio per update, every system
    precision: Tuple[str, ...]  # fairseq-hydra-train overrides of the numeric precision
    loader_workers: int
    layer: int  # 1-based block clustered for iteration 2
    clusters: int  # k-means units of both iterations
    probe_updates: int
    probe_seeds: int
    probe_jobs: int  # probes at a time, beside the two pretraining chains
    probe_threads: int  # CPU threads of each probe
    threads: int  # CPU threads of the CPU stages (CMVN, MFCC dump and k-means)

    def overrides(self, system: System, updates: int) -> Tuple[str, ...]:
        """fairseq-hydra-train overrides of ``system``'s tiny config for this size, batch and precision, in a
        run of ``updates`` (a tenth of them warm up, HuBERT-Base's 8 % rounded up)."""
        front_end = (
            ()
            if system.name == "hubert"
            else (f"model.conv_channels={self.dim}", f"model.fbank_encoder_dim={self.dim // 2}")
        )
        return (
            f"model.encoder_layers={self.layers}",
            f"model.encoder_embed_dim={self.dim}",
            f"model.encoder_ffn_embed_dim={4 * self.dim}",
            f"model.encoder_attention_heads={max(1, self.dim // 64)}",
            f"model.conv_pos={self.conv_pos}",
            "model.conv_pos_groups=16",
            *front_end,
            f"dataset.max_tokens={round(self.batch_seconds * system.size_rate)}",
            f"dataset.num_workers={self.loader_workers}",
            f"lr_scheduler.warmup_updates={max(1, updates // 10)}",
            # one checkpoint, at the end: saves inside a budgeted run would cost GPU time
            "checkpoint.save_interval_updates=0",
            "checkpoint.save_interval=100000",
            *self.precision,
        )

    def size(self) -> str:
        heads = max(1, self.dim // 64)
        return (
            f"{self.layers} x {self.dim} Transformer (FFN {4 * self.dim}, {heads} head{'s' if heads > 1 else ''} "
            f"of 64, positional convolution {self.conv_pos}/16)"
        )


PRESETS: Dict[str, Preset] = {
    # One H100: 1 GPU-minute per system fills a part of about 6 minutes (the estimate is in benchmarks/README.md).
    # A GPU step is bound by host time (results/train_step_gpu_bf16.md), so a wider model than the CPU's tiny one
    # and the Base configs' 87.5 s per batch cost little more per update there.
    "cuda": Preset(
        budget=1.0,
        clock="wall",
        calibration=((2, 250), (2, 120)),
        layers=6,
        dim=512,
        conv_pos=64,
        batch_seconds=87.5,
        precision=("common.fp16=true",),  # fairseq's HuBERT recipe; stock HuBERT fails under autocast
        loader_workers=2,
        layer=3,  # the middle block, as HuBERT Base clusters block 6 of 12
        clusters=100,
        probe_updates=1000,
        probe_seeds=3,
        probe_jobs=6,
        probe_threads=1,  # 6 probes and 2 trainings (3 processes each) on a 16-core host
        threads=8,
    ),
    # The rehearsal on 2 CPU cores: the same stages and files with a tiny model, budget and probe. Its budget is
    # CPU time: on a shared CPU a 60-update run took as long a wall-clock as a 1-update one (35 s, load 18).
    "cpu": Preset(
        budget=0.04,
        clock="cpu",
        calibration=((1, 60), (1, 6)),  # 1.6 and 5 CPU-s apart; start-up varies by 0.3-0.6
        layers=2,
        dim=64,
        conv_pos=16,
        batch_seconds=8,
        precision=(),
        loader_workers=1,
        layer=1,
        clusters=8,
        probe_updates=2,
        probe_seeds=3,
        probe_jobs=2,
        probe_threads=1,
        threads=1,
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="where the records go")
    p.add_argument("speech_dir", type=Path, help="a transcribed speech folder (so762 layout)")
    p.add_argument("mode", nargs="?", choices=list(PRESETS), default="cuda", help="cuda: the record; cpu: rehearsal")
    p.add_argument("--budget", type=float, help="GPU-minutes of pretraining per system (default: the preset's)")
    p.add_argument("--probe-seeds", type=int, help="probe seeds per upstream (default: the preset's, 3)")
    p.add_argument("--work-dir", type=Path, help="the stages' folder (default: quality_vs_compute_work/gpu_time_MODE)")
    args = p.parse_args(argv)
    preset = PRESETS[args.mode]
    overridden = {k: v for k, v in (("budget", args.budget), ("probe_seeds", args.probe_seeds)) if v is not None}
    args.preset = Preset(**{**asdict(preset), **overridden})
    args.work_dir = args.work_dir or QUALITY_WORK_DIR / f"gpu_time_{args.mode}"
    return args


class Record:
    """The runs of one record: calibration, the two systems' chains, the probes, the export check."""

    def __init__(self, args):
        self.args, self.preset, self.mode = args, args.preset, args.mode
        self.label = f"gpu_time_{args.mode}"  # names this size's runs apart from the CPU benchmark's
        self.seconds: Dict[str, float] = {}
        self.ws = workspace(args.work_dir, args.speech_dir, self.preset.clusters, self.preset.threads, args.mode)
        self.systems = [SYSTEMS[n] for n in COMPARED]

    def calibrate(self) -> Dict[str, float]:
        """Each system's seconds per update, one run at a time: nothing else shares the device."""
        t = time.time()
        costs = {
            s.name: seconds_per_update(
                self.ws, s, updates, self.preset.overrides(s, updates[1]), self.label, self.preset.clock
            )
            for s, updates in zip(self.systems, self.preset.calibration)
        }
        self.seconds["calibration"] = round(time.time() - t, 1)
        print(
            f"{CLOCKS[self.preset.clock]} seconds per update:", {k: round(v, 4) for k, v in costs.items()}, flush=True
        )
        return costs

    def recipe(self, system: System, cost: float) -> Recipe:
        updates = max(1, round(self.preset.budget * 60 / 2 / cost))
        return Recipe(
            self.ws,
            system,
            (updates, updates),
            1,
            self.preset.layer,
            self.preset.clusters,
            threads=1,
            progress=False,
            overrides=self.preset.overrides(system, updates),
            tag=run_tag(system.name, self.label, self.preset.budget, 1),
        )

    def run(self, costs: Dict[str, float]):
        """Both chains side by side; each model's probes (and the baselines') queue as soon as it exists."""
        p, t = self.preset, time.time()
        jobs: Dict[Tuple[str, int], object] = {}
        with ThreadPoolExecutor(p.probe_jobs) as probes, ThreadPoolExecutor(len(self.systems) + 1) as chains:

            def probe_seeds(name: str, upstream: str):
                for seed in range(1, p.probe_seeds + 1):
                    probe_name = name + (f"_p{seed}" if seed != 1 else "")
                    jobs[name, seed] = probes.submit(
                        probe, self.ws, probe_name, upstream, p.probe_updates, seed, p.probe_threads
                    )

            def chain(recipe: Recipe):
                it1 = recipe.iteration1()
                probe_seeds(f"{recipe.name}_it1", it1.checkpoint)
                it2 = recipe.iteration2(it1)
                probe_seeds(f"{recipe.name}_it2", it2.checkpoint)
                if recipe.system.name == "fast_hubert":
                    jobs["export"] = probes.submit(self.export_check, it2.checkpoint)
                return it1, it2

            def baselines() -> Dict[str, str]:
                names = {}
                for name in BASELINES:
                    overrides = p.overrides(SYSTEMS["fast_hubert"], 1) if name == "init" else ()
                    title, probe_name, upstream = baseline_upstream(self.ws, name, overrides, self.label)
                    probe_seeds(probe_name, upstream)
                    names[title] = probe_name
                return names

            recipes = [self.recipe(s, costs[s.name]) for s in self.systems]
            chain_jobs = {r.system.name: chains.submit(chain, r) for r in recipes}
            baseline_names = chains.submit(baselines).result()
            runs = {name: job.result() for name, job in chain_jobs.items()}
            self.seconds["chains"] = round(time.time() - t, 1)
            export_rc = jobs.pop("export").result()
            results = {key: job.result() for key, job in jobs.items()}
        self.seconds["chains_and_probes"] = round(time.time() - t, 1)
        return Outcome(recipes, runs, baseline_names, results, export_rc)

    def export_check(self, checkpoint: str) -> int:
        """export_gpu_check.py on a checkpoint (a dry run on a CPU): its Markdown into OUT, its exit code."""
        out = self.args.out / f"export_gpu_check_{self.mode}.md"
        manifest = self.args.speech_dir / "so762_dev.tsv"
        script = REPO / "benchmarks" / "export_gpu_check.py"
        cmd = [sys.executable, script, checkpoint, self.ws.work / "export", manifest]
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        atomic_write_text(out, proc.stdout)
        print(f"export check: exit {proc.returncode} ({out.name})", flush=True)
        if proc.returncode:
            print(proc.stderr[-3000:], flush=True)
        return proc.returncode


def cer_summary(results: Dict[Tuple[str, int], dict], name: str) -> Tuple[float, List[float]]:
    """The mean probe CER over the seeds of one upstream, and the seeds' CERs."""
    cers = [r["cer"] for (n, _), r in sorted(results.items()) if n == name]
    return statistics.mean(cers), cers


def cell(results, name: str) -> str:
    mean, cers = cer_summary(results, name)
    return f"{mean:.1f} ({min(cers):.1f}-{max(cers):.1f})"


def pretraining_hours(ws) -> float:
    """Hours of audio in the pretraining manifests (train and valid)."""
    samples = 0
    for split in ("train", "valid"):
        lines = (ws.pretrain_data / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        samples += sum(int(line.split("\t")[1]) for line in lines if line.strip())
    return samples / 16000 / 3600


def device_line(mode: str, threads: int) -> str:
    import torch

    if mode == "cuda" and torch.cuda.is_available():
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        return f"{torch.cuda.get_device_name(0)} ({gib:.0f} GiB), {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return machine(threads)


def header(args, rec: Record, costs, recipes, seconds: float) -> List[str]:
    p, ws = args.preset, rec.ws
    title = "GPU" if args.mode == "cuda" else "CPU rehearsal of the GPU record"
    suffixes = sorted({Path(r["path"]).suffix for r in ws.corpus.pretrain})
    return [
        f"# Representation quality at equal GPU time: fast_hubert vs stock HuBERT ({title})",
        "",
        f"Machine: {device_line(args.mode, p.threads)}; load average at the end {os.getloadavg()[0]:.1f}.",
        f"Command: `python3 benchmarks/quality_vs_gpu_time.py OUT {args.speech_dir.name} {args.mode}"
        + (f" --budget {p.budget:g}" if p.budget != PRESETS[args.mode].budget else "")
        + (f" --probe-seeds {p.probe_seeds}" if p.probe_seeds != PRESETS[args.mode].probe_seeds else "")
        + "`",
        f"Model (both systems): {p.size()}; fast_hubert: fbank, two stride-2 convolutions ({p.dim} channels), "
        "40 ms frames, CE head on masked frames; stock HuBERT: fairseq's `hubert` (waveform CNN, 20 ms, cosine "
        "logits); the tiny configs' optimiser (fairseq's adam, lr 5e-4, polynomial decay, a tenth warming up), "
        f"{p.batch_seconds:g} s of audio per update, 6 s crops, {' '.join(p.precision) or 'fp32'}.",
        f"Data: {len(ws.corpus.pretrain)} utterances ({pretraining_hours(ws):.2f} h, {', '.join(suffixes)} audio) of "
        f"pretraining audio; probes trained on so762_train ({len(ws.corpus.train)}) and scored on so762_dev "
        f"({len(ws.corpus.dev)}; speakers disjoint), {p.probe_updates} updates, {p.probe_seeds} probe seeds each. "
        f"Iteration 1: MFCC k-means units (K={p.clusters}, 50 Hz); iteration 2: K={p.clusters} units of block "
        f"{p.layer} of each system's own iteration-1 model.",
        f"Budget: **{p.budget:g} GPU-minutes of pretraining per system**"
        + (" (here: CPU minutes of the training processes)" if p.clock == "cpu" else " (wall-clock)")
        + f", both iterations, half each. {CLOCKS[p.clock]} seconds "
        "per update, measured alone on the device by two runs ("
        + "; ".join(f"{s.title}: {a} and {b} updates" for s, (a, b) in zip(rec.systems, p.calibration))
        + "; start-up cancels): "
        + ", ".join(f"{SYSTEMS[k].title} {v:.4f}" for k, v in costs.items())
        + "; so "
        + ", ".join(f"{r.system.title} {r.updates[0]}" for r in recipes)
        + " updates per iteration.",
        f"Time of this invocation (stages done before are reused): {seconds / 60:.1f} min in all; calibration "
        f"{rec.seconds.get('calibration', 0) / 60:.1f} min; the two chains side by side, with the probes, "
        f"{rec.seconds.get('chains_and_probes', 0) / 60:.1f} min (a run's wall-clock below includes that sharing).",
        "",
    ]


def accuracy(run) -> str:
    """The last logged masked accuracy of each supervised layer (fast_hubert: L<block>, stock: 0)."""
    return ", ".join(f"{k.split('_')[-1]} {v:.3f}" for k, v in sorted(run.masked_accuracy.items())) or "-"


def tables(args, recipes, runs, baseline_names, results) -> List[str]:
    lines = [
        f"## Probe dev CER (%): mean of {args.preset.probe_seeds} probe seeds (min-max)",
        "",
        "| system | iteration 1 | iteration 2 | updates per iteration | pretraining wall-s (it1, it2) | "
        "masked accuracy (it1; it2) |",
        "|---|---|---|---|---|---|",
    ]
    for r in recipes:
        it1, it2 = runs[r.system.name]
        lines.append(
            f"| {r.system.title} | {cell(results, r.name + '_it1')} | {cell(results, r.name + '_it2')} | "
            f"{r.updates[0]} | {it1.wall_s:.0f}, {it2.wall_s:.0f} | {accuracy(it1)}; {accuracy(it2)} |"
        )
    lines += ["", "| baseline (no pretraining) | probe dev CER % |", "|---|---|"]
    lines += [f"| {title} | {cell(results, name)} |" for title, name in baseline_names.items()]
    lines += ["", "## Every probe", "", "| upstream | probe seed | CER % | WER % | layer weights (0 = input) |"]
    lines.append("|---|---|---|---|---|")
    for (name, seed), res in sorted(results.items()):
        weights = " ".join(f"{w:.2f}" for w in res["layer_weights"])
        lines.append(f"| {name} | {seed} | {res['cer']:.1f} | {res['wer']:.1f} | {weights} |")
    return lines + [""]


def targets(recipes, baseline_names, results) -> List[str]:
    """a: each system's iteration 2 below the best input feature; b: fast_hubert below stock HuBERT at each
    iteration; d: iteration 2 below iteration 1. Clearly = by more than max(1 point, the seeds' spreads)."""
    name = {r.system.name: r.name for r in recipes}
    features = [cer_summary(results, baseline_names[f]) for f in ("fbank", "mfcc")]
    best, best_cers = min(features)
    out = ["## Targets", ""]
    for system, run in name.items():
        m, cers = cer_summary(results, run + "_it2")
        margin = max(1.0, spread(cers), spread(best_cers))
        out.append(
            f"- a. {SYSTEMS[system].title}, iteration 2, {m:.1f} % vs the best input feature {best:.1f} %: "
            f"**{verdict(m < best - margin, m, best)}**"
        )
    for it in (1, 2):
        (f, fc), (h, hc) = (cer_summary(results, f"{name[s]}_it{it}") for s in COMPARED)
        out.append(
            f"- b. fast_hubert below stock HuBERT at equal GPU time, iteration {it}: {f:.1f} vs {h:.1f} %: "
            f"**{verdict(f < h - max(1.0, spread(fc), spread(hc)), f, h)}**"
        )
    for system, run in name.items():
        (m1, c1), (m2, c2) = cer_summary(results, run + "_it1"), cer_summary(results, run + "_it2")
        out.append(
            f"- d. {SYSTEMS[system].title}, iteration 2 below its iteration 1: {m2:.1f} vs {m1:.1f} %: "
            f"**{verdict(m2 < m1 - max(1.0, spread(c1), spread(c2)), m1, m2)}**"
        )
    out.append("")
    out.append("Clearly = by more than max(1 point, the probe seeds' spread of either side).")
    return out + [""]


def run_summary(run: PretrainingRun) -> dict:
    """A run as the record keeps it: its name, not the paths of the machine it ran on."""
    keep = {k: v for k, v in asdict(run).items() if k not in ("checkpoint", "log")}
    return dict(name=Path(run.log).parent.name, **keep)


def write_record(args, rec: Record, costs, outcome: Outcome, seconds: float) -> Path:
    recipes, runs, baseline_names, results, export_rc = outcome
    lines = header(args, rec, costs, recipes, seconds)
    lines += tables(args, recipes, runs, baseline_names, results) + targets(recipes, baseline_names, results)
    lines.append(
        f"Export check (`export_gpu_check.py` on fast_hubert's iteration 2): exit {export_rc}, "
        f"`export_gpu_check_{args.mode}.md`."
    )
    out = args.out / f"quality_vs_gpu_time_{args.mode}.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    data = dict(
        mode=args.mode,
        preset=asdict(args.preset),
        costs=costs,
        updates={r.system.name: r.updates[0] for r in recipes},
        runs={k: [run_summary(run) for run in v] for k, v in runs.items()},
        probes=[
            dict(upstream=n, seed=s, **{k: r[k] for k in ("cer", "wer", "layer_weights")})
            for (n, s), r in sorted(results.items())
        ],
        baselines=baseline_names,
        seconds=dict(rec.seconds, total=round(seconds, 1)),
    )
    atomic_write_text(out.with_suffix(".json"), json.dumps(data, indent=1))
    print("\n".join(lines), flush=True)
    return out


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    rec = Record(args)
    costs = rec.calibrate()
    outcome = rec.run(costs)
    write_record(args, rec, costs, outcome, time.time() - t0)
    return 1 if outcome.export_rc else 0


if __name__ == "__main__":
    sys.exit(main())
