"""The demo's report: one screen (``summary.md``), the details beside it (``details.md``), the
numbers as JSON (``results.json``, the form a run is recorded in) and the training curves.

Its first table is the comparison 2 CPU cores can resolve: the same fine-tuning from the pretrained
model and from the never-pretrained one. Every sentence of the summary that compares two numbers is
computed from them, against the noise of what is compared (the fine-tuning seeds' spread, at least the
recorded one; the probe's seed spread, at least 1 CER point), so a heading never claims what its table
contradicts."""

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
# CER points: the least fine-tuning noise a run assumes (it cannot see its own with few seeds): the
# pretrained start's 3 seeds at the CPU split agree within 0.2 (benchmarks/results/demo_budget_cpu.md),
# so 1.0 is on the safe side; the never-pretrained seeds spread far more, and a run sees that itself
RECORDED_FINETUNE_NOISE = 1.0
NEVER = "never pretrained"
BLANK_STAGE_CER = 95.0  # a CTC model that (almost) only emits blanks: its dev CER is ~100 %


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


def recognizer_table(recognizers: Dict[str, Dict[int, dict]], budget) -> List[str]:
    """The report's first table: dev CER / WER / empty transcripts of each fine-tuned start."""
    pretrained = f"iteration {budget.finetune_from}"
    first, second = budget.pretrain_updates
    pretraining = f"{first}" if budget.finetune_from == 1 else f"{first} + {second}"
    lines = [
        f"## What pretraining bought: the same fine-tuning from each start (letter CTC, "
        f"{budget.finetune_updates} updates; Viterbi, no LM)",
        "",
        "| fine-tuned from | seed | dev CER % | WER % | empty transcripts |",
        "|---|---|---|---|---|",
    ]
    for label, rows in recognizers.items():
        name = f"{label} ({pretraining} pretraining updates)" if label == pretrained else f"{label} (initial weights)"
        for seed, r in sorted(rows.items()):
            sc = r["scores"]
            lines.append(
                f"| {name} | {seed} | {sc['cer']:.1f} | {sc['wer']:.1f} | {sc['empty_hypotheses']} of {sc['utterances']} |"
            )
    return lines


def pretraining_gain(recognizers: Dict[str, Dict[int, dict]], pretrained: str) -> List[str]:
    """What the first table shows, computed from it: the pretrained recognizer's dev CER against the
    never-pretrained seeds' mean, set against the larger of their spread and the recorded one."""
    never = [r["scores"]["cer"] for _, r in sorted(recognizers.get(NEVER, {}).items())]
    if not never:
        return ["- No never-pretrained recognizer ran (--baseline-seeds 0): nothing to compare with."]
    ours = statistics.mean(r["scores"]["cer"] for r in recognizers[pretrained].values())
    spread = max(never) - min(never)
    tol = max(spread, RECORDED_FINETUNE_NOISE)
    seen = f"{spread:.1f} between its {len(never)} seeds here" if len(never) > 1 else "one seed here"
    noise = f"the fine-tuning noise ({seen}; {RECORDED_FINETUNE_NOISE:.1f} recorded)"
    baseline = f"{statistics.mean(never):.1f} %" + (" (mean of its seeds)" if len(never) > 1 else "")
    gain = statistics.mean(never) - ours
    if gain > tol:
        verdict = f"{gain:.1f} points lower: beyond {noise}. Pretraining bought that."
    elif gain < -tol:
        verdict = f"{-gain:.1f} points higher: worse, beyond {noise}."
    else:
        verdict = f"{abs(gain):.1f} points apart: within {noise}, so this budget shows no gain."
    lines = [f"- {pretrained}: dev CER {ours:.1f} % against {baseline} from the initial weights, {verdict}"]
    stuck = {label: blank_stage(rows) for label, rows in recognizers.items()}
    if any(stuck.values()):
        lines.append(
            "- Still in CTC's all-blank stage (dev CER >= 95 %: (almost) every transcript empty): "
            + ", ".join(f"{label} {len(stuck[label])} of {len(rows)} seeds" for label, rows in recognizers.items())
            + "."
        )
    return lines


def blank_stage(rows: Dict[int, dict]) -> List[int]:
    """The seeds whose recognizer has not left CTC's all-blank stage: it writes (almost) nothing."""
    return [seed for seed, r in sorted(rows.items()) if r["scores"]["cer"] >= BLANK_STAGE_CER]


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


def scores_row(r: dict) -> dict:
    return {k: r["scores"][k] for k in ("cer", "wer", "utterances", "empty_hypotheses")}


