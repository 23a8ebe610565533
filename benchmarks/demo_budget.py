"""What pretraining buys the demo's recognizer on CPU cores, at several splits of the demo's budget.

The demo (``examples/demo.py``) ends with a recognizer: the iteration-2 model fine-tuned with letter CTC
(fairseq ``hubert_ctc``, the tiny recipe) and Viterbi-decoded on the dev set; its report sets it beside the
same fine-tuning of the never-pretrained model. This benchmark measures that comparison for budget splits
``U1,U2,F`` (U1 updates of iteration 1, U2 of iteration 2 — 0: fine-tune iteration 1 —, F fine-tuning
updates), with several fine-tuning seeds from both starts, so that the difference stands against the seeds'
spread:

    python benchmarks/demo_budget.py --speech-dir SPEECH --work-dir WORK \\
        --splits 600,600,1000 600,600,500 --seeds 1 2 --output benchmarks/results/demo_budget_cpu.md

Every run is a stage of the recipe module the demo runs (``fast_hubert_plugin.recipes.two_iterations``), with
the demo's data, model, units and fine-tuning recipe, in WORK: resumable, splits with the same U1 share
iteration 1 and all share the never-pretrained model. Runs go ``--jobs`` at a time, one thread each; each
records its CPU seconds, which a shared machine does not inflate (the demo's wall-clock is estimated from them).
"""

import argparse
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple

from fast_hubert_plugin.recipes.corpus import at_most_hours
from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    PretrainingRun,
    Recipe,
    Workspace,
    recognizer,
    untrained,
)

from common import RESULTS, machine, reproduce, speech_folder

NEVER = "never pretrained"
BLANK_STAGE_CER = 95.0  # a recognizer still in CTC's all-blank stage (as examples/demo_report.py counts it)


class Split(NamedTuple):
    iteration1: int
    iteration2: int  # 0: the iteration-1 model is fine-tuned
    finetune: int

    @classmethod
    def parse(cls, text: str) -> "Split":
        try:
            split = cls(*(int(x) for x in text.split(",")))
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected U1,U2,F (three integers), e.g. 600,600,1000"
            ) from None
        if split.iteration1 < 1 or split.iteration2 < 0 or split.finetune < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: U1 and F must be at least 1, U2 at least 0")
        return split

    def __str__(self) -> str:
        return f"{self.iteration1},{self.iteration2},{self.finetune}"

    @property
    def pretrained_label(self) -> str:
        if self.iteration2:
            return f"iteration 2 ({self.iteration1} + {self.iteration2} updates)"
        return f"iteration 1 ({self.iteration1} updates)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", type=Path, required=True, help="a transcribed speech folder (the demo's layouts)")
    p.add_argument("--work-dir", type=Path, required=True, help="every run is written here (resumable)")
    p.add_argument("--splits", type=Split.parse, nargs="+", default=[Split(600, 600, 1000)], metavar="U1,U2,F")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="fine-tuning seeds of every start")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    p.add_argument("--model", choices=list(SYSTEMS), default="fast_hubert_ils", help="the demo's default")
    p.add_argument("--clusters", type=int, default=100, help="k-means units of both iterations (the demo's)")
    p.add_argument("--iteration2-layer", type=int, default=3, help="the demo's default")
    p.add_argument("--pretrain-hours", type=float, default=2.0, help="the demo's default")
    p.add_argument("--output", type=Path, default=RESULTS / "demo_budget_cpu.md")
    return p.parse_args(argv)


def summary(results: Dict[str, Dict[int, dict]], pretrained: str) -> Dict:
    """Mean dev CER from both starts, their difference (never-pretrained minus pretrained: positive when
    pretraining helps), the larger of the two starts' seed spreads, and whether the difference is beyond
    that spread (the rule the demo's report applies)."""
    cer = {start: [r["scores"]["cer"] for _, r in sorted(results[start].items())] for start in (pretrained, NEVER)}
    spread = max(max(c) - min(c) for c in cer.values())
    return dict(
        pretrained=statistics.mean(cer[pretrained]),
        never=statistics.mean(cer[NEVER]),
        gain=statistics.mean(cer[NEVER]) - statistics.mean(cer[pretrained]),
        spread=spread,
        beyond_noise=statistics.mean(cer[NEVER]) - statistics.mean(cer[pretrained]) > spread,
        blank={start: f"{sum(c >= BLANK_STAGE_CER for c in cers)} of {len(cers)}" for start, cers in cer.items()},
    )


def verdict(s: Dict) -> str:
    if s["beyond_noise"]:
        return f"pretraining is {s['gain']:.1f} points better, beyond the seeds' spread ({s['spread']:.1f})"
    if s["gain"] > 0:
        return f"pretraining is {s['gain']:.1f} points better, within the seeds' spread ({s['spread']:.1f}): noise"
    return f"pretraining is {-s['gain']:.1f} points worse (seeds' spread {s['spread']:.1f})"


def table(split: Split, results: Dict[str, Dict[int, dict]], pretrained: str) -> List[str]:
    lines = [
        f"### {split} ({split.finetune} fine-tuning updates)",
        "",
        "| start | seed | dev CER % | WER % | empty transcripts | fine-tuning CPU-min |",
        "|---|---|---|---|---|---|",
    ]
    for start in (pretrained, NEVER):
        for seed, r in sorted(results[start].items()):
            sc = r["scores"]
            lines.append(
                f"| {start} | {seed} | {sc['cer']:.1f} | {sc['wer']:.1f} | {sc['empty_hypotheses']} "
                f"of {sc['utterances']} | {r['cpu_s'] / 60:.1f} |"
            )
    return [*lines, "", f"- {verdict(summary(results, pretrained))}", ""]


