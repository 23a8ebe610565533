"""The demo's report: one screen (``summary.md``), the details beside it (``details.md``), the
numbers as JSON (``results.json``, the form a run is recorded in) and the training curves.

Every sentence of the summary that compares two numbers is computed from them, against the probe's
noise (its seed spread when several seeds ran, else 1 CER point), so a heading never claims what
its table contradicts."""

import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional

from fast_hubert_plugin.recipes.runner import log_records
from fast_hubert_plugin.utils.machine import describe

REPO = Path(__file__).resolve().parents[1]
RECORDED_GPU = REPO / "benchmarks" / "results" / "demo_gpu.json"
MIN_NOISE = 1.0  # CER points: the probe's seed moves a CER by about this much (recipe_sweep records)


def cer_of(rows: Dict[int, dict]) -> List[float]:
    return [rows[seed]["cer"] for seed in sorted(rows)]


def fmt(cers: List[float]) -> str:
    if not cers:
        return "-"
    if len(cers) == 1:
        return f"{cers[0]:.1f}"
    return f"{statistics.mean(cers):.1f} ({min(cers):.1f}-{max(cers):.1f})"


def mean(cers: List[float]) -> float:
    return statistics.mean(cers)


def noise(probes: Dict[str, Dict[int, dict]]) -> float:
    """The largest seed spread of any upstream, and at least MIN_NOISE."""
    spreads = [max(c) - min(c) for c in (cer_of(r) for r in probes.values()) if len(c) > 1]
    return max([MIN_NOISE, *spreads])


def compare(a_label: str, a: float, b_label: str, b: float, tol: float) -> str:
    """One line saying how CER ``a`` stands to CER ``b``, given the probe's noise ``tol``."""
    if a < b - tol:
        return f"- {a_label} is {b - a:.1f} points below {b_label}."
    if a > b + tol:
        return f"- {a_label} is {a - b:.1f} points above {b_label} (worse)."
    return f"- {a_label} and {b_label} are within the probe's noise ({abs(a - b):.1f} points apart)."


def updates(budget) -> str:
    first, second = budget.pretrain_updates
    return f"{first} updates per iteration" if first == second else f"{first} + {second} updates"


def findings(probes: Dict[str, Dict[int, dict]], features: List[str], budget) -> List[str]:
    """What this run's probe table shows, in sentences computed from it."""
    cer = {label: mean(cer_of(rows)) for label, rows in probes.items()}
    tol = noise(probes)
    best_feature = min(features, key=cer.get)
    best_model = min(("iteration 1", "iteration 2"), key=cer.get)
    feature_name = best_feature.split(" (")[0]
    out = [
        compare("iteration 1", cer["iteration 1"], "the never-pretrained model", cer["never pretrained"], tol),
        compare("iteration 2", cer["iteration 2"], "iteration 1", cer["iteration 1"], tol),
        compare(
            f"the best model ({best_model})",
            cer[best_model],
            f"its best input ({feature_name})",
            cer[best_feature],
            tol,
        ),
    ]
    if cer[best_model] >= cer[best_feature] - tol:
        out.append(
            f"- So at {updates(budget)} pretraining has not yet bought features "
            "a probe prefers to its inputs: that takes more compute (see the recorded GPU column)."
        )
    else:
        out.append(f"- So {updates(budget)} bought features beyond the model's inputs.")
    return out


def examples(decode_dir: Path, n: int = 2) -> List[str]:
    refs = (decode_dir / "ref.word").read_text(encoding="utf-8").splitlines()
    hyps = (decode_dir / "hypo.word").read_text(encoding="utf-8").splitlines()
    return [line for r, h in list(zip(refs, hyps))[:n] for line in (f"    REF: {r}", f"    HYP: {h}")]


def recorded_gpu() -> Optional[dict]:
    return json.loads(RECORDED_GPU.read_text()) if RECORDED_GPU.is_file() else None


