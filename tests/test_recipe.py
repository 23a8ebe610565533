"""HuBERT's two-iteration recipe (fast_hubert_plugin.recipes) end to end on the committed speech:
the demo (both iterations, the same fine-tuning from the pretrained and the never-pretrained model,
decoding, export; probes in its GPU budget), resumption after a killed stage, stock HuBERT through the
same recipe, and the benchmarks built on it."""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile

from fast_hubert_plugin.recipes.corpus import at_most_hours
from fast_hubert_plugin.recipes.runner import Stage, StageFailed, StageMismatch, run_cli
from fast_hubert_plugin.recipes.two_iterations import (
    ITERATION1_LABEL_RATE,
    SYSTEMS,
    Recipe,
    Workspace,
    pretrain,
)

from conftest import REPO, SPEECH_DIR

sys.path.insert(0, str(REPO / "examples"))
import demo_report  # noqa: E402  (the demo's report module, beside demo.py)

from speech_folder import load_speech  # noqa: E402  (the demo's speech folders)

# a short budget: the numbers live in the benchmark records, the tests check the plumbing and its outputs
DEMO_ARGS = [
    "--clusters",
    "8",
    "--pretrain-updates",
    "3",
    "--probe-updates",
    "4",
    "--probe-utterances",
    "20",
    "--finetune-updates",
    "3",
]


def run_demo(work: Path, *extra):
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "demo.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(work),
            *DEMO_ARGS,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )


