"""Tuning the tiny recipe at a fixed CPU budget: which settings make iteration 1 probe best?

Each candidate (``CANDIDATES``: fairseq-hydra-train overrides of the tiny fast_hubert config)
pretrains iteration 1 on the MFCC units for the same CPU time (``--budget`` CPU-minutes, one
thread; updates = budget / the candidate's own CPU seconds per update, measured first, since batch
size sets the cost), and the model is probed with ``fast-hubert-probe`` exactly as the
quality-vs-compute benchmark probes (so762_dev is the only selection data). Two replicates measure
the noise a difference must beat: the default recipe pretrained with a second seed, and its
checkpoint probed with a second probe seed. The MFCC probe is the reference the targets use.

The iteration-2 candidates (``ITERATION2_CANDIDATES``: the block of the iteration-1 model that is
clustered, and the number of units) each cluster the iteration-1 model of one candidate
(``--iteration2-from``, ``default`` unless told) and pretrain a fresh model on those units with the
same overrides for the same updates; their probes against that iteration 1's are target d of the
benchmark.

    python benchmarks/recipe_sweep.py [--budget 3.75] [--candidates default lr1e-3 ...]
        [--iteration2-candidates L3_K100 L4_K100 ...] [--iteration2-from default] [--jobs 2]

Shares the work folder (data, CMVN, MFCC units, baseline probes) with ``quality_vs_compute.py``;
every stage is resumable, and a candidate's runs carry the names that benchmark gives its iteration 1
at twice ``--budget`` (``--overrides ... --recipe-name CANDIDATE``), so it reuses them.
Writes ``benchmarks/results/recipe_sweep_cpu.md`` and ``.json``; rows of candidates that an
invocation does not run are kept from the JSON of the earlier ones (and the record says which).
"""

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, PretrainingRun, Recipe, probe

from common import RESULTS, add_workspace_args, machine, recipe_label, run_tag, seconds_per_update, workspace

# name -> (overrides, why it is a candidate)
CANDIDATES = {
    "default": ((), "the tiny config: lr 5e-4, 30 warm-up updates, 36 s batches, mask 0.65 x 5 frames"),
    "lr1e-3": (("optimization.lr=[0.001]",), "twice the peak learning rate"),
    "batch18s": (("dataset.max_tokens=1800",), "half the batch, so twice the updates for the same CPU time"),
    "batch18s_lr1e-3": (("dataset.max_tokens=1800", "optimization.lr=[0.001]"), "both"),
    "mask_paper": (
        ("model.mask_prob=0.8", "model.mask_length=10"),
        "Fast-HuBERT's masking: p 0.8, 10 frames (400 ms) at 40 ms",
    ),
    "temp1": (
        ("model.logit_temp=1.0",),
        "logits not divided by 0.1: at 0.1 the first updates' loss is ~17 bits against log2(100) = 6.6",
    ),
    "layers2": (("model.encoder_layers=2",), "half the depth, so more updates for the same CPU time"),
    "crop3s": (("task.max_sample_size=300",), "3 s crops: more utterances per batch, less context each"),
    "warmup100": (
        ("lr_scheduler.warmup_updates=100",),
        "a quarter of ~400 updates warming up instead of 30 (HuBERT: 8 %, as 30 is here)",
    ),
    "width128": (
        ("model.encoder_embed_dim=128", "model.encoder_ffn_embed_dim=512", "model.encoder_attention_heads=2"),
        "half the Transformer's width (64 per head kept), so more updates for the same CPU time",
    ),
    "width384": (
        ("model.encoder_embed_dim=384", "model.encoder_ffn_embed_dim=1536", "model.encoder_attention_heads=6"),
        "1.5 times the width: fewer, larger updates",
    ),
}

# name -> (block of the iteration-1 model clustered, k-means units, why it is a candidate)
ITERATION2_CANDIDATES = {
    "L3_K100": (3, 100, "the benchmark's choice: the block below the last, MFCC's number of units"),
    "L2_K100": (2, 100, "a lower block, nearer the input features"),
    "L4_K100": (4, 100, "the last block, the one trained to predict the MFCC units"),
    "L3_K500": (3, 500, "HuBERT's iteration-2 number of units"),
    "L4_K500": (4, 500, "the last block with HuBERT's iteration-2 number of units"),
}
BENCHMARK_ITERATION2 = (Recipe.iteration2_layer, Recipe.iteration2_clusters)  # quality_vs_compute.py's defaults


