"""Representation quality against pretraining compute: stock HuBERT vs fast_hubert vs fast_hubert + ILS.

Every system runs HuBERT's two-iteration recipe (``fast_hubert_plugin.recipes.two_iterations``):
iteration 1 on the same MFCC units, iteration 2 on k-means units of block ``--layer`` of its own
iteration-1 model, each iteration a fresh model, all with the same tiny Transformer (4 x 256) and
optimiser. A budget is CPU time of pretraining (both iterations, half each), measured as the
user + system time of the training processes, each single-threaded; two runs share the two
cores. Updates per iteration = budget / 2 / the system's CPU seconds per update, measured first
(two short runs, so start-up cost cancels). The iteration-2 clustering is reported, not budgeted.

Every pretrained model is probed identically with ``fast-hubert-probe`` (frozen, SUPERB-style
weighted layer sum, BiLSTM letter CTC, its documented defaults), and so are the no-pretraining
baselines: CMVN'd fbank, MFCC, and fast_hubert's initial weights. Selection data: so762_dev only.

    python benchmarks/quality_vs_compute.py [--budgets 1.5 4 7.5] [--seeds 2] [--jobs 2]

Stages are resumable (a killed run continues where it was); the report is rewritten at the end:
``benchmarks/results/quality_vs_compute_cpu.md``, ``quality_vs_compute.png`` and ``.json``.
"""

import argparse
import json
import math
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, Recipe, probe

from common import (
    BASELINES,
    RESULTS,
    add_workspace_args,
    baseline_probe,
    machine,
    recipe_label,
    run_tag,
    seconds_per_update,
    spread,
    verdict,
    workspace,
)


