"""The whole job on real speech, from audio to pretrained models, what they bought, and their export.

    manifests -> CMVN -> MFCC k-means (iteration-1 units) -> pretrain a tiny fast_hubert + ILS
    -> k-means of one of its blocks (iteration-2 units) -> pretrain a new model on them
    -> probe never-pretrained / iteration 1 / iteration 2 identically -> export to transformers -> report
    (with ``--finetune-updates N``: fine-tune letter CTC -> decode -> export the fine-tuned model)

It runs HuBERT's two-iteration recipe (``fast_hubert_plugin.recipes.two_iterations``, the same
module the benchmarks run) on at most ``--pretrain-hours`` of audio, sized to take under 15 minutes
on 2 CPU cores. The report puts side by side what pretraining bought: the dev CER of the same
frozen-feature probe (``fast-hubert-probe``) on the model's initial weights, on the iteration-1
model and on the iteration-2 model.

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
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fast_hubert_plugin.data.download import DownloadError
from fast_hubert_plugin.recipes.corpus import SPEECH_ENV, at_most_hours, load_corpus, resolve_speech_dir
from fast_hubert_plugin.recipes.runner import Stage, StageFailed, StageMismatch, log_records, run_cli, tool
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

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_PLOT = REPO / "benchmarks" / "results" / "quality_vs_compute.png"


def plot_curves(logs, ft_log, out: Path):
    """Masked CE and accuracy of both pretraining iterations, and the fine-tuning curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if ft_log else 2, figsize=(15 if ft_log else 10, 3.6))
    for label, log in logs.items():
        recs = log_records(log, "train_inner")
        if not recs:
            continue
        steps = [int(r["num_updates"]) for r in recs]
        axes[0].plot(steps, [float(r["loss"]) for r in recs], label=label)
        for key in sorted(k for k in recs[-1] if k.startswith("acc_m_")):
            axes[1].plot(steps, [float(r[key]) for r in recs], label=f"{label}, block {key[7:]}")
    axes[0].set(title="pretraining: masked CE (bits)", xlabel="update")
    axes[1].set(title="pretraining: masked-unit accuracy", xlabel="update")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    if ft_log:
        ft = log_records(ft_log, "train_inner")
        axes[2].plot([int(r["num_updates"]) for r in ft], [float(r["loss"]) for r in ft], label="train CTC loss")
        axes[2].set(title="fine-tuning (iteration-2 model)", xlabel="update")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


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
    p.add_argument("--model", choices=list(SYSTEMS), default="fast_hubert_ils", help="model type of both iterations")
    p.add_argument("--clusters", type=int, default=100, help="k-means units of both iterations")
    p.add_argument(
        "--pretrain-hours",
        type=float,
        default=2.0,
        help="pretrain and cluster on at most this much of the pretraining audio (a seeded sample)",
    )
    p.add_argument("--pretrain-updates", type=int, default=200, help="updates of each pretraining iteration")
    p.add_argument("--iteration2-layer", type=int, default=3, help="1-based block of the iteration-1 model to cluster")
    p.add_argument("--probe-updates", type=int, default=600, help="updates of each side-by-side probe")
    p.add_argument(
        "--probe-utterances",
        type=int,
        default=500,
        help="CTC training utterances the probes learn from (every k-th: all speakers stay in)",
    )
    p.add_argument(
        "--finetune-updates",
        type=int,
        default=0,
        help="letter CTC fine-tuning of the iteration-2 model, then decoding (0: none; about 1000 "
        "updates leave CTC's all-blank stage)",
    )
    args = p.parse_args(argv)

    try:
        speech = resolve_speech_dir(args.speech_dir, cache_dir=args.cache_dir, base_url=args.corpus_url)
        corpus = load_corpus(speech, args.transcripts)
        corpus = corpus._replace(pretrain=at_most_hours(corpus.pretrain, args.pretrain_hours))
    except (DownloadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    try:
        report = run(args, speech, corpus)
    except (StageFailed, StageMismatch) as e:
        sys.exit(str(e))
    print(f"\nreport: {report}")


def run(args, speech: Path, corpus) -> Path:
    t0 = time.time()
    work = args.work_dir.resolve()
    if not corpus.train:
        print("no transcripts: pretraining and clustering only (no probes, fine-tuning or WER)")
    ws = Workspace(work, corpus, clusters=args.clusters).prepare().iteration1_units()
    system = SYSTEMS[args.model]
    recipe = Recipe(
        ws,
        system,
        (args.pretrain_updates, args.pretrain_updates),
        iteration2_layer=args.iteration2_layer,
        iteration2_clusters=args.clusters,
        tag="demo",
        threads=1,
    )
    futures, scores, ft = {}, None, None
    # Two single-threaded chains share the two cores (a second thread barely speeds up a tiny model):
    # this one pretrains, clusters, fine-tunes and exports; the pool probes each model as soon as it exists.
    with ThreadPoolExecutor(1) as pool:
        split = ws.ctc_subset(args.probe_utterances) if ws.transcribed else None

        def probe_soon(label, run_):
            if ws.transcribed:
                futures[label] = pool.submit(
                    probe,
                    ws,
                    f"demo_{label.replace(' ', '_')}",
                    run_.checkpoint,
                    args.probe_updates,
                    threads=1,
                    train_split=split,
                )

        if ws.transcribed:
            probe_soon(
                "never pretrained",
                untrained(
                    recipe.runs,
                    "demo_init",
                    system,
                    ws.pretrain_data,
                    ws.iteration1_labels,
                    ITERATION1_LABEL_RATE,
                    quiet=ws.quiet,
                    threads=1,
                ),
            )
        it1 = recipe.iteration1()
        probe_soon("iteration 1", it1)
        it2 = recipe.iteration2(it1)
        probe_soon("iteration 2", it2)
        if ws.transcribed and args.finetune_updates:
            ft = finetune(ws, "demo_finetune", it2, system, args.finetune_updates, threads=1)
            scores = decode(ws, "demo_decode", ft)
        # the fine-tuned model when there is one, else the iteration-2 pretrained model
        exported, export_dir = (
            (ft["checkpoint"], work / "export") if ft else (it2.checkpoint, work / "export_pretrained")
        )
        with Stage(
            work,
            export_dir.name,
            f"export {Path(exported).parents[1].name} to transformers (fast-hubert-export)",
            params={"checkpoint": exported},
        ) as s:
            if not s.done:
                run_cli(
                    [tool("fast-hubert-export"), exported, export_dir, "--overwrite"],
                    ws.logs / f"{export_dir.name}.log",
                    threads=1,
                )
        probes = {label: f.result() for label, f in futures.items()}
    runs = {"iteration 1": it1, "iteration 2": it2}
    return write_report(args, ws, speech, system, runs, probes, ft, scores, time.time() - t0)


def gain(probes, model: str, reference: str) -> float:
    return probes[model]["cer"] - probes[reference]["cer"]


def write_report(args, ws, speech, system, runs, probes, ft, scores, seconds) -> Path:
    reports = ws.reports
    reports.mkdir(parents=True, exist_ok=True)
    plot_curves({k: r.log for k, r in runs.items()}, ft["log"] if ft else None, reports / "training_curves.png")
    timings = {
        p.name: json.loads(p.read_text())["seconds"]
        for d in (ws.work / ".done", ws.work / "runs" / ".done")
        if d.is_dir()
        for p in sorted(d.iterdir(), key=lambda p: p.stat().st_mtime)
    }
    (reports / "timings.json").write_text(json.dumps(timings, indent=1))
    it1_units = json.loads((reports / "it1" / "valid_km_report.json").read_text())
    it2_units = json.loads((reports / "demo_it2" / "valid_km_report.json").read_text())
    c = ws.corpus
    lines = [
        "# fast-hubert demo report",
        "",
        f"Data: {speech} ({len(c.pretrain)} utterances for pretraining"
        + (f", {len(c.train)} for probes and CTC fine-tuning, {len(c.dev)} dev)" if c.train else ")"),
        f"Model: {system.title}, tiny (4 x 256); {args.pretrain_updates} pretraining updates per iteration; "
        f"this run {seconds / 60:.1f} min (stages done before are not counted).",
        "",
    ]
    if probes:
        lines += [
            "## What pretraining bought (the same probe for all: frozen model, learned layer weights, "
            f"BiLSTM letter CTC, {args.probe_updates} updates on {args.probe_utterances} or fewer training "
            "utterances; dev CER, lower is better)",
            "",
            "| model | units it was trained on | dev CER % | dev WER % |",
            "|---|---|---|---|",
            f"| never pretrained (initial weights) | - | {probes['never pretrained']['cer']:.1f} | "
            f"{probes['never pretrained']['wer']:.1f} |",
            f"| iteration 1 | MFCC k-means ({args.clusters}, 50 Hz) | {probes['iteration 1']['cer']:.1f} | "
            f"{probes['iteration 1']['wer']:.1f} |",
            f"| iteration 2 | k-means ({args.clusters}) of block {args.iteration2_layer} of iteration 1 | "
            f"{probes['iteration 2']['cer']:.1f} | {probes['iteration 2']['wer']:.1f} |",
            "",
            f"Iteration 1 against never pretrained: {gain(probes, 'iteration 1', 'never pretrained'):+.1f} CER points; "
            f"iteration 2 against iteration 1: {gain(probes, 'iteration 2', 'iteration 1'):+.1f} (negative is better; "
            "the probe's own seed moves a CER by about 1 point).",
            "",
        ]
        if BENCHMARK_PLOT.exists():
            shutil.copyfile(BENCHMARK_PLOT, reports / BENCHMARK_PLOT.name)
            lines += [
                "At larger compute, against MFCC, fbank and stock HuBERT "
                "(`benchmarks/results/quality_vs_compute_cpu.md`):",
                "",
                f"![quality vs compute]({BENCHMARK_PLOT.name})",
                "",
            ]
    if scores:
        lines += [
            "## Fine-tuned (iteration-2 model, letter CTC, Viterbi, no LM)",
            "",
            f"- {args.finetune_updates} updates; dev: **CER {scores['cer']:.2f} %, WER {scores['wer']:.2f} %** "
            f"({scores.get('utterances', len(c.dev))} utterances)",
            f"- hypotheses: {ws.work / 'demo_decode' / 'hypo.word'}",
            f"- exported for transformers (no fairseq needed): {ws.work / 'export'}",
            "",
        ]
    else:
        lines += [
            "## Export",
            "",
            "- the iteration-2 pretrained model, for transformers (no fairseq needed): "
            f"{ws.work / 'export_pretrained'}",
        ]
        if c.train:  # fine-tuning needs transcripts
            lines.append(
                "- not fine-tuned: `--finetune-updates 1000` adds letter CTC fine-tuning of it, Viterbi "
                "decoding and the fine-tuned model's export"
            )
        lines.append("")
    lines += ["## Pretraining", ""]
    for label, r in runs.items():
        acc = ", ".join(f"block {k[7:]} {v:.3f}" for k, v in sorted(r.masked_accuracy.items()))
        lines.append(f"- {label}: {r.updates} updates, {r.cpu_s / 60:.1f} CPU-min; masked-unit accuracy {acc}")
    lines += [
        f"- units: iteration 1 {it1_units.get('used_units')} of {it1_units.get('n_units')} used "
        f"(perplexity {it1_units.get('perplexity', 0):.1f}); iteration 2 {it2_units.get('used_units')} of "
        f"{it2_units.get('n_units')} (perplexity {it2_units.get('perplexity', 0):.1f})",
        "",
        "![training curves](training_curves.png)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in timings.items()],
        "",
    ]
    out = reports / "summary.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n" + "\n".join(lines))
    return out


if __name__ == "__main__":
    main()