def parse_args(argv=None):
    """The arguments, and the record's JSON from earlier invocations (checked to hold this budget)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("candidates")
    what.add_argument(
        "--budget",
        type=float,
        default=3.75,
        help="CPU-minutes of iteration-1 pretraining per candidate (default: half of the benchmark's "
        "largest budget, i.e. its iteration 1)",
    )
    what.add_argument(
        "--candidates",
        nargs="+",
        default=list(CANDIDATES),
        choices=list(CANDIDATES),
        help="iteration-1 candidates (default is always run: the others are compared with it; so is "
        "--iteration2-from's, which the iteration-2 candidates start from)",
    )
    what.add_argument(
        "--iteration2-candidates",
        nargs="*",
        default=list(ITERATION2_CANDIDATES),
        choices=list(ITERATION2_CANDIDATES),
        help="iteration-2 candidates (none: give the flag alone)",
    )
    what.add_argument(
        "--iteration2-from",
        default="default",
        choices=list(CANDIDATES),
        help="the iteration-1 candidate the iteration-2 candidates cluster and whose overrides they keep",
    )
    what.add_argument("--no-replicates", action="store_true", help="skip the second pretraining and probe seeds")
    how = p.add_argument_group("how they are trained and probed")
    how.add_argument("--clusters", type=int, default=100, help="MFCC k-means units (as the benchmark)")
    how.add_argument("--probe-updates", type=int, default=1000)
    how.add_argument("--jobs", type=int, default=2, help="single-threaded runs at a time")
    how.add_argument("--calibration-updates", type=int, nargs=2, default=(2, 42), metavar=("SHORT", "LONG"))
    add_workspace_args(how)
    how.add_argument("--output", type=Path, default=RESULTS / "recipe_sweep_cpu.md")
    args = p.parse_args(argv)
    record = args.output.with_suffix(".json")
    earlier = json.loads(record.read_text()) if record.exists() else {}
    if earlier and earlier.get("budget") != args.budget:
        # Checked before the runs: the record's rows would be compared with, then replaced by, another budget's.
        p.error(
            f"{record} holds a sweep at budget {earlier.get('budget')}, not {args.budget:g}: give this budget "
            "its own record with --output"
        )
    return args, earlier


class Sweep:
    """The candidates' runs on the benchmark's workspace, named as the benchmark names them so that it
    reuses them."""

    def __init__(self, args):
        self.args = args
        self.ws = workspace(args.work_dir, args.speech_dir, args.clusters)
        self.ws.threads = 1
        self.system = SYSTEMS["fast_hubert"]
        self.costs = {}  # candidate -> CPU seconds per update
        self.base_cer = None  # the probe CER of the iteration 1 the iteration-2 candidates start from

    def label(self, name: str) -> str:
        return recipe_label(name, CANDIDATES[name][0])

    def cost(self, name: str) -> float:
        args = self.args
        return seconds_per_update(self.ws, self.system, args.calibration_updates, CANDIDATES[name][0], self.label(name))

    def recipe(self, name: str, seed: int, iteration2=None) -> Recipe:
        """A candidate's recipe; with ``iteration2`` (a name of ITERATION2_CANDIDATES) its iteration 2 is that one:
        the benchmark's own keeps its name (so that it is shared), the others are named apart."""
        updates = max(1, round(self.args.budget * 60 / self.costs[name]))
        tag = run_tag(self.system.name, self.label(name), 2 * self.args.budget, seed)
        layer_clusters = ITERATION2_CANDIDATES[iteration2][:2] if iteration2 else BENCHMARK_ITERATION2
        return Recipe(
            self.ws,
            self.system,
            (updates, updates),
            seed,
            *layer_clusters,
            threads=1,
            progress=False,
            overrides=CANDIDATES[name][0],
            tag=tag,
            iteration2_tag="" if layer_clusters == BENCHMARK_ITERATION2 else f"{tag}_{iteration2}",
        )

    def probed(self, name: str, run: PretrainingRun, probe_seed: int = 1) -> dict:
        res = probe(
            self.ws,
            name + (f"_p{probe_seed}" if probe_seed != 1 else ""),
            run.checkpoint,
            self.args.probe_updates,
            seed=probe_seed,
            threads=1,
        )
        return dict(
            updates=run.updates,
            cpu_min=round(run.cpu_s / 60, 2),
            masked_accuracy=run.masked_accuracy,
            cer=res["cer"],
            wer=res["wer"],
            layer_weights=res["layer_weights"],
        )

    def iteration1(self, item) -> dict:
        name, seed, probe_seed = item
        r = self.recipe(name, seed)
        return dict(
            candidate=name, seed=seed, probe_seed=probe_seed, **self.probed(f"{r.name}_it1", r.iteration1(), probe_seed)
        )

    def iteration2(self, name: str) -> dict:
        r = self.recipe(self.args.iteration2_from, 1, iteration2=name)
        it2 = r.iteration2(r.iteration1())
        return dict(
            candidate=name,
            base=self.args.iteration2_from,
            iteration1_cer=self.base_cer,
            layer=r.iteration2_layer,
            clusters=r.iteration2_clusters,
            **self.probed(r.iteration2_name, it2),
        )

    def run(self, candidates):
        """(iteration-1 rows, iteration-2 rows, the MFCC probe's CER)."""
        args = self.args
        runs = [(name, 1, 1) for name in candidates]
        if not args.no_replicates:
            runs += [("default", 2, 1), ("default", 1, 2)]  # a second pretraining seed; a second probe seed
        with ThreadPoolExecutor(args.jobs) as pool:
            self.costs = dict(zip(candidates, pool.map(self.cost, candidates)))
            mfcc = pool.submit(probe, self.ws, "mfcc", "mfcc", args.probe_updates, threads=1)
            # Distinct pretrainings first, then the probe-seed replicates of finished ones: two workers must not
            # train the same run folder. Iteration 1 before iteration 2, which starts from one of them.
            rows = list(pool.map(self.iteration1, [r for r in runs if r[2] == 1]))
            rows += list(pool.map(self.iteration1, [r for r in runs if r[2] != 1]))
            self.base_cer = next(r["cer"] for r in rows if run_key(r) == (args.iteration2_from, 1, 1))
            rows2 = list(pool.map(self.iteration2, args.iteration2_candidates))
            return rows, rows2, mfcc.result()["cer"]