def plot(rows, baselines, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, system in SYSTEMS.items():
        pts = sorted((r["budget"], r["cpu_min"], r["cer"]) for r in rows if r["system"] == name and r["iteration"] == 2)
        budgets = sorted({p[0] for p in pts})
        xs = [statistics.mean(p[1] for p in pts if p[0] == b) for b in budgets]
        ys = [statistics.mean(p[2] for p in pts if p[0] == b) for b in budgets]
        (line,) = ax.plot(xs, ys, "o-", label=system.title)
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], s=12, color=line.get_color(), alpha=0.6)
    for (label, cer), style in zip(baselines.items(), ("--", ":", "-.")):
        ax.axhline(cer, color="grey", linestyle=style, label=f"{label} ({cer:.1f} %)")
    ax.set(
        xlabel="pretraining CPU-minutes (both iterations, 1 thread)",
        ylabel="probe dev CER (%)",
        title="Probe CER after two iterations vs pretraining compute (so762_dev)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    grid = p.add_argument_group("what is run")
    grid.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[1.5, 4.0, 7.5],
        help="pretraining CPU-minutes per system, both iterations together",
    )
    grid.add_argument("--seeds", type=int, default=2, help="pretraining seeds at the largest budget")
    grid.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    grid.add_argument("--layer", type=int, default=3, help="1-based block clustered for iteration 2")
    grid.add_argument("--clusters", type=int, default=100, help="k-means units of both iterations")
    grid.add_argument("--probe-updates", type=int, default=1000)
    grid.add_argument(
        "--calibration-updates",
        type=int,
        nargs=2,
        metavar=("SHORT", "LONG"),
        help="updates of the two runs that measure CPU seconds per update (default: 2 and 42, stock 2 and 10)",
    )
    recipe = p.add_argument_group("a tuned recipe")
    recipe.add_argument(
        "--overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="fairseq-hydra-train overrides of fast_hubert and fast_hubert + ILS, both iterations (the "
        "recipe chosen by benchmarks/recipe_sweep.py); stock HuBERT keeps the tiny defaults",
    )
    recipe.add_argument("--recipe-name", default="tuned", help="names the runs made with --overrides (their stages)")
    how = p.add_argument_group("how it runs")
    how.add_argument("--jobs", type=int, default=2, help="single-threaded runs at a time")
    how.add_argument(
        "--stop-after-minutes",
        type=float,
        help="start no new run after this many minutes; the record marks the cells not run",
    )
    add_workspace_args(how)
    how.add_argument("--output", type=Path, default=RESULTS / "quality_vs_compute_cpu.md")
    return p.parse_args(argv)


def overrides_of(args, system) -> tuple:
    """The tuned recipe's overrides: fast_hubert's and fast_hubert + ILS's; stock HuBERT keeps the defaults."""
    return tuple(args.overrides) if system.name != "hubert" else ()


def label_of(args, system) -> str:
    return recipe_label(args.recipe_name, overrides_of(args, system))


def measure_costs(ws, systems, args) -> dict:
    """Each system's CPU seconds per update, calibrated with the overrides it trains with."""

    def cost(s):
        return seconds_per_update(ws, s, args.calibration_updates, overrides_of(args, s), label_of(args, s))

    with ThreadPoolExecutor(args.jobs) as pool:
        costs = dict(zip(args.systems, pool.map(cost, systems)))
    print("CPU seconds per update:", {k: round(v, 3) for k, v in costs.items()}, flush=True)
    return costs


def planned_recipes(ws, systems, costs, args) -> list:
    """(budget, recipe) of every cell: each budget, more seeds at the largest; updates per iteration =
    budget / 2 / the system's CPU seconds per update."""
    largest = max(args.budgets)
    recipes = []
    for budget in sorted(args.budgets, reverse=True):
        for seed in range(1, (args.seeds if budget == largest else 1) + 1):
            for system in systems:
                per_iteration = max(1, round(budget * 60 / 2 / costs[system.name]))
                recipe = Recipe(
                    ws,
                    system,
                    (per_iteration, per_iteration),
                    seed,
                    args.layer,
                    args.clusters,
                    threads=1,
                    progress=False,
                    overrides=overrides_of(args, system),
                    tag=run_tag(system.name, label_of(args, system), budget, seed),
                )
                recipes.append((budget, recipe))
    return recipes


def probed_rows(ws, args, deadline: float, item) -> list:
    """A cell's two iterations pretrained, and its rows: iteration 2 probed, iteration 1 too at the largest
    budget (stock HuBERT's iteration 1 excepted). Past the deadline only finished cells are reported."""
    budget, recipe = item
    probed = [1, 2] if budget == max(args.budgets) and recipe.system.name != "hubert" else [2]
    finished = all((ws.work / ".done" / f"probe_{recipe.name}_it{i}").exists() for i in probed)
    if time.time() > deadline and not finished:
        print(f"not run (--stop-after-minutes): {recipe.name}", flush=True)
        return []
    it1, it2 = recipe.pretrain_both()
    out = []
    for iteration, run in [(i, run) for i, run in ((1, it1), (2, it2)) if i in probed]:
        res = probe(ws, f"{recipe.name}_it{iteration}", run.checkpoint, args.probe_updates, threads=1)
        out.append(
            dict(
                system=recipe.system.name,
                budget=budget,
                seed=recipe.seed,
                iteration=iteration,
                updates=[it1.updates, it2.updates],
                cpu_min=round((it1.cpu_s + it2.cpu_s) / 60, 2),
                cer=res["cer"],
                wer=res["wer"],
                layer_weights=res["layer_weights"],
                accuracy_it1=it1.masked_accuracy,
                accuracy_it2=it2.masked_accuracy,
                probe_cpu_s=res["cpu_s"],
            )
        )
    return out


def run_cells(ws, args, recipes, deadline: float):
    """Every cell's rows (the cells that decide the targets first) and the baselines' probe CERs."""
    with ThreadPoolExecutor(args.jobs) as pool:
        base_futures = [pool.submit(baseline_probe, ws, n, args.probe_updates) for n in BASELINES]
        order = sorted(recipes, key=lambda r: priority(r[1].system.name, r[0], r[1].seed, args.budgets))
        rows = [row for rs in pool.map(lambda item: probed_rows(ws, args, deadline, item), order) for row in rs]
        baselines = dict(f.result() for f in base_futures)
    return rows, baselines


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    ws = workspace(args.work_dir, args.speech_dir, args.clusters)
    ws.threads = 1
    systems = [SYSTEMS[n] for n in args.systems]
    costs = measure_costs(ws, systems, args)
    recipes = planned_recipes(ws, systems, costs, args)
    deadline = t0 + args.stop_after_minutes * 60 if args.stop_after_minutes is not None else float("inf")
    rows, baselines = run_cells(ws, args, recipes, deadline)
    write_report(args, ws, costs, rows, baselines, time.time() - t0)


def priority(system: str, budget: float, seed: int, budgets) -> tuple:
    """The runs that decide the targets first (so that a run stopped early still assesses most of them):
    stock HuBERT and fast_hubert at the largest budget, fast_hubert at a fifth of it, ILS, the second
    seeds of the two fast_hubert systems (the spread targets a and d are judged by), then the rest."""
    largest = max(budgets)
    fifth = min(budgets, key=lambda b: abs(b - largest / 5))
    first = [
        ("hubert", largest, 1),
        ("fast_hubert", largest, 1),
        ("fast_hubert", fifth, 1),
        ("fast_hubert_ils", largest, 1),
        ("fast_hubert", largest, 2),
        ("fast_hubert_ils", largest, 2),
    ]
    if (system, budget, seed) in first:
        return (first.index((system, budget, seed)),)
    return (len(first), seed, ["fast_hubert", "hubert", "fast_hubert_ils"].index(system), -budget)


def mean_cer(rows, system, budget, iteration=2):
    vals = [r["cer"] for r in rows if r["system"] == system and r["budget"] == budget and r["iteration"] == iteration]
    return statistics.mean(vals) if vals else float("nan"), vals


def report_header(args, ws, costs, seconds) -> list:
    """The machine, the command, the recipe, the data and the measured costs."""
    return [
        "# Representation quality vs pretraining compute (CPU, real speech)",
        "",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}; "
        f"{seconds / 60:.0f} min for this invocation (stages done before are reused).",
        "Command: `.venv/bin/python benchmarks/quality_vs_compute.py --budgets "
        + " ".join(f"{b:g}" for b in args.budgets)
        + f" --seeds {args.seeds} --jobs {args.jobs}"
        + (" --overrides " + " ".join(args.overrides) + f" --recipe-name {args.recipe_name}" if args.overrides else "")
        + (f" --stop-after-minutes {args.stop_after_minutes:g}" if args.stop_after_minutes is not None else "")
        + "`",
        "Recipe: the tiny config `config/pretraining/fast_hubert_tiny_cpu.yaml`"
        + (
            f", with {', '.join(f'`{o}`' for o in args.overrides)} for fast_hubert and fast_hubert + ILS "
            "(`recipe_sweep_cpu.md`); stock HuBERT keeps the tiny defaults."
            if args.overrides
            else " for every system."
        ),
        *(
            [
                f"Stopped early: runs not finished within {args.stop_after_minutes:g} min are marked 'not run' (the runs "
                "reported were made by earlier invocations, stage by stage; every stage is resumable, so the same command "
                "without --stop-after-minutes completes the rest)."
            ]
            if args.stop_after_minutes is not None
            else []
        ),
        "",
        f"Data: {len(ws.corpus.pretrain)} utterances of pretraining audio (so762_train + LibriSpeech excerpts), "
        f"probes trained on so762_train ({len(ws.corpus.train)}) and scored on so762_dev ({len(ws.corpus.dev)}; "
        "speakers disjoint). Iteration 1: MFCC k-means units (K="
        f"{args.clusters}, 50 Hz); iteration 2: K={args.clusters} "
        f"units of block {args.layer} of each system's own iteration-1 model.",
        "CPU seconds per pretraining update (1 thread, 36 s of audio per batch): "
        + ", ".join(f"{SYSTEMS[k].title} {v:.2f}" for k, v in costs.items())
        + ".",
        "",
    ]