def snapshot(folder: Path, to: Path) -> Path:
    """A copy of ``folder`` that later runs in it cannot change: text files copied (the demo rewrites its
    reports in place), the large binaries, which are only ever replaced whole, hard-linked."""

    def copy(src, dst):
        if src.endswith((".pt", ".safetensors", ".npy")):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    return Path(shutil.copytree(folder, to, copy_function=copy, symlinks=True))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(the demo's folder as the first run left it, its output, the folder later runs continue in).

    The rerun test changes the live folder; the first run's outputs are read from the snapshot, so the
    tests pass in any order."""
    # the GPU run's stages (recognizers and probes, two seeds, side by side) rehearsed on the CPU, tiny numbers
    work = tmp_path_factory.mktemp("demo") / "out"
    proc = run_demo(work, "--device", "cpu", "--budget", "cuda")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return snapshot(work, work.parent / "first_run"), proc, work


DEMO_UPSTREAMS = {
    "MFCC (39-dim, no pretraining)": "demo_MFCC",
    "fbank (80-dim, no pretraining)": "demo_fbank",
    "never pretrained": "demo_never_pretrained",
    "iteration 1": "demo_iteration_1",
    "iteration 2": "demo_iteration_2",
}
# the recognizers of the first table: the pretrained model and two seeds of the never-pretrained one
DEMO_RECOGNIZERS = {
    ("iteration 2 (3 + 3 pretraining updates)", 1): "demo",
    ("never pretrained (initial weights)", 1): "demo_never_pretrained",
    ("never pretrained (initial weights)", 2): "demo_never_pretrained_s2",
}


def scores_of(work: Path, tag: str) -> dict:
    return json.loads((work / f"{tag}_decode" / "scores.json").read_text())


def test_demo_first_table_is_the_same_fine_tuning_with_and_without_pretraining(demo_run):
    work, proc, live = demo_run
    summary = (work / "report" / "summary.md").read_text()
    assert len(summary.splitlines()) <= 45  # one screen; the rest is in details.md
    assert "DEBUG" not in proc.stdout + proc.stderr
    # the report's first table, row by row: dev CER, WER and empty transcripts of each recognizer
    first = summary.index("\n## ")
    assert summary[first:].startswith("\n## What pretraining bought: the same fine-tuning from each start")
    rows = summary[first:].split("\n\n")[1].splitlines()[2:]
    expected = []
    for (label, seed), tag in DEMO_RECOGNIZERS.items():
        sc = scores_of(work, tag)
        hyps = (work / f"{tag}_decode" / "hypo.word").read_text().splitlines()
        assert sc["utterances"] == 16 and sc["empty_hypotheses"] == sum(1 for h in hyps if not h.strip())
        expected.append(f"| {label} | {seed} | {sc['cer']:.1f} | {sc['wer']:.1f} | {sc['empty_hypotheses']} of 16 |")
    assert rows == expected
    # the same fine-tuning from both starts (updates, recipe, data); seed 1 of both is the same seed
    logs = {tag: (work / "runs" / f"{tag}_finetune" / "train.log").read_text() for tag in DEMO_RECOGNIZERS.values()}
    for tag, log in logs.items():
        assert "'max_update': 3" in log and f"'seed': {2 if tag.endswith('_s2') else 1}," in log, tag
    assert str(live / "runs" / "demo_init" / "checkpoints") in logs["demo_never_pretrained"]
    assert str(live / "runs" / "demo_it2" / "checkpoints") in logs["demo"]
    # the verdict under it is computed from those numbers
    recognizers = {
        "iteration 2": {1: {"scores": scores_of(work, "demo")}},
        "never pretrained": {s: {"scores": scores_of(work, t)} for (_, s), t in list(DEMO_RECOGNIZERS.items())[1:]},
    }
    verdict = demo_report.pretraining_gain(recognizers, "iteration 2")
    assert verdict and all(line in summary for line in verdict)
    results = json.loads((work / "report" / "results.json").read_text())
    assert results["finetuned"]["cer"] == scores_of(work, "demo")["cer"]
    assert [r["cer"] for r in results["never_pretrained"]] == [
        scores_of(work, "demo_never_pretrained")["cer"],
        scores_of(work, "demo_never_pretrained_s2")["cer"],
    ]
    # two examples of the pretrained recognizer, and its export
    assert summary.count("    REF: ") == 2 and summary.count("    HYP: ") == 2
    assert (work / "export" / "model.safetensors").is_file() and (work / "export" / "vocab.json").is_file()


def test_demo_gpu_budget_probes_every_upstream_with_two_seeds(demo_run):
    work, proc, _ = demo_run
    report = work / "report"
    summary = (report / "summary.md").read_text()
    # every upstream under the same probe, two seeds each: the mean and the seeds' range in the table
    probes = {p.name: json.loads((p / "probe.json").read_text()) for p in (work / "probes").iterdir()}
    assert set(probes) == {f"{name}{seed}" for name in DEMO_UPSTREAMS.values() for seed in ("", "_s2")}
    for result in probes.values():
        assert result["config"]["updates"] == 4 and result["dev"]["utterances"] == 16
        assert result["train"]["split"] == "probe_train" and result["train"]["utterances"] == 16  # every 3rd of 48
    assert {probes[f"demo_MFCC{s}"]["config"]["seed"] for s in ("", "_s2")} == {1, 2}
    for label, name in DEMO_UPSTREAMS.items():
        cers = [probes[name]["dev"]["cer"], probes[f"{name}_s2"]["dev"]["cer"]]
        row = f"| {label} | {statistics.mean(cers):.1f} ({min(cers):.1f}-{max(cers):.1f}) | "
        assert row in summary, row
    # the comparisons are computed from those numbers, against the noise the seeds showed
    findings = demo_report.findings(
        {label: {1: probes[n]["dev"], 2: probes[f"{n}_s2"]["dev"]} for label, n in DEMO_UPSTREAMS.items()},
        list(DEMO_UPSTREAMS)[:2],
        SimpleNamespace(pretrain_updates=(3, 3)),
    )
    assert all(line in summary for line in findings)
    recorded = demo_report.recorded_gpu()
    assert (recorded["machine"].split(",")[0] if recorded else "| pending |") in summary
    results = json.loads((report / "results.json").read_text())
    assert results["device"] == "cpu"
    assert results["probes"]["iteration 2"] == [
        probes["demo_iteration_2"]["dev"]["cer"],
        probes["demo_iteration_2_s2"]["dev"]["cer"],
    ]
    # every training ran where --device said
    assert "'cpu': True" in (work / "runs" / "demo_it1" / "train.log").read_text()
    # iteration 2 trained a new model on units of iteration 1's block 3, at its 25 Hz frame rate
    assert "== iteration-2 units: block 3 of demo_it1 -> k-means (8)" in proc.stdout
    it2_log = (work / "runs" / "demo_it2" / "train.log").read_text()
    assert "'label_rate': 25" in it2_log or "label_rate: 25" in it2_log or '"label_rate": 25' in it2_log
    labels = (work / "labels" / "demo_it2" / "train.km").read_text().splitlines()
    pretrain_rows = (work / "data" / "pretrain" / "train.tsv").read_text().splitlines()[1:]
    assert len(labels) == len(pretrain_rows)
    n_samples = int(pretrain_rows[0].split("\t")[1])
    assert abs(len(labels[0].split()) - n_samples / 16000 * 25) <= 2
    # the layer features were removed once the labels were written; the checkpoints remain
    assert not (work / "features" / "demo_it2").exists()
    assert (work / "runs" / "demo_it1" / "checkpoints" / "checkpoint_last.pt").is_file()
    timings = json.loads((report / "timings.json").read_text())
    assert {
        "prepare",
        "cmvn",
        "iteration1_units",
        "demo_it1",
        "demo_init",
        "demo_it2_units",
        "demo_it2",
        "demo_finetune",
        "demo_never_pretrained_finetune",
        "demo_never_pretrained_s2_finetune",
        "export",
    } <= set(timings)
    details = (report / "details.md").read_text()
    assert "| demo_finetune |" in details and "masked-unit accuracy block 2" in details
    assert "- never pretrained, seed 2: valid UER " in details
    assert (report / "training_curves.png").stat().st_size > 10_000


def test_demo_cpu_budget_drops_the_probes_and_redoes_only_a_removed_stage(demo_run):
    _, _, work = demo_run
    (work / ".done" / "demo_never_pretrained_s2_decode").unlink()  # as if killed while decoding
    # the CPU budget over the same work folder: the same recognizers, no probes
    proc = run_demo(work, "--device", "cpu")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("(done before: skipped)") >= 12
    assert "== Viterbi decoding of the dev set with demo_never_pretrained_s2_finetune\n" in proc.stdout  # redone
    assert "== probe " not in proc.stdout
    summary = (work / "report" / "summary.md").read_text()
    assert "| never pretrained (initial weights) | 2 | " in summary
    assert ("## The same probe" in summary) == bool(demo_report.recorded_gpu())
    assert json.loads((work / "report" / "results.json").read_text())["probes"] == {}
    # without fine-tuning, the pretrained model is exported instead
    proc = run_demo(work, "--device", "cpu", "--finetune-updates", "0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (work / "export_pretrained" / "model.safetensors").is_file()
    summary = (work / "report" / "summary.md").read_text()
    assert "## What pretraining bought" not in summary and "Not fine-tuned (--finetune-updates 0)" in summary


def recognizers_of(pretrained, never):
    return {
        "iteration 2": {1: {"scores": {"cer": pretrained}}},
        "never pretrained": {seed: {"scores": {"cer": c}} for seed, c in enumerate(never, 1)},
    }


def test_demo_pretraining_gain_says_only_what_the_numbers_show(monkeypatch):
    monkeypatch.setattr(demo_report, "RECORDED_FINETUNE_NOISE", 1.5)
    # two never-pretrained seeds 1.0 apart: the recorded 1.5 is the noise, and 4 points are beyond it
    (line,) = demo_report.pretraining_gain(recognizers_of(58.0, [61.5, 62.5]), "iteration 2")
    assert line == (
        "- iteration 2: dev CER 58.0 % against 62.0 % (mean of its seeds) from the initial weights, 4.0 points "
        "lower: beyond the fine-tuning noise (1.0 between its 2 seeds here; 1.5 recorded). Pretraining bought that."
    )
    # seeds 4 points apart: a 3-point gain is noise
    (line,) = demo_report.pretraining_gain(recognizers_of(58.0, [59.0, 63.0]), "iteration 2")
    assert line.endswith(
        "3.0 points apart: within the fine-tuning noise (4.0 between its 2 seeds here; 1.5 recorded), "
        "so this budget shows no gain."
    )
    # one seed: only the recorded noise; worse beyond it
    (line,) = demo_report.pretraining_gain(recognizers_of(62.0, [60.0]), "iteration 2")
    assert "against 60.0 % from the initial weights, 2.0 points higher: worse, beyond" in line
    assert "(one seed here; 1.5 recorded)" in line
    assert "nothing to compare" in demo_report.pretraining_gain(recognizers_of(58.0, []), "iteration 2")[0]
    # a never-pretrained seed that never left CTC's blank stage is the noise, and is said to be stuck
    gain, stuck = demo_report.pretraining_gain(recognizers_of(59.5, [100.0, 59.8]), "iteration 2")
    assert (
        "against 79.9 % (mean of its seeds) from the initial weights, 20.4 points apart: within the fine-tuning noise (40.2 between its 2 seeds here"
        in gain
    )
    assert stuck == (
        "- Still in CTC's all-blank stage (dev CER >= 95 %: (almost) every transcript empty): "
        "iteration 2 0 of 1 seeds, never pretrained 1 of 2 seeds."
    )


def test_demo_findings_say_only_what_the_numbers_show():
    def probes(**cers):
        return {label: {seed: {"cer": c} for seed, c in enumerate(cs, 1)} for label, cs in cers.items()}

    features = ["MFCC", "fbank"]
    budget = SimpleNamespace(pretrain_updates=(400, 400))
    # one seed: the noise is 1 point; models within it of MFCC have bought nothing the probe sees
    lines = demo_report.findings(
        probes(
            **{
                "MFCC": [57.0],
                "fbank": [68.0],
                "never pretrained": [62.0],
                "iteration 1": [57.5],
                "iteration 2": [60.0],
            }
        ),
        features,
        budget,
    )
    assert lines[0] == "- iteration 1 is 4.5 points below the never-pretrained model."
    assert lines[1] == "- iteration 2 is 2.5 points above iteration 1 (worse)."
    assert (
        lines[2]
        == "- the best model (iteration 1) and its best input (MFCC) are within the probe's noise (0.5 points apart)."
    )
    assert "has not yet bought" in lines[3]
    # two seeds 3 points apart: a 2-point gain is noise; a 5-point one is not
    lines = demo_report.findings(
        probes(
            **{
                "MFCC": [57.0, 60.0],
                "fbank": [68.0, 68.0],
                "never pretrained": [62.0, 62.0],
                "iteration 1": [53.0, 53.0],
                "iteration 2": [51.0, 51.0],
            }
        ),
        features,
        budget,
    )
    assert lines[1] == "- iteration 2 and iteration 1 are within the probe's noise (2.0 points apart)."
    assert lines[2] == "- the best model (iteration 2) is 7.5 points below its best input (MFCC)."
    assert lines[3] == "- So 400 updates per iteration bought features beyond the model's inputs."


def test_killed_training_stage_resumes_from_its_checkpoint(small_workspace):
    ws = small_workspace
    system = SYSTEMS["fast_hubert"]
    run = pretrain(
        ws.work / "runs",
        "resume",
        system,
        ws.pretrain_data,
        ws.iteration1_labels,
        ITERATION1_LABEL_RATE,
        4,
        progress=False,
        quiet=True,
    )
    assert run.updates == 4 and run.cpu_s > 0
    # as if killed after the stage's training but before its marker: the stage runs again and
    # fairseq continues from checkpoint_last.pt (4 updates done) instead of starting over
    (ws.work / "runs" / ".done" / "resume").unlink()
    again = pretrain(
        ws.work / "runs",
        "resume",
        system,
        ws.pretrain_data,
        ws.iteration1_labels,
        ITERATION1_LABEL_RATE,
        6,
        progress=False,
        quiet=True,
    )
    log = (ws.work / "runs" / "resume" / "train.log").read_text()
    assert "@ 4 updates)" in log  # fairseq's "Loaded checkpoint ... (epoch N @ 4 updates)"
    assert again.updates == 6


def test_stock_hubert_runs_through_the_same_recipe(small_workspace):
    ws = small_workspace
    recipe = Recipe(ws, SYSTEMS["hubert"], (1, 1), iteration2_clusters=4, iteration2_layer=2, threads=1, progress=False)
    it1, it2 = recipe.pretrain_both()
    assert it1.updates == 1 and it2.updates == 1 and "correct_m_0" in it1.masked_accuracy
    labels = (ws.work / "labels" / f"{recipe.name}_it2" / "train.km").read_text().splitlines()
    first = int((ws.pretrain_data / "train.tsv").read_text().splitlines()[1].split("\t")[1])
    assert abs(len(labels[0].split()) - first / 16000 * 50) <= 2  # stock HuBERT's 50 Hz frames


def test_stage_marker_is_written_only_on_success(tmp_path):
    with pytest.raises(RuntimeError):
        with Stage(tmp_path, "broken", quiet=True) as s:
            s.result = {"x": 1}
            raise RuntimeError("killed")
    assert not (tmp_path / ".done" / "broken").exists()
    with Stage(tmp_path, "ok", quiet=True) as s:
        s.result = {"x": 1}
    assert Stage(tmp_path, "ok", quiet=True).done and Stage(tmp_path, "ok", quiet=True).result == {"x": 1}


def test_stage_done_with_other_settings_is_refused_not_reused(tmp_path):
    with Stage(tmp_path, "pretrain", quiet=True, params={"updates": 400, "seed": 1}) as s:
        s.result = {"updates": 400}
    assert Stage(tmp_path, "pretrain", quiet=True, params={"updates": 400, "seed": 1}).done
    with pytest.raises(
        StageMismatch,
        match=r"was done with updates=400; this run asks for updates=300\. Fix: .*"
        r"delete .*pretrain",
    ):
        Stage(tmp_path, "pretrain", quiet=True, params={"updates": 300, "seed": 1})
    assert json.loads((tmp_path / ".done" / "pretrain").read_text())["result"] == {"updates": 400}  # untouched


def test_failed_cli_reports_command_and_log_end(tmp_path):
    with pytest.raises(StageFailed, match="(?s)fast-hubert-cmvn.*last lines of"):
        run_cli(
            [
                str(Path(sys.executable).parent / "fast-hubert-cmvn"),
                tmp_path / "missing.tsv",
                "--output",
                tmp_path / "x.npz",
            ],
            tmp_path / "log.txt",
        )


@pytest.fixture(scope="module")
def small_workspace(tmp_path_factory):
    corpus = load_speech(SPEECH_DIR)
    return Workspace(tmp_path_factory.mktemp("ws"), corpus, clusters=8, quiet=True).prepare().iteration1_units()


def test_at_most_hours_keeps_a_seeded_subset_in_order_within_the_budget():
    rows = load_speech(SPEECH_DIR).pretrain
    seconds = {r["path"]: soundfile.info(r["path"]).duration for r in rows}
    total = sum(seconds.values())
    assert at_most_hours(rows, total / 3600 + 1) == rows  # more than there is: every row
    hours = total / 3 / 3600
    subset = at_most_hours(rows, hours)
    assert 0 < len(subset) < len(rows) and sum(seconds[r["path"]] for r in subset) <= hours * 3600
    assert subset == [r for r in rows if r in subset]  # the corpus order is kept
    assert at_most_hours(rows, hours) == subset and at_most_hours(rows, hours, seed=1) != subset


def load_benchmark(name: str):
    """A benchmark script as a module (benchmarks/ on the path for its ``common``)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_budget_compares_the_same_fine_tuning_from_both_starts_per_split(tmp_path):
    work, out = tmp_path / "work", tmp_path / "demo_budget.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "demo_budget.py"), "--speech-dir", str(SPEECH_DIR)]
    cmd += ["--work-dir", str(work), "--splits", "2,0,2", "2,1,2", "--seeds", "1", "2", "--clusters", "8"]
    proc = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = out.read_text()
    assert str(SPEECH_DIR) not in record and str(work) not in record
    # both splits share iteration 1 and the never-pretrained fine-tunes (the same updates and seeds)
    runs = sorted(p.name for p in (work / "runs").iterdir() if not p.name.startswith("."))
    assert runs == [
        "fast_hubert_ils_2_1_it2",
        "fast_hubert_ils_2_1_it2_ft2_s1_finetune",
        "fast_hubert_ils_2_1_it2_ft2_s2_finetune",
        "fast_hubert_ils_2_it1",
        "fast_hubert_ils_2_it1_ft2_s1_finetune",
        "fast_hubert_ils_2_it1_ft2_s2_finetune",
        "init",
        "never_pretrained_ft2_s1_finetune",
        "never_pretrained_ft2_s2_finetune",
    ]
    log = (work / "runs" / "fast_hubert_ils_2_1_it2_ft2_s2_finetune" / "train.log").read_text()
    assert "'max_update': 2" in log and "'seed': 2," in log
    # the summary rows are the decoded CERs: their means, the difference and the seeds' spread
    demo_budget = load_benchmark("demo_budget")
    cer = {
        tag: [json.loads((work / f"{tag}_ft2_s{s}_decode" / "scores.json").read_text())["cer"] for s in (1, 2)]
        for tag in ("fast_hubert_ils_2_it1", "fast_hubert_ils_2_1_it2", "never_pretrained")
    }
    for split, tag in (("2,0,2", "fast_hubert_ils_2_it1"), ("2,1,2", "fast_hubert_ils_2_1_it2")):
        ours, never = statistics.mean(cer[tag]), statistics.mean(cer["never_pretrained"])
        spread = max(max(c) - min(c) for c in (cer[tag], cer["never_pretrained"]))
        beyond = "yes" if never - ours > spread else "no"
        stuck = [sum(c >= 95 for c in cer[t]) for t in (tag, "never_pretrained")]
        row = f"| {split} | {ours:.1f} | {never:.1f} | {never - ours:+.1f} | {spread:.1f} | {beyond} | "
        row += f"{stuck[0]} of 2; {stuck[1]} of 2 |"
        assert row in record, row
    assert "| iteration 1 (2 updates) | 2 | " in record and "| iteration 2 (2 + 1 updates) | 1 | " in record
    assert record.count("| never pretrained | 1 | ") == 2  # one table per split, the same run in both
    # a second invocation finds every run done
    again = subprocess.run([*cmd, "--output", str(out)], capture_output=True, text=True, timeout=600)
    stages = [line for line in again.stdout.splitlines() if line.startswith("== ")]
    assert again.returncode == 0 and len(stages) == 20 and all(s.endswith("(done before: skipped)") for s in stages)
    assert demo_budget.Split.parse("600,0,500") == (600, 0, 500)


def test_demo_budget_verdicts_and_split_errors():
    demo_budget = load_benchmark("demo_budget")

    def results(pretrained, never):
        return {
            "p": {s: {"scores": {"cer": c}} for s, c in enumerate(pretrained, 1)},
            demo_budget.NEVER: {s: {"scores": {"cer": c}} for s, c in enumerate(never, 1)},
        }

    s = demo_budget.summary(results([58.0, 59.0], [61.0, 63.0]), "p")
    assert (s["pretrained"], s["never"], s["gain"], s["spread"], s["beyond_noise"]) == (58.5, 62.0, 3.5, 2.0, True)
    assert demo_budget.verdict(s) == "pretraining is 3.5 points better, beyond the seeds' spread (2.0)"
    s = demo_budget.summary(results([58.0, 62.0], [61.0, 63.0]), "p")
    assert not s["beyond_noise"] and "within the seeds' spread (4.0): noise" in demo_budget.verdict(s)
    # ranges that do not overlap are not enough: one never-pretrained seed stuck at 100 % is the noise
    s = demo_budget.summary(results([59.6, 59.4], [100.0, 59.7]), "p")
    assert not s["beyond_noise"] and s["spread"] == pytest.approx(40.3)
    assert s["blank"] == {"p": "0 of 2", demo_budget.NEVER: "1 of 2"}
    s = demo_budget.summary(results([63.0, 64.0], [61.0, 62.0]), "p")
    assert demo_budget.verdict(s) == "pretraining is 2.0 points worse (seeds' spread 1.0)"
    for bad in ("600,600", "600,x,100", "0,600,100", "600,600,0"):
        with pytest.raises(argparse.ArgumentTypeError, match="U1"):
            demo_budget.Split.parse(bad)
