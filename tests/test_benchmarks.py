"""The quality benchmarks run end to end on the committed speech at a tiny budget (their numbers live
in benchmarks/results; here: that every stage runs, the budget arithmetic, and what the record says)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SPEECH_DIR

sys.path.insert(0, str(REPO / "benchmarks"))
import label_alignment  # noqa: E402
import learning_controls  # noqa: E402
import quality_vs_compute  # noqa: E402
import quality_vs_gpu_time  # noqa: E402

import common  # noqa: E402


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qvc")
    out = tmp / "record.md"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "quality_vs_compute.py"),
        "--speech-dir",
        str(SPEECH_DIR),
        "--work-dir",
        str(tmp / "work"),
        "--output",
        str(out),
        "--systems",
        "fast_hubert",
        "--budgets",
        "0.05",
        "--seeds",
        "1",
        "--probe-updates",
        "3",
        "--clusters",
        "8",
        "--calibration-updates",
        "1",
        "11",
        "--overrides",
        "model.mask_prob=0.5",
        "--recipe-name",
        "m05",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, out


def test_quality_vs_compute_record_plot_and_budget(quality_run):
    tmp, out = quality_run
    record = out.read_text()
    assert record.startswith("# Representation quality vs pretraining compute")
    assert "Command: `.venv/bin/python benchmarks/quality_vs_compute.py --budgets 0.05 --seeds 1" in record
    for baseline in ("| fbank |", "| mfcc |", "| fast_hubert, never pretrained |"):
        assert baseline in record
    assert "Not assessed" in record  # targets need stock HuBERT, which this run left out
    assert "with `model.mask_prob=0.5` for fast_hubert and fast_hubert + ILS" in record
    for iteration in (1, 2):  # the overrides reach both iterations' training
        overrides = tmp / "work" / "runs" / f"fast_hubert_m05_b0.05_s1_it{iteration}" / ".hydra" / "overrides.yaml"
        assert "model.mask_prob=0.5" in overrides.read_text()
    assert (out.parent / "quality_vs_compute.png").stat().st_size > 10_000
    data = json.loads(out.with_suffix(".json").read_text())
    cost = data["costs"]["fast_hubert"]
    assert 0.01 < cost < 30
    # the budget is split between the two iterations and turned into updates by the measured cost
    per_iteration = max(1, round(0.05 * 60 / 2 / cost))
    rows = data["rows"]
    assert {r["iteration"] for r in rows} == {1, 2}  # the largest budget probes both iterations
    for r in rows:
        assert r["updates"] == [per_iteration, per_iteration]
        assert r["cpu_min"] > 0 and 0 <= r["cer"] <= 100 and math.isclose(sum(r["layer_weights"]), 1, rel_tol=1e-5)
        assert len(r["layer_weights"]) == 5  # input + 4 blocks
        assert f"| {r['cer']:.1f} |" in record


def test_recipe_sweep_trains_each_candidate_for_the_budget_and_names_runs_as_the_benchmark(quality_run):
    import recipe_sweep

    tmp, _ = quality_run
    out = tmp / "sweep.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "recipe_sweep.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp / "work"),
            "--output",
            str(out),
            "--budget",
            "0.025",
            "--candidates",
            "batch18s",
            "--iteration2-candidates",
            "L4_K100",
            "--probe-updates",
            "3",
            "--clusters",
            "8",
            "--calibration-updates",
            "1",
            "11",
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record, data = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    assert "| batch18s | `dataset.max_tokens=1800` |" in record and "Best: **" in record
    assert "pretraining seed 2" in record and "probe seed 2" in record  # the replicates of the default
    assert {(r["candidate"], r["seed"], r["probe_seed"]) for r in data["rows"]} == {
        ("default", 1, 1),
        ("batch18s", 1, 1),
        ("default", 2, 1),
        ("default", 1, 2),
    }  # default always runs
    for r in data["rows"]:
        assert r["updates"] == max(1, round(0.025 * 60 / data["costs"][r["candidate"]]))
    # each candidate's iteration 1 carries the name quality_vs_compute.py gives it at twice the budget
    runs = tmp / "work" / "runs"
    run = runs / (quality_vs_compute.run_tag("fast_hubert", "batch18s", 0.05, 1) + "_it1")
    assert "dataset.max_tokens=1800" in (run / ".hydra" / "overrides.yaml").read_text()
    assert (runs / "fast_hubert_b0.05_s2_it1").is_dir()
    assert set(recipe_sweep.CANDIDATES) >= {"default", "batch18s"}
    # the iteration-2 candidate: block 4 of default's iteration 1, 100 units, as many updates, named apart
    (it2,) = data["iteration2_rows"]
    assert (it2["candidate"], it2["layer"], it2["clusters"]) == ("L4_K100", 4, 100)
    assert it2["updates"] == data["rows"][0]["updates"] and 0 <= it2["cer"]
    assert "| L4_K100 | 4 | 100 |" in record and "## Iteration 2" in record
    units = json.loads((tmp / "work" / ".done" / "fast_hubert_b0.05_s1_L4_K100_it2_units").read_text())
    assert units["params"]["layer"] == 4 and units["params"]["checkpoint"].endswith(
        "fast_hubert_b0.05_s1_it1/checkpoints/checkpoint_last.pt"
    )
    assert (runs / "fast_hubert_b0.05_s1_L4_K100_it2").is_dir()
    assert len(set((tmp / "work" / "labels" / "fast_hubert_b0.05_s1_L4_K100_it2" / "train.km").read_text().split())) > 8

    # a second invocation that runs no iteration-2 candidate keeps the first one's rows, marked as earlier
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "recipe_sweep.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp / "work"),
            "--output",
            str(out),
            "--budget",
            "0.025",
            "--candidates",
            "default",
            "--iteration2-candidates",
            "--no-replicates",
            "--probe-updates",
            "3",
            "--clusters",
            "8",
            "--calibration-updates",
            "1",
            "11",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record, again = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    assert "| L4_K100 * | 4 | 100 |" in record and "| batch18s * |" in record and "Rows marked * " in record
    assert again["iteration2_rows"][0]["cer"] == it2["cer"] and again["iteration2_rows"][0]["earlier"]
    default = next(r for r in again["rows"] if r["candidate"] == "default" and r["seed"] == 1 and r["probe_seed"] == 1)
    assert not default.get("earlier")
    assert again["iteration2_rows"][0]["iteration1_cer"] == it2["iteration1_cer"] == data["rows"][0]["cer"]

    # iteration 2 from another candidate: its iteration 1 is clustered, its overrides kept, its probe compared
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "recipe_sweep.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp / "work"),
            "--output",
            str(out),
            "--budget",
            "0.025",
            "--candidates",
            "batch18s",
            "--iteration2-candidates",
            "L4_K100",
            "--iteration2-from",
            "batch18s",
            "--no-replicates",
            "--probe-updates",
            "3",
            "--clusters",
            "8",
            "--calibration-updates",
            "1",
            "11",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record, third = out.read_text(), json.loads(out.with_suffix(".json").read_text())
    batch = next(r for r in third["rows"] if r["candidate"] == "batch18s")
    assert {(r["base"], r["candidate"]) for r in third["iteration2_rows"]} == {
        ("default", "L4_K100"),
        ("batch18s", "L4_K100"),
    }
    from_batch = next(r for r in third["iteration2_rows"] if r["base"] == "batch18s")
    assert from_batch["iteration1_cer"] == batch["cer"] and from_batch["updates"] == batch["updates"]
    it2_run = runs / (quality_vs_compute.run_tag("fast_hubert", "batch18s", 0.05, 1) + "_L4_K100_it2")
    assert "dataset.max_tokens=1800" in (it2_run / ".hydra" / "overrides.yaml").read_text()
    assert f"| batch18s ({batch['cer']:.1f} %) | L4_K100 | 4 | 100 |" in record
    assert "--iteration2-from batch18s" in record

    # another budget into the same record is refused before anything runs, and the record is kept
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "recipe_sweep.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp / "work"),
            "--output",
            str(out),
            "--budget",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "budget 0.025, not 0.05" in proc.stderr and "--output" in proc.stderr
    assert out.read_text() == record and json.loads(out.with_suffix(".json").read_text()) == third


def test_label_alignment_runs_and_reports_a_verdict(quality_run):
    tmp, _ = quality_run
    out = tmp / "alignment.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "label_alignment.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp / "work"),
            "--output",
            str(out),
            "--shifts",
            "-1",
            "0",
            "1",
            "--updates",
            "2",
            "--clusters",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = out.read_text()
    assert "| +0 (+0) |" in record and "| -1 (-20) |" in record and "Verdict: " in record


def test_shifted_units_keep_the_length_and_move_in_time():
    line = "1 2 3 4 5"
    assert label_alignment.shift_units(line, 0) == line
    assert label_alignment.shift_units(line, 2) == "3 4 5 5 5"  # frame t gets the unit of t + 2
    assert label_alignment.shift_units(line, -2) == "1 1 1 2 3"


def test_shuffled_units_give_each_utterance_another_ones_units_at_its_own_length():
    lines = ["1 1 2 2", "3 4 5", "6 6 6 7 7 7"]
    out = learning_controls.shuffled_units(lines, seed=0)
    assert [len(x.split()) for x in out] == [4, 3, 6]
    for own, got in zip(lines, out):
        assert not set(got.split()) & set(own.split())  # never its own units (a derangement)
    assert sorted(out) == sorted(learning_controls.shuffled_units(lines, seed=0))  # drawn from the seed
    assert learning_controls.shuffled_units(["1 2", "3 4"]) == ["3 4", "1 2"]
    assert learning_controls.shuffled_units(["1 2 3 4", "5 6"]) == ["5 5 6 6", "1 3"]  # stretched, shrunk


def test_unigram_baseline_is_the_cross_entropy_of_the_training_frequencies(tmp_path):
    # model frames take every second 50 Hz label: train "0 x 0 x 1 x" -> units 0, 0, 1
    (tmp_path / "train.km").write_text("0 9 0 9 1 9\n")
    (tmp_path / "valid.km").write_text("1 9 0 9\n")
    counts = np.bincount([0, 0, 1], minlength=learning_controls.CLUSTERS) + 1.0  # add-one
    p = counts / counts.sum()
    got = learning_controls.unigram_baseline(tmp_path)
    assert got["ce_bits"] == pytest.approx(-(np.log2(p[1]) + np.log2(p[0])) / 2)
    assert got["majority_acc"] == 0.5  # unit 0 is right on one of the two held-out frames


def test_learning_controls_record_reuses_finished_runs(pretraining_data, tmp_path):
    """The record from runs a work folder already holds (each run's result.json): no training here."""
    work = tmp_path / "work"
    shutil.copytree(pretraining_data, work / "data")
    results = {"true": (4.4, 0.12), "shuffled": (5.4, 0.04)}
    for seed in (1, 2):
        for kind, (loss, acc) in results.items():
            (work / "runs" / f"{kind}_s{seed}").mkdir(parents=True)
            result = {"loss": loss + seed / 10, "acc": acc, "cpu_s": 40.0}
            (work / "runs" / f"{kind}_s{seed}" / "result.json").write_text(json.dumps(result))
    (work / "runs" / "finetuned_s1").mkdir()
    tuned = {"cer": 6.7, "wer": 32.6, "sentences_right": 4, "cpu_s": 90.0}
    (work / "runs" / "finetuned_s1" / "result.json").write_text(json.dumps(tuned))
    out = tmp_path / "record.md"
    learning_controls.main(
        ["--seeds", "1", "2", "--finetune-seeds", "1", "--work-dir", str(work), "--output", str(out)]
    )
    record = out.read_text()
    assert "Command: `python benchmarks/learning_controls.py --seeds 1 2 --finetune-seeds 1 --output " in record
    assert str(work) not in record  # the work folder changes no number
    assert "Load average (1, 5, 15 min) at the start: " in record
    assert "| 1 | 4.500 | 0.1200 | 5.500 | 0.0400 | 40, 40 |" in record
    assert "- shuffled CE - true CE: 1.000 (1.000-1.000) bits" in record
    assert "- true accuracy - max(shuffled accuracy, majority accuracy): " in record
    assert "| 1 | 6.7 | 32.6 | 4 | 90 |" in record and "Training-set CER, mean (min-max): 6.700" in record


def test_targets_compare_the_right_cells():
    rows = [
        dict(system=s, budget=b, seed=1, iteration=i, cer=c)
        for s, b, i, c in [
            ("fast_hubert", 1.5, 2, 50.0),
            ("fast_hubert", 7.5, 2, 40.0),
            ("fast_hubert", 7.5, 1, 45.0),
            ("hubert", 1.5, 2, 90.0),
            ("hubert", 7.5, 2, 60.0),
        ]
    ]
    text = quality_vs_compute.targets(rows, {"fbank": 70.0, "mfcc": 55.0}, [1.5, 7.5], 7.5)
    assert "a. fast_hubert (7.5 CPU-min, iteration 2) 40.0 % vs the best input features 55.0 %: **met**" in text
    assert "b. fast_hubert beats stock HuBERT at every budget: **met**" in text
    assert (
        "c. fast_hubert at 1.5 CPU-min (1/5 of the largest) 50.0 % vs stock HuBERT at 7.5 CPU-min 60.0 %: **met**"
        in text
    )
    assert "iteration 2 vs its iteration 1 (7.5 CPU-min): 40.0 vs 45.0 %: **met**" in text
    worse = [dict(r, cer=r["cer"] + 30) if r["system"] == "fast_hubert" else r for r in rows]
    text = quality_vs_compute.targets(worse, {"fbank": 70.0, "mfcc": 55.0}, [1.5, 7.5], 7.5)
    assert text.count("**not met**") == 3 and "d. fast_hubert, iteration 2" in text


def test_stock_control_trains_both_systems_here_and_resumes(tmp_path):
    import stock_control

    out, work = tmp_path / "control.md", tmp_path / "ws"
    argv = [
        "cpu",
        "--updates",
        "2",
        "--threads",
        "1",
        "--clusters",
        "8",
        "--speech-dir",
        str(SPEECH_DIR),
        "--work-dir",
        str(work),
        "--probe-updates",
        "2",
        "--output",
        str(out),
    ]
    stock_control.main(argv)
    record = out.read_text()
    assert "Command: `.venv/bin/python benchmarks/stock_control.py cpu --updates 2 --seed 1 --threads 1" in record
    for title in ("fast_hubert", "stock HuBERT (waveform CNN, cosine loss)"):
        row = next(line for line in record.splitlines() if line.startswith(f"| {title} |"))
        updates, accuracy, cpu_min, cer = (c.strip() for c in row.strip("|").split("|")[1:])
        assert updates == "2" and ("acc_m_L4" in accuracy or "correct_m_0" in accuracy)
        assert float(cpu_min) > 0 and 0 <= float(cer) <= 100
    for baseline in ("fbank", "mfcc", "fast_hubert, never pretrained"):
        assert f"- {baseline} probe: " in record
    checkpoints = sorted((work / "control").glob("control_*_u2_s1/checkpoints/checkpoint_last.pt"))
    assert len(checkpoints) == 2
    stamps = [c.stat().st_mtime_ns for c in checkpoints]
    out.unlink()
    stock_control.main(argv)  # every stage is done: the record is rewritten from the markers, nothing retrained
    assert out.read_text() == record and [c.stat().st_mtime_ns for c in checkpoints] == stamps


def test_runs_that_decide_the_targets_come_first():
    budgets = [1.5, 4, 7.5]
    runs = [
        (s, b, seed)
        for s in ("hubert", "fast_hubert", "fast_hubert_ils")
        for b in budgets
        for seed in ((1, 2) if b == 7.5 else (1,))
    ]
    order = sorted(runs, key=lambda r: quality_vs_compute.priority(*r, budgets))
    assert order[:6] == [
        ("hubert", 7.5, 1),
        ("fast_hubert", 7.5, 1),
        ("fast_hubert", 1.5, 1),
        ("fast_hubert_ils", 7.5, 1),
        ("fast_hubert", 7.5, 2),
        ("fast_hubert_ils", 7.5, 2),
    ]
    assert sorted(order) == sorted(runs)


def test_loss_ranges_records_the_curve_of_each_seed(quality_run):
    tmp, _ = quality_run
    out = tmp / "loss_ranges.md"
    cmd = [sys.executable, str(REPO / "benchmarks" / "loss_ranges.py"), "--speech-dir", str(SPEECH_DIR)]
    cmd += ["--work-dir", str(tmp / "work"), "--output", str(out), "--updates", "20", "--seeds", "1", "2"]
    proc = subprocess.run(cmd + ["--clusters", "8"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = out.read_text()
    assert "K=8 at 50 Hz (chance level log2(8) = 3.00 bits)" in record and "seeds 1, 2" in record
    rows = [line.split(" | ") for line in record.splitlines() if line.startswith(("| 10 |", "| 20 |", "| held out"))]
    assert [r[0] for r in rows] == ["| 10", "| 20", "| held out, after 20"]
    for row in rows:  # loss in bits, then two accuracies; a range when the seeds differ
        loss, *accs = [[float(v) for v in cell.strip(" |").split("-")] for cell in row[1:]]
        assert all(0 < v < 40 for v in loss) and all(0 <= v <= 1 for acc in accs for v in acc)


def test_loss_ranges_table_gives_each_cell_the_range_over_seeds():
    import loss_ranges

    runs = [
        {
            "curve": {10: {"loss": 9.5, "acc_m_L2": 0.1, "acc_m_L4": 0.2}},
            "valid": dict(loss=5.0, acc_m_L2=0.3, acc_m_L4=0.4),
        },
        {
            "curve": {10: {"loss": 9.0, "acc_m_L2": 0.1, "acc_m_L4": 0.25}},
            "valid": dict(loss=5.5, acc_m_L2=0.3, acc_m_L4=0.5),
        },
    ]
    assert loss_ranges.table(runs, 10)[2:] == [
        "| 10 | 9.000-9.500 | 0.100 | 0.200-0.250 |",
        "| held out, after 10 | 5.000-5.500 | 0.300 | 0.400-0.500 |",
    ]


def test_quality_at_equal_gpu_time_rehearses_on_the_cpu(tmp_path):
    """benchmarks/quality_vs_gpu_time.py in its CPU mode (tiny model and budget): calibration, both systems' two
    iterations from their own blocks, every upstream probed once per probe seed (2 here, to keep it short; the
    GPU record's 3 are its preset's), the export check, and a record that brings back no checkpoint."""
    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, str(REPO / "benchmarks" / "quality_vs_gpu_time.py"), str(out), str(SPEECH_DIR), "cpu"]
    proc = subprocess.run(
        cmd + ["--work-dir", str(work), "--probe-seeds", "2"], capture_output=True, text=True, timeout=2400
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = ["export_gpu_check_cpu.md", "quality_vs_gpu_time_cpu.json", "quality_vs_gpu_time_cpu.md"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert "# Exported fast_hubert on cpu (dry run)" in (out / names[0]).read_text()
    data = json.loads((out / names[1]).read_text())
    record = (out / names[2]).read_text()
    assert data["preset"]["budget"] == 0.04 and set(data["costs"]) == {"fast_hubert", "hubert"}
    for system, cost in data["costs"].items():
        updates = max(1, round(0.04 * 60 / 2 / cost))  # half the budget per iteration
        assert data["updates"][system] == updates
        it1, it2 = data["runs"][system]
        assert it1["updates"] == it2["updates"] == updates
        run = work / "runs" / it2["name"]
        # iteration 2 learns the units of block 1 of this system's own iteration 1
        units = json.loads((work / ".done" / f"{run.name}_units").read_text())["params"]
        assert Path(units["checkpoint"]).parents[1].name == it1["name"] and units["layer"] == 1
        overrides = (run / ".hydra" / "overrides.yaml").read_text()  # the size reaches both systems
        assert "model.encoder_layers=2" in overrides and "model.encoder_embed_dim=64" in overrides
        size_rate = 16000 if system == "hubert" else 100
        assert f"dataset.max_tokens={8 * size_rate}" in overrides
    upstreams = {p["upstream"] for p in data["probes"]}
    assert len(upstreams) == 7  # 2 systems x 2 iterations, fbank, MFCC, the initial weights
    for name in upstreams:
        cers = [p["cer"] for p in data["probes"] if p["upstream"] == name]
        assert sorted(p["seed"] for p in data["probes"] if p["upstream"] == name) == [1, 2]
        assert all(0 <= c <= 150 for c in cers)  # CER counts insertions too
        assert f"{sum(cers) / 2:.1f} ({min(cers):.1f}-{max(cers):.1f})" in record
    for line in ("| fbank |", "| mfcc |", "| fast_hubert, never pretrained |", "b. fast_hubert below stock HuBERT"):
        assert line in record
    assert "Budget: **0.04 GPU-minutes of pretraining per system** (here: CPU minutes" in record
    assert quality_vs_gpu_time.PRESETS["cuda"].probe_seeds >= 3  # the record's mean and spread


def test_calibration_times_an_update_by_the_clock_it_is_given(monkeypatch):
    """seconds_per_update: (long run - short run) / their update difference, in CPU or wall-clock seconds, and
    a clear stop when start-up noise hides the updates."""
    from types import SimpleNamespace

    from fast_hubert_plugin.recipes import two_iterations

    runs = {1: (30.0, 6.0), 61: (36.0, 7.2)}  # updates -> (wall, CPU) seconds

    def pretrain(work, name, system, data, labels, rate, updates, **kwargs):
        wall, cpu = runs[updates]
        return two_iterations.PretrainingRun("ckpt", updates, wall, cpu, "log")

    monkeypatch.setattr(two_iterations, "pretrain", pretrain)
    ws = SimpleNamespace(work=Path("work"), pretrain_data=Path("data"), iteration1_labels=Path("it1"), device="cuda")
    system = two_iterations.SYSTEMS["fast_hubert"]
    assert common.seconds_per_update(ws, system, (1, 61), clock="wall") == pytest.approx(0.1)
    assert common.seconds_per_update(ws, system, (1, 61), clock="cpu") == pytest.approx(0.02)
    runs[61] = (29.0, 7.2)  # the longer run was faster: no cost can be read
    with pytest.raises(SystemExit, match="could not measure the cost of an update"):
        common.seconds_per_update(ws, system, (1, 61), clock="wall")