def main(argv=None):
    args, earlier = parse_args(argv)
    t0 = time.time()
    sweep = Sweep(args)
    candidates = list(dict.fromkeys(["default", args.iteration2_from, *args.candidates]))
    rows, rows2, mfcc_cer = sweep.run(candidates)
    write_report(args, earlier, candidates, sweep.costs, rows, rows2, mfcc_cer, time.time() - t0)


def run_key(row):
    """What names an iteration-1 row: its candidate, pretraining seed and probe seed."""
    return row["candidate"], row["seed"], row["probe_seed"]


def merged(new_rows, old_rows, key):
    """This invocation's rows, then the earlier invocations' rows of what it did not run (marked ``earlier``)."""
    done = {key(r) for r in new_rows}
    return list(new_rows) + [dict(r, earlier=True) for r in old_rows if key(r) not in done]


def mark(r) -> str:
    return " *" if r.get("earlier") else ""


def accuracies(r) -> str:
    return ", ".join(f"{v:.3f}" for v in r["masked_accuracy"].values()) or "-"


def layer_weights(r) -> str:
    return " ".join(f"{w:.2f}" for w in r["layer_weights"])


def with_earlier(earlier: dict, rows, rows2, costs):
    """This invocation's rows and costs, then those of earlier invocations that it did not run."""
    earlier_default = next((r["cer"] for r in earlier.get("rows", []) if run_key(r) == ("default", 1, 1)), None)
    # Rows of records older than --iteration2-from all start from that record's own default run.
    earlier_rows2 = [
        dict(r, base=r.get("base", "default"), iteration1_cer=r.get("iteration1_cer", earlier_default))
        for r in earlier.get("iteration2_rows", [])
    ]
    rows = merged(rows, earlier.get("rows", []), run_key)
    rows2 = merged(rows2, earlier_rows2, lambda r: (r["base"], r["candidate"]))
    return rows, rows2, {**earlier.get("costs", {}), **costs}


def header(args, candidates, seconds, any_earlier: bool) -> list:
    lines = [
        "# Tuning the tiny recipe at a fixed CPU budget (CPU, real speech)",
        "",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}; {seconds / 60:.0f} min for this "
        "invocation (stages done before are reused).",
        "Command: `.venv/bin/python benchmarks/recipe_sweep.py --budget "
        f"{args.budget:g} --candidates "
        + " ".join(candidates)
        + " --iteration2-candidates "
        + " ".join(args.iteration2_candidates)
        + (f" --iteration2-from {args.iteration2_from}" if args.iteration2_from != "default" else "")
        + (" --no-replicates" if args.no_replicates else "")
        + f" --jobs {args.jobs}`",
    ]
    if any_earlier:
        lines.append(
            "Rows marked * were not run by this invocation: they are read back from the record of an earlier "
            "one (same script, budget and probe; its command and machine are in the notes)."
        )
    return lines + [""]


