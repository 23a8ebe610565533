"""The whole job on real speech: pretrain two HuBERT iterations, then show what they bought a recognizer.

    manifests -> CMVN -> MFCC k-means (iteration-1 units) -> pretrain a tiny fast_hubert + ILS
    -> k-means of one of its blocks (iteration-2 units) -> pretrain a new model on them
    -> fine-tune the iteration-2 model with letter CTC -> Viterbi-decode the dev set -> export it to transformers
    beside it: the same fine-tuning (updates, recipe, seed, data) of the never-pretrained model, two seeds
    -> a one-screen report (``report/summary.md``) whose first table sets the two recognizers side by side

It runs HuBERT's two-iteration recipe (``fast_hubert_plugin.recipes.two_iterations``, the module the
benchmarks run) with a budget chosen by the device (``--device``, default: CUDA when present):

- ``cpu``: sized for under 15 minutes on 2 cores: one core pretrains, then fine-tunes the pretrained model;
  the other fine-tunes the never-pretrained model meanwhile (it needs no pretraining). Of the splits of
  updates measured (``benchmarks/results/demo_budget_cpu.md``, 3 seeds each), 600 + 600 pretraining and
  1000 fine-tuning updates is the one where pretraining shows: every seed from the iteration-2 model
  reaches 59.4-59.6 % dev CER, while from the initial weights one seed of three gets there (59.7 %) and
  the others stay at 83.8 % or in CTC's all-blank stage. At this scale pretraining buys a fine-tuning
  that converges every time, not a lower best CER; the report says which it saw;
- ``cuda``: thousands of updates per iteration, the recognizers, and the frozen-feature probe (BiLSTM
  letter CTC) of MFCC, fbank, the never-pretrained model and both iterations with two seeds each, sized
  for 10 minutes on one GPU (probes need more updates than 2 cores give them to leave CTC's blank stage).

Each ``--...`` flag of the budget group overrides one number of the budget (``--finetune-updates 0``: no
fine-tuning, the pretrained model is exported). A GPU run's ``report/results.json``, committed as
``benchmarks/results/demo_gpu.json``, is shown next to every later run as the recorded GPU result.

Data, in this order: ``--speech-dir DIR`` (or ``$FAST_HUBERT_SPEECH_DIR``); the speech folder beside
the repository (``../shared/speech``: speechocean762 train / dev with transcripts, LibriSpeech
excerpts without) when present; otherwise Mini LibriSpeech (OpenSLR 31: ``train-clean-5`` for
pretraining and fine-tuning, 300 ``dev-clean-2`` utterances for dev), downloaded once (458 MB;
resumable, MD5-verified) into ``~/.cache/fast-hubert`` (``--cache-dir`` or ``$FAST_HUBERT_CACHE``).
A folder of your own: every .flac/.wav below it is pretraining audio; ``--transcripts TSV`` (columns
``path`` relative to DIR, ``text``) adds fine-tuning, probing and scoring, its last 15 % of rows as
dev set. Every stage writes into ``--work-dir`` and is skipped when its outputs are already there;
a killed run continues where it was.
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

from demo_report import write_report

from fast_hubert_plugin.data.download import DownloadError
from fast_hubert_plugin.recipes.corpus import at_most_hours
from fast_hubert_plugin.recipes.runner import Stage, StageFailed, StageMismatch, run_cli, tool
from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    Recipe,
    Workspace,
    probe,
    recognizer,
    untrained,
)

from speech_folder import SPEECH_ENV, load_speech, resolve_speech_dir

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    """How much of each stage a demo run does."""

    pretrain_updates: Tuple[int, int]  # of iteration 1 and iteration 2
    finetune_updates: int  # of every recognizer: the pretrained one and each never-pretrained seed
    finetune_from: int  # the iteration whose model is fine-tuned
    baseline_seeds: Tuple[int, ...]  # fine-tuning seeds of the never-pretrained model: their spread is the noise
    probe_updates: int
    probe_seeds: Tuple[int, ...]  # each upstream is probed once per seed (none: no probes)
    probe_utterances: int  # CTC training utterances the probes learn from (0: all)
    workers: int  # stages run beside the pretraining chain (never-pretrained fine-tunes, probes)
    threads: int  # CPU threads per stage
    finetune_threads: int  # the pretrained model's fine-tuning comes last and gets the cores the others left


BUDGETS: Dict[str, Budget] = {
    # 2 cores: one pretrains, then fine-tunes, decodes and exports; the other fine-tunes the never-pretrained
    # model meanwhile. Probes are left to the GPU: at 300 updates on a core they were still in CTC's
    # all-blank stage (86.7-100 % CER, benchmarks/results/demo_time_cpu.md before this budget).
    "cpu": Budget((600, 600), 1000, 2, (1, 2), 0, (), 0, workers=1, threads=1, finetune_threads=2),
    # one GPU: the recognizers and the probes share it with the pretraining chain
    "cuda": Budget((2000, 2000), 2000, 2, (1, 2), 1000, (1, 2), 0, workers=3, threads=4, finetune_threads=4),
}


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def seeds(n: Optional[int]) -> Optional[Tuple[int, ...]]:
    """Seeds 1..n (0: none; None: the budget's)."""
    return None if n is None else tuple(range(1, n + 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--speech-dir",
        type=Path,
        help=f"folder of 16 kHz audio (default: ${SPEECH_ENV}, else ../shared/speech beside the repo, "
        "else Mini LibriSpeech, downloaded)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="where Mini LibriSpeech is downloaded (default: $FAST_HUBERT_CACHE or ~/.cache/fast-hubert)",
    )
    p.add_argument(
        "--corpus-url", help="Mini LibriSpeech mirror (default: $FAST_HUBERT_MINI_LIBRISPEECH_URL or OpenSLR)"
    )
    p.add_argument(
        "--transcripts",
        type=Path,
        default=os.environ.get("FAST_HUBERT_TRANSCRIPTS"),
        help="TSV with 'path' (relative to --speech-dir) and 'text' columns, for fine-tuning",
    )
    p.add_argument("--work-dir", type=Path, default=REPO / "demo_output", help="everything is written here")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="where every stage runs, and which budget (default: cuda when present, else cpu)",
    )
    p.add_argument("--model", choices=list(SYSTEMS), default="fast_hubert_ils", help="model type of both iterations")
    p.add_argument("--clusters", type=int, default=100, help="k-means units of both iterations")
    p.add_argument(
        "--pretrain-hours",
        type=float,
        default=2.0,
        help="pretrain and cluster on at most this much of the pretraining audio (a seeded sample)",
    )
    p.add_argument("--iteration2-layer", type=int, default=3, help="1-based block of the iteration-1 model to cluster")
    budget = p.add_argument_group("budget")
    budget.add_argument(
        "--budget",
        choices=list(BUDGETS),
        help="the budget of that device (default: --device's; --device cpu --budget cuda rehearses the GPU "
        "run's stages on the CPU, with the numbers below made small)",
    )
    budget.add_argument(
        "--pretrain-updates",
        type=int,
        nargs="+",
        metavar="N",
        help="updates of pretraining iteration 1 (and 2; one number: both)",
    )
    budget.add_argument(
        "--baseline-seeds",
        type=int,
        help="fine-tuning seeds of the never-pretrained model (1, 2, ...; 0: no never-pretrained recognizer)",
    )
    budget.add_argument("--probe-updates", type=int, help="updates of each probe")
    budget.add_argument("--probe-seeds", type=int, help="probe seeds per upstream (1, 2, ...; 0: no probes)")
    budget.add_argument(
        "--probe-utterances",
        type=int,
        help="CTC training utterances the probes learn from (every k-th: all speakers stay in; 0: all)",
    )
    budget.add_argument(
        "--finetune-updates",
        type=int,
        help="letter CTC fine-tuning updates, then decoding (0: none)",
    )
    budget.add_argument("--finetune-from", type=int, choices=(1, 2), help="the iteration whose model is fine-tuned")
    args = p.parse_args(argv)
    args.device = args.device or default_device()
    args.budget = replace(
        BUDGETS[args.budget or args.device],
        **{
            k: v
            for k, v in (
                ("pretrain_updates", tuple((args.pretrain_updates * 2)[:2]) if args.pretrain_updates else None),
                ("probe_updates", args.probe_updates),
                ("baseline_seeds", seeds(args.baseline_seeds)),
                ("probe_seeds", seeds(args.probe_seeds)),
                ("probe_utterances", args.probe_utterances),
                ("finetune_updates", args.finetune_updates),
                ("finetune_from", args.finetune_from),
            )
            if v is not None
        },
    )

    try:
        speech = resolve_speech_dir(args.speech_dir, cache_dir=args.cache_dir, base_url=args.corpus_url)
        corpus = load_speech(speech, args.transcripts)
        corpus = corpus._replace(pretrain=at_most_hours(corpus.pretrain, args.pretrain_hours))
    except (DownloadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    try:
        report = run(args, speech, corpus)
    except (StageFailed, StageMismatch) as e:
        sys.exit(str(e))
    print(f"\nreport: {report} (details: {report.with_name('details.md')})")


# The probed upstreams, in the report's order: the input features, then the models.
FEATURES = {"MFCC (39-dim, no pretraining)": "mfcc", "fbank (80-dim, no pretraining)": "fbank"}


def export(ws: Workspace, checkpoint: str, export_dir: Path, threads: int):
    with Stage(
        ws.work,
        export_dir.name,
        f"export {Path(checkpoint).parents[1].name} to transformers (fast-hubert-export)",
        params={"checkpoint": checkpoint},
    ) as s:
        if not s.done:
            run_cli(
                [tool("fast-hubert-export"), checkpoint, export_dir, "--overwrite"],
                ws.logs / f"{export_dir.name}.log",
                threads=threads,
            )


def run(args, speech: Path, corpus) -> Path:
    t0 = time.time()
    budget: Budget = args.budget
    work = args.work_dir.resolve()
    print(f"device: {args.device}; budget: {asdict(budget)}", flush=True)
    if not corpus.train:
        print("no transcripts: pretraining and clustering only (no fine-tuning, probes or CER)")
    ws = Workspace(work, corpus, clusters=args.clusters, device=args.device).prepare()
    system = SYSTEMS[args.model]
    recipe = Recipe(
        ws,
        system,
        budget.pretrain_updates,
        iteration2_layer=args.iteration2_layer,
        iteration2_clusters=args.clusters,
        tag="demo",
        threads=budget.threads,
    )
    finetuning = ws.transcribed and budget.finetune_updates > 0
    probing = ws.transcribed and bool(budget.probe_seeds)
    split = ws.ctc_subset(budget.probe_utterances) if probing and budget.probe_utterances else "train"
    probe_jobs, baseline_jobs = {}, {}
    # The pretraining chain takes one worker; the never-pretrained fine-tunes and the probes queue for the
    # others in the order they become possible, and the chain's worker fine-tunes the pretrained model.
    with ThreadPoolExecutor(budget.workers + 1) as pool:

        def probe_soon(label, upstream):
            for seed in budget.probe_seeds if probing else ():
                name = f"demo_{label.split(' (')[0].replace(' ', '_')}" + (f"_s{seed}" if seed != 1 else "")
                probe_jobs[label, seed] = pool.submit(
                    probe, ws, name, upstream, budget.probe_updates, seed, budget.threads, split
                )

        def pretrained_recognizer(pretrained):
            """Fine-tune, decode and export: the job that ends with a model that transcribes."""
            ft = recognizer(ws, "demo", pretrained, system, budget.finetune_updates, 1, budget.finetune_threads)
            export(ws, ft["checkpoint"], work / "export", budget.threads)
            return ft

        def pretraining_chain():
            ws.iteration1_units()
            pretrained_job = None
            if finetuning or probing:  # the never-pretrained model: initial weights, saved after one update at lr ~0
                init = untrained(
                    recipe.runs,
                    "demo_init",
                    system,
                    ws.pretrain_data,
                    ws.iteration1_labels,
                    ITERATION1_LABEL_RATE,
                    quiet=ws.quiet,
                    threads=budget.threads,
                    device=args.device,
                )
                for seed in budget.baseline_seeds if finetuning else ():
                    # the same fine-tuning as the pretrained model's, from the initial weights
                    baseline_jobs[seed] = pool.submit(
                        recognizer,
                        ws,
                        "demo_never_pretrained" + (f"_s{seed}" if seed != 1 else ""),
                        init,
                        system,
                        budget.finetune_updates,
                        seed,
                        budget.threads,
                        False,
                    )
                probe_soon("never pretrained", init.checkpoint)
            it1 = recipe.iteration1()
            if finetuning and budget.finetune_from == 1:
                pretrained_job = pool.submit(pretrained_recognizer, it1)
            probe_soon("iteration 1", it1.checkpoint)
            it2 = recipe.iteration2(it1)
            if finetuning and budget.finetune_from == 2:
                pretrained_job = pool.submit(pretrained_recognizer, it2)
            probe_soon("iteration 2", it2.checkpoint)
            if not finetuning:
                export(ws, it2.checkpoint, work / "export_pretrained", budget.threads)
            return it1, it2, pretrained_job

        chain = pool.submit(pretraining_chain)  # first: the other jobs queue behind it for the other workers
        for label, feature in FEATURES.items():
            probe_soon(label, feature)
        it1, it2, pretrained_job = chain.result()
        recognizers = {}
        if pretrained_job:
            recognizers[f"iteration {budget.finetune_from}"] = {1: pretrained_job.result()}
            recognizers["never pretrained"] = {seed: job.result() for seed, job in baseline_jobs.items()}
        probes: Dict[str, Dict[int, dict]] = {}
        for (label, seed), job in list(probe_jobs.items()):
            probes.setdefault(label, {})[seed] = job.result()
    runs = {"iteration 1": it1, "iteration 2": it2}
    export_dir = work / ("export" if recognizers else "export_pretrained")
    return write_report(args, ws, speech, system, runs, probes, recognizers, time.time() - t0, export_dir)


if __name__ == "__main__":
    main()