def probe_section(probes: Dict[str, Dict[int, dict]], budget, gpu: Optional[dict]) -> List[str]:
    """This run's probe table beside the recorded GPU run's, or (no probes here) the recorded one alone."""
    where = f"{gpu['machine'].split(',')[0]}, {gpu['minutes']} min" if gpu else "GPU"
    if not probes:
        if not gpu or not gpu.get("probes"):
            return [
                "Probes (frozen features of MFCC, fbank and each model, BiLSTM letter CTC): on a GPU only "
                "(`--budget cuda`); no GPU run is recorded yet.",
                "",
            ]
        lines = [
            f"## The same probe on each upstream, recorded on {where} (frozen, BiLSTM letter CTC, "
            f"{gpu['budget']['probe_updates']} updates; dev CER %)",
            "",
            "| upstream | recorded |",
            "|---|---|",
        ]
        lines += [f"| {label} | {fmt(cers)} |" for label, cers in gpu["probes"].items()]
        return [*lines, f"- Recorded with `{gpu['command']}`; 2 CPU cores leave probes in CTC's blank stage.", ""]
    seeds = len(budget.probe_seeds)
    lines = [
        f"## The same probe on each upstream (frozen, BiLSTM letter CTC, {budget.probe_updates} updates, "
        f"{seeds} seed{'s' if seeds > 1 else ''}; dev CER %, lower is better)",
        "",
        f"| upstream | this run | recorded: {where} |",
        "|---|---|---|",
    ]
    for label in probes:
        recorded = fmt(gpu["probes"].get(label, [])) if gpu else "pending"
        lines.append(f"| {label} | {fmt(cer_of(probes[label]))} | {recorded} |")
    features = [label for label in probes if "no pretraining" in label]
    lines += ["", "What the probes show (differences under the probe's noise say nothing):"]
    lines += findings(probes, features, budget)
    if any(c >= BLANK_STAGE_CER for rows in probes.values() for c in cer_of(rows)):
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
    return [*lines, ""]


def recorded_recognizers(gpu: Optional[dict]) -> List[str]:
    """One line with the recorded GPU run's recognizers, when it has them."""
    if not gpu or not gpu.get("finetuned"):
        return []
    never = [r["cer"] for r in gpu.get("never_pretrained") or []]
    return [
        f"- Recorded on {gpu['machine'].split(',')[0]} ({gpu['budget']['finetune_updates']} fine-tuning updates): "
        f"{gpu['finetuned']['cer']:.1f} % from iteration {gpu['finetuned']['from_iteration']}, "
        f"{fmt(never)} % never pretrained."
    ]


def write_report(args, ws, speech, system, runs, probes, recognizers, seconds, export_dir) -> Path:
    budget = args.budget
    reports = ws.reports
    reports.mkdir(parents=True, exist_ok=True)
    pretrained = f"iteration {budget.finetune_from}"
    ft = recognizers[pretrained][1] if recognizers else None
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
        "finetuned": ft
        and {**scores_row(ft), "updates": budget.finetune_updates, "from_iteration": budget.finetune_from},
        "never_pretrained": [{"seed": seed, **scores_row(r)} for seed, r in sorted(recognizers.get(NEVER, {}).items())],
        "probes": {label: cer_of(rows) for label, rows in probes.items()},
    }
    (reports / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    lines = [
        "# fast-hubert demo: what pretraining bought a recognizer",
        "",
        f"This run: {args.device} ({where}), {seconds / 60:.1f} min (stages done before are not counted). "
        f"Model: {system.title}, tiny (4 x 256), {args.clusters} units, "
        f"pretraining: {updates(budget)}.",
        f"Data: {speech}: {len(c.pretrain)} utterances of pretraining audio"
        + (f"; {len(c.train)} transcribed for fine-tuning; {len(c.dev)} dev." if c.train else "."),
        "",
    ]
    gpu = recorded_gpu()
    if ft:
        lines += recognizer_table(recognizers, budget)
        lines += ["", *pretraining_gain(recognizers, pretrained), *recorded_recognizers(gpu)]
        lines += [
            "- MFCC input is not fine-tuned: that needs the model with a 39-dim MFCC front-end in place of its "
            "fbank one, which it does not have; the probes compare MFCC and fbank on a GPU.",
            "",
            f"The pretrained recognizer (for transformers: {export_dir}):",
            *examples(ws.work / "demo_decode"),
            "",
        ]
    elif c.train:
        lines += [
            f"Not fine-tuned (--finetune-updates 0): the iteration-2 pretrained model is exported to {export_dir}.",
            "",
        ]
    if c.train:
        lines += probe_section(probes, budget, gpu)
    lines += [
        "Details (stage times, units, masked accuracy, layer weights): details.md; curves: training_curves.png",
    ]
    write_details(args, ws, runs, probes, recognizers, reports)
    out = reports / "summary.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))
    return out


def write_details(args, ws, runs, probes, recognizers, reports: Path):
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
    if recognizers:
        lines += ["", "## Fine-tuning (fairseq's own validation during it; CPU-min of the run)", ""]
        for label, rows in recognizers.items():
            for seed, r in sorted(rows.items()):
                uer = "-" if r.get("valid_uer") is None else f"{r['valid_uer']:.1f}"
                lines.append(f"- {label}, seed {seed}: valid UER {uer}, {r['cpu_s'] / 60:.1f} CPU-min")
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