def plot_curves(system_title: str, logs: Dict[str, str], ft_log: Optional[str], ft_from: int, clusters: int, out: Path):
    """Per-block masked CE and accuracy of both pretraining iterations, and the fine-tuning loss."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if ft_log else 2, figsize=(15 if ft_log else 10, 4.2))
    for label, log in logs.items():
        recs = log_records(log, "train_inner")
        if not recs:
            continue
        steps = [int(r["num_updates"]) for r in recs]
        for key in sorted(k for k in recs[-1] if k.startswith("loss_m_")):
            axes[0].plot(steps, [float(r[key]) for r in recs], label=f"{label}, block {key[8:]}")
        for key in sorted(k for k in recs[-1] if k.startswith("acc_m_")):
            axes[1].plot(steps, [100 * float(r[key]) for r in recs], label=f"{label}, block {key[7:]}")
    axes[0].axhline(math.log2(clusters), color="grey", linestyle="--", linewidth=1, label=f"chance (log2 {clusters})")
    axes[0].set(
        title="pretraining: masked-frame cross-entropy",
        xlabel="pretraining update",
        ylabel="bits per masked frame",
    )
    axes[1].set(title=f"{system_title}: masked-unit accuracy", xlabel="pretraining update", ylabel="% of masked frames")
    if ft_log:
        ft = log_records(ft_log, "train_inner")
        axes[2].plot([int(r["num_updates"]) for r in ft], [float(r["loss"]) for r in ft], label="train")
        axes[2].set(
            title=f"fine-tuning iteration {ft_from} (letter CTC)",
            xlabel="fine-tuning update",
            ylabel="CTC loss (bits per utterance)",
        )
    fig.suptitle(f"{system_title}, tiny (4 x 256)")
    for ax in axes:  # below the axes, so that no legend covers a curve
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_report(args, ws, speech, system, runs, probes, ft, scores, seconds, export_dir) -> Path:
    budget = args.budget
    reports = ws.reports
    reports.mkdir(parents=True, exist_ok=True)
    plot_curves(
        system.title,
        {k: r.log for k, r in runs.items()},
        ft["log"] if ft else None,
        budget.finetune_from,
        args.clusters,
        reports / "training_curves.png",
    )
    c = ws.corpus
    where = describe(args.device)
    results = {
        "machine": where,
        "device": args.device,
        "command": " ".join(["python examples/demo.py", *sys.argv[1:]]),
        "minutes": round(seconds / 60, 1),
        "budget": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(budget).items()},
        "model": system.title,
        "probes": {label: cer_of(rows) for label, rows in probes.items()},
        "finetuned": scores and {**scores, "updates": budget.finetune_updates, "from_iteration": budget.finetune_from},
    }
    (reports / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    lines = [
        "# fast-hubert demo: what pretraining bought, and a recognizer",
        "",
        f"This run: {args.device} ({where}), {seconds / 60:.1f} min (stages done before are not counted). "
        f"Model: {system.title}, tiny (4 x 256), {args.clusters} units, "
        f"pretraining: {updates(budget)}.",
        f"Data: {speech}: {len(c.pretrain)} utterances of pretraining audio"
        + (f"; {len(c.train)} transcribed for probes and fine-tuning; {len(c.dev)} dev." if c.train else "."),
        "",
    ]
    if scores:
        lines += [
            f"## The recognizer: iteration {budget.finetune_from} + letter CTC ({budget.finetune_updates} updates), "
            "Viterbi, no LM",
            "",
            f"dev CER **{scores['cer']:.1f} %**, WER {scores['wer']:.1f} % on {scores['utterances']} utterances; "
            f"{scores['empty_hypotheses']} empty transcripts. For transformers: {export_dir}",
            *examples(ws.work / "demo_decode"),
            "",
        ]
    elif c.train:
        lines += [
            f"Not fine-tuned (--finetune-updates 0): the iteration-2 pretrained model is exported to {export_dir}.",
            "",
        ]
    if probes:
        gpu = recorded_gpu()
        seeds = len(budget.probe_seeds)
        lines += [
            f"## The same probe on each upstream (frozen, BiLSTM letter CTC, {budget.probe_updates} updates, "
            f"{seeds} seed{'s' if seeds > 1 else ''}; dev CER %, lower is better)",
            "",
            "| upstream | this run | recorded: "
            + (f"{gpu['machine'].split(',')[0]}, {gpu['minutes']} min |" if gpu else "GPU |"),
            "|---|---|---|",
        ]
        for label in probes:
            recorded = fmt(gpu["probes"].get(label, [])) if gpu else "pending"
            lines.append(f"| {label} | {fmt(cer_of(probes[label]))} | {recorded} |")
        features = [label for label in probes if "no pretraining" in label]
        lines += ["", "What this run shows (differences under the probe's noise say nothing):"]
        lines += findings(probes, features, budget)
        if any(c >= 95 for rows in probes.values() for c in cer_of(rows)):
            lines.append(
                "- A CER near 100 % means (almost) no output: that probe is still in CTC's all-blank stage "
                "(more --probe-updates move it)."
            )
        if gpu:
            lines.append(
                f"- Recorded GPU run: `{gpu['command']}` (pretraining {gpu['budget']['pretrain_updates']} updates, "
                f"probes of {gpu['budget']['probe_updates']} updates)."
            )
        else:
            lines.append(
                "- No GPU run is recorded yet: `examples/demo.py --device cuda` writes report/results.json; "
                "commit it as benchmarks/results/demo_gpu.json."
            )
        lines.append("")
    lines += [
        "Details (stage times, units, masked accuracy, layer weights): details.md; curves: training_curves.png",
    ]
    write_details(args, ws, runs, probes, reports)
    out = reports / "summary.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))
    return out


def write_details(args, ws, runs, probes, reports: Path):
    timings = {
        p.name: json.loads(p.read_text())["seconds"]
        for d in (ws.work / ".done", ws.work / "runs" / ".done")
        if d.is_dir()
        for p in sorted(d.iterdir(), key=lambda p: p.stat().st_mtime)
    }
    (reports / "timings.json").write_text(json.dumps(timings, indent=1))
    lines = ["# fast-hubert demo: details", "", "## Pretraining", ""]
    for label, r in runs.items():
        acc = ", ".join(f"block {k[7:]} {v:.3f}" for k, v in sorted(r.masked_accuracy.items()))
        lines.append(f"- {label}: {r.updates} updates, {r.cpu_s / 60:.1f} CPU-min; masked-unit accuracy {acc}")
    for name, title in (("it1", "iteration-1 units (MFCC)"), ("demo_it2", "iteration-2 units")):
        units = reports / name / "valid_km_report.json"
        if units.is_file():
            u = json.loads(units.read_text())
            lines.append(
                f"- {title}: {u.get('used_units')} of {u.get('n_units')} used (perplexity {u.get('perplexity', 0):.1f})"
            )
    if probes:
        lines += ["", "## Probes: learned layer weights (0 = the model's input)", ""]
        for label, rows in probes.items():
            for seed, r in sorted(rows.items()):
                weights = " ".join(f"{w:.2f}" for w in r.get("layer_weights") or [])
                lines.append(
                    f"- {label}, seed {seed}: CER {r['cer']:.1f}, WER {r['wer']:.1f}; weights {weights or '-'}"
                )
    lines += ["", "## Stage wall-clock", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in timings.items()]
    (reports / "details.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
