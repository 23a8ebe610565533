"""The whole job on real speech: pretrain two HuBERT iterations, show what they bought, end with a recognizer.

    manifests -> CMVN -> MFCC k-means (iteration-1 units) -> pretrain a tiny fast_hubert + ILS
    -> k-means of one of its blocks (iteration-2 units) -> pretrain a new model on them
    -> the same frozen-feature probe on MFCC, fbank, the never-pretrained model, iteration 1, iteration 2
    -> fine-tune the iteration-2 model with letter CTC -> Viterbi-decode the dev set
    -> export the recognizer to transformers -> a one-screen report (``report/summary.md``)

It runs HuBERT's two-iteration recipe (``fast_hubert_plugin.recipes.two_iterations``, the module the
benchmarks run) with a budget chosen by the device (``--device``, default: CUDA when present):

- ``cpu``: sized for under 15 minutes on 2 cores; it shows the whole job and a recognizer that
  transcribes, but too little pretraining for the probe to tell the models from their input features;
- ``cuda``: thousands of updates per iteration and two probe seeds, sized for 10 minutes on one GPU,
  where pretraining pulls ahead of MFCC and fbank.

Each ``--...-updates`` flag overrides one number of the budget (``--finetune-updates 0``: no
fine-tuning, the pretrained model is exported). A GPU run's ``report/results.json``, committed as
``benchmarks/results/demo_gpu.json``, is shown next to every later run as the recorded GPU result.

Data, in this order: ``--speech-dir DIR`` (or ``$FAST_HUBERT_SPEECH_DIR``); the speech folder beside
the repository (``../shared/speech``: speechocean762 train / dev with transcripts, LibriSpeech
excerpts without) when present; otherwise Mini LibriSpeech (OpenSLR 31: ``train-clean-5`` for
pretraining and fine-tuning, 300 ``dev-clean-2`` utterances for dev), downloaded once (458 MB;
resumable, MD5-verified) into ``~/.cache/fast-hubert`` (``--cache-dir`` or ``$FAST_HUBERT_CACHE``).
A folder of your own: every .flac/.wav below it is pretraining audio; ``--transcripts TSV`` (columns
``path`` relative to DIR, ``text``) adds probing, fine-tuning and scoring, its last 15 % of rows as
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
from typing import Dict, Tuple

from demo_report import write_report

from fast_hubert_plugin.data.download import DownloadError
from fast_hubert_plugin.recipes.corpus import at_most_hours
from fast_hubert_plugin.recipes.runner import Stage, StageFailed, StageMismatch, run_cli, tool
from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    Recipe,
    Workspace,
    decode,
    finetune,
    probe,
    untrained,
)

from speech_folder import SPEECH_ENV, load_speech, resolve_speech_dir

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    """How much of each stage a demo run does."""

    pretrain_updates: Tuple[int, int]  # of iteration 1 and iteration 2
    probe_updates: int
    probe_seeds: Tuple[int, ...]  # each upstream is probed once per seed: their spread is the probe's noise
    probe_utterances: int  # CTC training utterances the probes learn from (0: all)
    finetune_updates: int
    finetune_from: int  # the iteration whose model is fine-tuned
    workers: int  # stages run beside the pretraining chain (probes, fine-tuning)
    threads: int  # CPU threads per stage
    finetune_threads: int  # fine-tuning comes last: the probes are done and leave it their cores


BUDGETS: Dict[str, Budget] = {
    # 2 cores: one chain pretrains, fine-tunes and exports, the other probes each model as soon as it exists
    "cpu": Budget((600, 600), 300, (1,), 500, 1000, finetune_from=2, workers=1, threads=1, finetune_threads=2),
    # one GPU: the probes share it with the pretraining chain
    "cuda": Budget((2000, 2000), 1000, (1, 2), 0, 2000, finetune_from=2, workers=3, threads=4, finetune_threads=4),
}


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
    budget.add_argument("--probe-updates", type=int, help="updates of each probe")
    budget.add_argument("--probe-seeds", type=int, help="probe seeds per upstream (1, 2, ...)")
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
                ("probe_seeds", tuple(range(1, args.probe_seeds + 1)) if args.probe_seeds else None),
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
        print("no transcripts: pretraining and clustering only (no probes, fine-tuning or CER)")
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
    split = ws.ctc_subset(budget.probe_utterances) if ws.transcribed and budget.probe_utterances else "train"
    jobs = {}
    # The pretraining chain takes one worker; probes and fine-tuning queue for the others in the order
    # they become possible, and the chain's worker joins them once both iterations are trained.
    with ThreadPoolExecutor(budget.workers + 1) as pool:

        def probe_soon(label, upstream):
            if ws.transcribed:
                for seed in budget.probe_seeds:
                    name = f"demo_{label.split(' (')[0].replace(' ', '_')}" + (f"_s{seed}" if seed != 1 else "")
                    jobs[label, seed] = pool.submit(
                        probe, ws, name, upstream, budget.probe_updates, seed, budget.threads, split
                    )

        def recognizer(pretrained):
            """Fine-tune, decode and export: the job that ends with a model that transcribes."""
            ft = finetune(
                ws, "demo_finetune", pretrained, system, budget.finetune_updates, threads=budget.finetune_threads
            )
            scores = decode(ws, "demo_decode", ft)
            export(ws, ft["checkpoint"], work / "export", budget.threads)
            return ft, scores

        def pretraining_chain():
            ws.iteration1_units()
            it1 = recipe.iteration1()
            if finetuning and budget.finetune_from == 1:
                jobs["recognizer"] = pool.submit(recognizer, it1)
            if ws.transcribed:
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
                probe_soon("never pretrained", init.checkpoint)
            probe_soon("iteration 1", it1.checkpoint)
            it2 = recipe.iteration2(it1)
            if finetuning and budget.finetune_from == 2:
                jobs["recognizer"] = pool.submit(recognizer, it2)
            probe_soon("iteration 2", it2.checkpoint)
            if not finetuning:
                export(ws, it2.checkpoint, work / "export_pretrained", budget.threads)
            return it1, it2

        chain = pool.submit(pretraining_chain)  # first: the probes queue behind it for the other workers
        for label, feature in FEATURES.items():
            probe_soon(label, feature)
        it1, it2 = chain.result()
        ft, scores = jobs.pop("recognizer").result() if finetuning else (None, None)
        probes: Dict[str, Dict[int, dict]] = {}
        for (label, seed), job in list(jobs.items()):
            probes.setdefault(label, {})[seed] = job.result()
    runs = {"iteration 1": it1, "iteration 2": it2}
    export_dir = work / ("export" if ft else "export_pretrained")
    return write_report(args, ws, speech, system, runs, probes, ft, scores, time.time() - t0, export_dir)


if __name__ == "__main__":
    main()
