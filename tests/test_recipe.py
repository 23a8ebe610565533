"""HuBERT's two-iteration recipe (fast_hubert_plugin.recipes) end to end on the committed speech:
the demo (both iterations, side-by-side probes, fine-tuning, decoding, export), resumption after a
killed stage, stock HuBERT through the same recipe, and the benchmarks built on it."""

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
    # the GPU run's stages (two probe seeds, three side by side) rehearsed on the CPU with tiny numbers
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


def test_demo_runs_both_iterations_and_reports_side_by_side(demo_run):
    work, proc, _ = demo_run
    report = work / "report"
    summary = (report / "summary.md").read_text()
    assert len(summary.splitlines()) <= 45  # one screen; the rest is in details.md
    assert "DEBUG" not in proc.stdout + proc.stderr
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
    # the recognizer: its scores, its empty transcripts counted, two examples, its export
    scores = json.loads((work / "demo_decode" / "scores.json").read_text())
    assert scores["utterances"] == 16
    hyps = (work / "demo_decode" / "hypo.word").read_text().splitlines()
    empty = sum(1 for h in hyps if not h.strip())
    assert f"dev CER **{scores['cer']:.1f} %**, WER {scores['wer']:.1f} % on 16 utterances; {empty} empty" in summary
    assert summary.count("    REF: ") == 2 and summary.count("    HYP: ") == 2
    assert (work / "export" / "model.safetensors").is_file() and (work / "export" / "vocab.json").is_file()
    results = json.loads((report / "results.json").read_text())
    assert results["device"] == "cpu" and results["finetuned"]["cer"] == scores["cer"]
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
        "demo_it2_units",
        "demo_it2",
        "demo_finetune",
        "export",
    } <= set(timings)
    details = (report / "details.md").read_text()
    assert "| demo_finetune |" in details and "masked-unit accuracy block 2" in details
    assert (report / "training_curves.png").stat().st_size > 10_000


def test_demo_rerun_skips_every_stage_and_redoes_a_removed_one(demo_run):
    _, _, work = demo_run
    (work / ".done" / "probe_demo_iteration_2").unlink()  # as if killed during that probe
    # the CPU budget (one probe seed) over the same work folder, without fine-tuning
    proc = run_demo(work, "--device", "cpu", "--finetune-updates", "0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("(done before: skipped)") >= 8
    assert "== probe demo_iteration_2 (4 updates)\n" in proc.stdout
    assert (work / "export_pretrained" / "model.safetensors").is_file()
    summary = (work / "report" / "summary.md").read_text()
    assert "## The recognizer" not in summary and "Not fine-tuned (--finetune-updates 0)" in summary
    assert "| iteration 2 | " in summary and " (" not in summary.split("| iteration 2 | ")[1].split("|")[0]


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
