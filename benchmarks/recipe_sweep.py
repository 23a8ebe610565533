"""Tuning the tiny recipe at a fixed CPU budget: which settings make iteration 1 probe best?

Each candidate (``CANDIDATES``: fairseq-hydra-train overrides of the tiny fast_hubert config)
pretrains iteration 1 on the MFCC units for the same CPU time (``--budget`` CPU-minutes, one
thread; updates = budget / the candidate's own CPU seconds per update, measured first, since batch
size sets the cost), and the model is probed with ``fast-hubert-probe`` exactly as the
quality-vs-compute benchmark probes (so762_dev is the only selection data). Two replicates measure
the noise a difference must beat: the default recipe pretrained with a second seed, and its
checkpoint probed with a second probe seed. The MFCC probe is the reference the targets use.

    python benchmarks/recipe_sweep.py [--budget 3.75] [--candidates default lr1e-3 ...] [--jobs 2]

Shares the work folder (data, CMVN, MFCC units, baseline probes) with ``quality_vs_compute.py``;
every stage is resumable, and a candidate's runs carry the names that benchmark gives its iteration 1
at twice ``--budget`` (``--overrides ... --recipe-name CANDIDATE``), so it reuses them.
Writes ``benchmarks/results/recipe_sweep_cpu.md`` and ``.json``.
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fast_hubert_plugin.recipes.corpus import load_corpus, resolve_speech_dir  # noqa: E402
from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, Recipe, Workspace, probe  # noqa: E402
from quality_vs_compute import RESULTS, cpu_seconds_per_update, machine, recipe_label, run_tag  # noqa: E402

# name -> (overrides, why it is a candidate)
CANDIDATES = {
    "default": ((), "the tiny config: lr 5e-4, 30 warm-up updates, 36 s batches, mask 0.65 x 5 frames"),
    "lr1e-3": (("optimization.lr=[0.001]",), "twice the peak learning rate"),
    "batch18s": (("dataset.max_tokens=1800",), "half the batch, so twice the updates for the same CPU time"),
    "batch18s_lr1e-3": (("dataset.max_tokens=1800", "optimization.lr=[0.001]"), "both"),
    "mask_paper": (("model.mask_prob=0.8", "model.mask_length=10"),
                   "Fast-HuBERT's masking: p 0.8, 10 frames (400 ms) at 40 ms"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=3.75,
                   help="CPU-minutes of iteration-1 pretraining per candidate (default: half of the benchmark's "
                        "largest budget, i.e. its iteration 1)")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--no-replicates", action="store_true", help="skip the second pretraining and probe seeds")
    p.add_argument("--clusters", type=int, default=100, help="MFCC k-means units (as the benchmark)")
    p.add_argument("--probe-updates", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2, help="single-threaded runs at a time")
    p.add_argument("--calibration-updates", type=int, nargs=2, default=(2, 42), metavar=("SHORT", "LONG"))
    p.add_argument("--speech-dir", type=Path, help="as the demo's (default: ../shared/speech, else Mini LibriSpeech)")
    p.add_argument("--work-dir", type=Path, default=REPO / "quality_vs_compute_work")
    p.add_argument("--output", type=Path, default=RESULTS / "recipe_sweep_cpu.md")
    args = p.parse_args(argv)
    t0 = time.time()

    ws = Workspace(args.work_dir, load_corpus(resolve_speech_dir(args.speech_dir)), clusters=args.clusters,
                   threads=2).prepare().iteration1_units()
    ws.threads = 1
    system = SYSTEMS["fast_hubert"]
    runs = [(name, 1, 1) for name in args.candidates]
    if not args.no_replicates:
        runs += [("default", 2, 1), ("default", 1, 2)]  # a second pretraining seed; a second probe seed

    def label(name):  # the benchmark's names for the same runs, so that it reuses them
        return recipe_label(name, CANDIDATES[name][0])

    def cost(name):
        return cpu_seconds_per_update(ws, system, args.calibration_updates, CANDIDATES[name][0], label(name))

    with ThreadPoolExecutor(args.jobs) as pool:
        costs = dict(zip(args.candidates, pool.map(cost, args.candidates)))
        mfcc = pool.submit(probe, ws, "mfcc", "mfcc", args.probe_updates, threads=1)

        def run(item):
            name, seed, probe_seed = item
            updates = max(1, round(args.budget * 60 / costs[name]))
            recipe = Recipe(ws, system, (updates, updates), seed, threads=1, progress=False,
                            overrides=CANDIDATES[name][0],
                            tag=run_tag(system.name, label(name), 2 * args.budget, seed))
            it1 = recipe.iteration1()
            res = probe(ws, f"{recipe.name}_it1" + (f"_p{probe_seed}" if probe_seed != 1 else ""), it1.checkpoint,
                        args.probe_updates, seed=probe_seed, threads=1)
            return dict(candidate=name, seed=seed, probe_seed=probe_seed, updates=it1.updates,
                        cpu_min=round(it1.cpu_s / 60, 2), masked_accuracy=it1.masked_accuracy, cer=res["cer"],
                        wer=res["wer"], layer_weights=res["layer_weights"])

        rows = list(pool.map(run, runs))
        mfcc_cer = mfcc.result()["cer"]
    write_report(args, costs, rows, mfcc_cer, time.time() - t0)


def write_report(args, costs, rows, mfcc_cer, seconds):
    args.output.parent.mkdir(parents=True, exist_ok=True)
    main_rows = [r for r in rows if r["seed"] == 1 and r["probe_seed"] == 1]
    default = next((r["cer"] for r in main_rows if r["candidate"] == "default"), None)
    noise = {f"pretraining seed {r['seed']}" if r["seed"] != 1 else f"probe seed {r['probe_seed']}": r["cer"]
             for r in rows if (r["seed"], r["probe_seed"]) != (1, 1)}
    margin = max([abs(v - default) for v in noise.values()] + [1.0]) if default is not None else 1.0
    best = min(main_rows, key=lambda r: r["cer"])
    lines = [
        "# Tuning the tiny recipe: iteration 1 at a fixed CPU budget (CPU, real speech)", "",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}; {seconds / 60:.0f} min for this "
        "invocation (stages done before are reused).",
        "Command: `.venv/bin/python benchmarks/recipe_sweep.py --budget " f"{args.budget:g} --candidates "
        + " ".join(args.candidates) + (" --no-replicates" if args.no_replicates else "") + f" --jobs {args.jobs}`", "",
        f"Each candidate pretrains fast_hubert iteration 1 (MFCC units, K={args.clusters}) for {args.budget:g} CPU-minutes "
        "of one thread, then is probed with fast-hubert-probe's defaults (frozen, weighted layer sum, BiLSTM letter "
        f"CTC, {args.probe_updates} updates; trained on so762_train, dev CER on so762_dev, the only selection data).", "",
        "| candidate | overrides | why | CPU-s per update | updates | CPU-min | masked acc | probe dev CER % | layer weights (0 = input) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in main_rows:
        overrides, why = CANDIDATES[r["candidate"]]
        acc = ", ".join(f"{v:.3f}" for v in r["masked_accuracy"].values()) or "-"
        lines.append(f"| {r['candidate']} | {' '.join(f'`{o}`' for o in overrides) or '-'} | {why} | "
                     f"{costs[r['candidate']]:.3f} | {r['updates']} | {r['cpu_min']:.2f} | {acc} | {r['cer']:.1f} | "
                     + " ".join(f"{w:.2f}" for w in r["layer_weights"]) + " |")
    lines += ["", f"Reference: the MFCC probe (the iteration-1 targets' features): {mfcc_cer:.1f} %.", ""]
    if noise:
        lines += ["Replicates of the default recipe (the noise a difference has to beat): "
                  + ", ".join(f"{k} {v:.1f} %" for k, v in noise.items())
                  + f" against {default:.1f} % (largest difference {margin:.1f} points).", ""]
    if default is None or best["candidate"] == "default":
        verdict = "no candidate beats the default recipe"
    elif best["cer"] < default - margin:
        verdict = f"{best['candidate']} beats the default by more than the replicates' spread"
    else:
        verdict = f"{best['candidate']} is within the replicates' spread of the default"
    lines += [f"Best: **{best['candidate']}** ({best['cer']:.1f} %): {verdict}.", ""]
    notes = args.output.with_name(args.output.stem + "_notes.md")
    if notes.exists():
        lines += ["## Notes (written after the runs)", "", notes.read_text(encoding="utf-8").strip(), ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    args.output.with_suffix(".json").write_text(json.dumps(dict(costs=costs, rows=rows, mfcc=mfcc_cer,
                                                                budget=args.budget), indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