def iteration1_section(args, rows, costs, mfcc_cer):
    """(the section's lines, the replicates' spread: the margin a candidate has to beat the default by)."""
    main_rows = [r for r in rows if r["seed"] == 1 and r["probe_seed"] == 1]
    default = next((r["cer"] for r in main_rows if r["candidate"] == "default"), None)
    noise = {
        (f"pretraining seed {r['seed']}" if r["seed"] != 1 else f"probe seed {r['probe_seed']}")
        + (f" * (of a default run of {r['updates']} updates)" if r.get("earlier") else ""): r["cer"]
        for r in rows
        if (r["seed"], r["probe_seed"]) != (1, 1)
    }
    margin = max([abs(v - default) for v in noise.values()] + [1.0]) if default is not None else 1.0
    best = min(main_rows, key=lambda r: r["cer"])
    lines = [
        "## Iteration 1: optimisation, batch and masking",
        "",
        f"Each candidate pretrains fast_hubert iteration 1 (MFCC units, K={args.clusters}) for {args.budget:g} CPU-minutes "
        "of one thread, then is probed with fast-hubert-probe's defaults (frozen, weighted layer sum, BiLSTM letter "
        f"CTC, {args.probe_updates} updates; trained on so762_train, dev CER on so762_dev, the only selection data).",
        "",
        "| candidate | overrides | why | CPU-s per update | updates | CPU-min | masked acc | probe dev CER % | layer weights (0 = input) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in main_rows:
        overrides, why = CANDIDATES[r["candidate"]]
        lines.append(
            f"| {r['candidate']}{mark(r)} | {' '.join(f'`{o}`' for o in overrides) or '-'} | {why} | "
            f"{costs[r['candidate']]:.3f} | {r['updates']} | {r['cpu_min']:.2f} | {accuracies(r)} | {r['cer']:.1f} | "
            f"{layer_weights(r)} |"
        )
    lines += ["", f"Reference: the MFCC probe (the iteration-1 targets' features): {mfcc_cer:.1f} %.", ""]
    if noise:
        lines += [
            "Replicates of the default recipe (the noise a difference has to beat): "
            + ", ".join(f"{k} {v:.1f} %" for k, v in noise.items())
            + f" against {default:.1f} % (largest difference {margin:.1f} points).",
            "",
        ]
    if default is None or best["candidate"] == "default":
        verdict = "no candidate beats the default recipe"
    elif best["cer"] < default - margin:
        verdict = f"{best['candidate']} beats the default by more than the replicates' spread"
    else:
        verdict = f"{best['candidate']} is within the replicates' spread of the default"
    return lines + [f"Best: **{best['candidate']}** ({best['cer']:.1f} %): {verdict}.", ""], margin


def iteration2_section(rows2, margin: float) -> list:
    if not rows2:
        return []
    lines = [
        "## Iteration 2: which block, how many units",
        "",
        "Each candidate clusters block L of an iteration-1 model (seed 1; the column *from* names its candidate "
        "and its probe) into K units (FAISS k-means on 20 % of the frames) and pretrains a fresh fast_hubert on "
        "them with the same overrides for as many updates as that iteration 1; probed as above. Target d of the "
        "benchmark: iteration 2 below its iteration 1.",
        "",
        "| from (its iteration-1 CER) | candidate | block | units | why | updates | CPU-min | masked acc | "
        "probe dev CER % | vs iteration 1 | layer weights (0 = input) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows2, key=lambda r: (r["base"], r["layer"], r["clusters"])):
        it1 = r["iteration1_cer"]
        lines.append(
            f"| {r['base']} ({it1:.1f} %) | {r['candidate']}{mark(r)} | {r['layer']} | {r['clusters']} | "
            f"{ITERATION2_CANDIDATES[r['candidate']][2]} | {r['updates']} | {r['cpu_min']:.2f} | {accuracies(r)} | "
            f"{r['cer']:.1f} | {r['cer'] - it1:+.1f} | {layer_weights(r)} |"
        )
    best2 = min(rows2, key=lambda r: r["cer"] - r["iteration1_cer"])
    beats = best2["cer"] < best2["iteration1_cer"] - margin
    return lines + [
        "",
        f"Best against its iteration 1: **{best2['candidate']}** from {best2['base']} ({best2['cer']:.1f} % "
        f"against {best2['iteration1_cer']:.1f} %): "
        + (
            "below it by more than the replicates' spread."
            if beats
            else "not below it by more than the replicates' spread."
        ),
        "",
    ]


def write_report(args, earlier, candidates, costs, rows, rows2, mfcc_cer, seconds):
    """``earlier``: the record's JSON as main() read it before the runs (same budget: parse_args checked)."""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rows, rows2, costs = with_earlier(earlier, rows, rows2, costs)
    lines = header(args, candidates, seconds, any(r.get("earlier") for r in rows + rows2))
    section1, margin = iteration1_section(args, rows, costs, mfcc_cer)
    lines += section1 + iteration2_section(rows2, margin)
    notes = args.output.with_name(args.output.stem + "_notes.md")
    if notes.exists():
        lines += ["## Notes (written after the runs)", "", notes.read_text(encoding="utf-8").strip(), ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    args.output.with_suffix(".json").write_text(
        json.dumps(dict(costs=costs, rows=rows, iteration2_rows=rows2, mfcc=mfcc_cer, budget=args.budget), indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