def pretraining_cost(runs: List[PretrainingRun]) -> str:
    return ", ".join(f"{Path(r.log).parent.name} {r.updates} updates {r.cpu_s / 60:.1f} CPU-min" for r in runs)


def run_splits(args, ws: Workspace, system, init: PretrainingRun):
    """Every split's pretraining chain and the recognizers of both starts, ``args.jobs`` runs at a time:
    ({split: {start: {seed: recognizer result}}}, {split: its pretraining runs})."""
    results: Dict[Split, Dict[str, Dict[int, Future]]] = {s: {NEVER: {}} for s in args.splits}
    pretraining: Dict[Split, List[PretrainingRun]] = {}
    submitted: Dict[str, Future] = {}  # by stage name: splits that share a run share its job

    def recognizers(pool, split: Split, start: str, upstream: PretrainingRun, tag: str):
        for seed in args.seeds:
            name = f"{tag}_ft{split.finetune}_s{seed}"
            if name not in submitted:
                submitted[name] = pool.submit(recognizer, ws, name, upstream, system, split.finetune, seed, 1, False)
            results[split].setdefault(start, {})[seed] = submitted[name]

    def chain(pool, iteration1: int):
        """Iteration 1, then each iteration 2 trained from it, one after the other; each pretrained model's
        recognizers are queued as soon as it exists."""
        for u2 in dict.fromkeys(s.iteration2 for s in args.splits if s.iteration1 == iteration1):
            recipe = Recipe(
                ws,
                system,
                (iteration1, u2),
                iteration2_layer=args.iteration2_layer,
                iteration2_clusters=args.clusters,
                threads=1,
                progress=False,
                tag=f"{system.name}_{iteration1}",
                iteration2_tag=f"{system.name}_{iteration1}_{u2}",
            )
            runs = [recipe.iteration1()]
            if u2:
                runs.append(recipe.iteration2(runs[0]))
            for split in (s for s in args.splits if s[:2] == (iteration1, u2)):
                pretraining[split] = runs
                recognizers(pool, split, split.pretrained_label, runs[-1], Path(runs[-1].log).parent.name)

    with ThreadPoolExecutor(args.jobs) as pool:
        # the pretraining chains first (one per iteration-1 budget: runs of one name never overlap); the
        # never-pretrained fine-tunes fill the other workers meanwhile
        chains = [pool.submit(chain, pool, u1) for u1 in dict.fromkeys(s.iteration1 for s in args.splits)]
        for split in args.splits:
            recognizers(pool, split, NEVER, init, "never_pretrained")
        for c in chains:
            c.result()
        done = {
            split: {start: {seed: f.result() for seed, f in seeds.items()} for start, seeds in starts.items()}
            for split, starts in results.items()
        }
    return done, pretraining


def record(args, argv, corpus, system, done, pretraining, minutes: float) -> List[str]:
    """The record's lines: how it was measured, one summary row per split, then every run."""
    lines = [
        "# What pretraining buys the demo's recognizer: budget splits (CPU)",
        "",
        f"- machine: {machine()}",
        f"- command: `{reproduce('demo_budget.py', argv)}`".replace(str(args.speech_dir), "SPEECH_DIR").replace(
            str(args.work_dir), "WORK"
        ),
        f"- data: {len(corpus.pretrain)} utterances of pretraining audio (at most {args.pretrain_hours} h), "
        f"{len(corpus.train)} transcribed for fine-tuning, {len(corpus.dev)} dev; model {system.title}, "
        f"tiny (4 x 256), {args.clusters} units, iteration 2 on block {args.iteration2_layer}",
        "- fine-tuning: the demo's (fairseq hubert_ctc, letter CTC, finetuning/tiny_cpu.yaml with "
        "two_iterations.finetune_fast_start), the same seeds from both starts; Viterbi decoding, no LM",
        "- beyond noise: the gain (never-pretrained mean minus pretrained mean) is larger than the seeds' spread "
        "(the larger of the two starts' max - min); blank stage: dev CER >= 95 %, (almost) every transcript empty",
        f"- wall-clock of this invocation: {minutes:.1f} min ({args.jobs} runs at a time, "
        "stages done before not counted; CPU-min below are per run and do not grow with the machine's load)",
        "",
        "| split U1,U2,F | pretrained dev CER % | never pretrained dev CER % | gain (points) | seeds' spread | "
        "beyond noise | seeds in CTC's blank stage (pretrained; never pretrained) |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in args.splits:
        s = summary(done[split], split.pretrained_label)
        lines.append(
            f"| {split} | {s['pretrained']:.1f} | {s['never']:.1f} | {s['gain']:+.1f} | {s['spread']:.1f} | "
            f"{'yes' if s['beyond_noise'] else 'no'} | {s['blank'][split.pretrained_label]}; {s['blank'][NEVER]} |"
        )
    lines += ["", "## Runs", ""]
    for split in args.splits:
        lines += table(split, done[split], split.pretrained_label)
        lines += [f"- pretraining: {pretraining_cost(pretraining[split])}", ""]
    return lines


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    corpus = speech_folder().load_speech(args.speech_dir.resolve())
    if not corpus.train:
        sys.exit(f"{args.speech_dir}: no transcripts, nothing to fine-tune")
    corpus = corpus._replace(pretrain=at_most_hours(corpus.pretrain, args.pretrain_hours))
    system = SYSTEMS[args.model]
    ws = Workspace(args.work_dir, corpus, clusters=args.clusters, threads=1).prepare().iteration1_units()
    init = untrained(
        ws.work / "runs", "init", system, ws.pretrain_data, ws.iteration1_labels, ITERATION1_LABEL_RATE, threads=1
    )
    done, pretraining = run_splits(args, ws, system, init)
    lines = record(args, argv, corpus, system, done, pretraining, (time.time() - start) / 60)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