def cer_tables(args, rows, baselines) -> list:
    """Each system's probe CER after two iterations at each budget (seed mean), and the baselines'."""
    budgets, largest = sorted(args.budgets), max(args.budgets)
    lines = [
        "## Probe dev CER (%) after two iterations",
        "",
        "| system | " + " | ".join(f"{b:g} CPU-min" for b in budgets) + " | updates per iteration at the largest |",
        "|---|" + "---|" * len(budgets) + "---|",
    ]
    for name in args.systems:
        cells = []
        for b in budgets:
            m, vals = mean_cer(rows, name, b)
            if not vals:
                cells.append("not run")
                continue
            cells.append(
                f"{m:.1f}"
                + (f" ({', '.join(f'{v:.1f}' for v in vals)}; spread {spread(vals):.1f})" if len(vals) > 1 else "")
            )
        upd = next((r["updates"][0] for r in rows if r["system"] == name and r["budget"] == largest), "-")
        lines.append(f"| {SYSTEMS[name].title} | " + " | ".join(cells) + f" | {upd} |")
    lines += [
        "",
        "| baseline (no pretraining) | probe dev CER % |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in baselines.items()],
        "",
    ]
    return lines


def runs_table(rows) -> list:
    lines = [
        "## Every run",
        "",
        "| system | budget | seed | iteration probed | updates (it1, it2) | pretraining CPU-min | probe CER % | WER % | "
        "masked acc it1 | masked acc it2 | layer weights (0 = input) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["system"], r["budget"], r["seed"], r["iteration"])):
        acc = lambda d: ", ".join(f"{k.split('_')[-1]} {v:.3f}" for k, v in sorted(d.items())) or "-"  # noqa: E731
        lines.append(
            f"| {SYSTEMS[r['system']].title} | {r['budget']:g} | {r['seed']} | {r['iteration']} | "
            f"{r['updates'][0]}, {r['updates'][1]} | {r['cpu_min']:.2f} | {r['cer']:.1f} | {r['wer']:.1f} | "
            f"{acc(r['accuracy_it1'])} | {acc(r['accuracy_it2'])} | "
            + " ".join(f"{w:.2f}" for w in r["layer_weights"])
            + " |"
        )
    return lines


def write_report(args, ws, costs, rows, baselines, seconds):
    """The Markdown record, its plot (beside it) and its JSON."""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, baselines, args.output.with_suffix(".png").with_name("quality_vs_compute.png"))
    lines = report_header(args, ws, costs, seconds) + cer_tables(args, rows, baselines) + runs_table(rows)
    lines += [
        "",
        "Budgets are nominal: updates = budget / 2 / the CPU seconds per update measured first. What the runs "
        "actually consumed (start-up, validation and the data loader included, on a loaded machine) is the "
        "'pretraining CPU-min' column above and the x axis of the plot.",
        "",
        targets(rows, baselines, sorted(args.budgets), max(args.budgets)),
        "",
        "![quality vs compute](quality_vs_compute.png)",
        "",
    ]
    notes = args.output.with_name(args.output.stem + "_notes.md")
    if notes.exists():  # findings written after the runs, kept across regenerations
        lines += ["## Notes (written after the runs)", "", notes.read_text(encoding="utf-8").strip(), ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    args.output.with_suffix(".json").write_text(
        json.dumps(dict(costs=costs, rows=rows, baselines=baselines, budgets=args.budgets), indent=1)
    )
    print("\n".join(lines))


def targets(rows, baselines, budgets, largest) -> str:
    """Targets a-d of the benchmark, each met or not (or not assessed), with its numbers."""
    if not {"fast_hubert", "hubert"} <= {r["system"] for r in rows}:
        return "## Targets\n\nNot assessed: they compare fast_hubert with stock HuBERT, and both were not run."
    fh, fh_vals = mean_cer(rows, "fast_hubert", largest)
    best_features = min(baselines.get("fbank", 1e9), baselines.get("mfcc", 1e9))
    margin = max(1.0, spread(fh_vals))
    out = ["## Targets", ""]
    out.append(
        f"- a. fast_hubert ({largest:g} CPU-min, iteration 2) {fh:.1f} % vs the best input features "
        f"{best_features:.1f} %: **{verdict(fh < best_features - margin, fh)}** (clearly = by more than "
        f"max(1 point, seed spread {spread(fh_vals):.1f}))"
    )
    per_budget = [(b, mean_cer(rows, "fast_hubert", b)[0], mean_cer(rows, "hubert", b)[0]) for b in budgets]
    run = [(b, f, h) for b, f, h in per_budget if not (math.isnan(f) or math.isnan(h))]
    missing = [b for b, f, h in per_budget if math.isnan(f) or math.isnan(h)]
    met = bool(run) and all(f < h for _, f, h in run)
    b_text = (
        "met"
        if met and not missing
        else (
            "not met"
            if not met
            else f"met at the budgets run, not assessed at {', '.join(f'{b:g}' for b in missing)} CPU-min (not run)"
        )
    )
    out.append(
        f"- b. fast_hubert beats stock HuBERT at every budget: **{b_text}** ("
        + "; ".join(f"{b:g} min: {f:.1f} vs {h:.1f}" for b, f, h in per_budget)
        + ")"
    )
    fifth = min(budgets, key=lambda b: abs(b - largest / 5))
    f5, s_big = mean_cer(rows, "fast_hubert", fifth)[0], mean_cer(rows, "hubert", largest)[0]
    out.append(
        f"- c. fast_hubert at {fifth:g} CPU-min (1/{largest / fifth:.0f} of the largest) {f5:.1f} % vs stock "
        f"HuBERT at {largest:g} CPU-min {s_big:.1f} %: **{verdict(f5 <= s_big, f5, s_big)}**"
    )
    for name in sorted({r["system"] for r in rows} - {"hubert"}):
        it1, it2 = mean_cer(rows, name, largest, 1)[0], mean_cer(rows, name, largest, 2)[0]
        out.append(
            f"- d. {SYSTEMS[name].title}, iteration 2 vs its iteration 1 ({largest:g} CPU-min): {it2:.1f} vs "
            f"{it1:.1f} %: **{verdict(it2 < it1, it1, it2)}**"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
