"""The speed benchmarks and the GPU script run on the CPU with tiny shapes (their numbers live in
benchmarks/results and come from the machines named there; here: that every part runs and writes
its record)."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import BIN, REPO, SPEECH_DIR

BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))
import e2e_throughput  # noqa: E402
import train_step_speed  # noqa: E402


def run(args, timeout=900, **kw):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, **kw)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def table_rows(text: str, first: str):
    return [line for line in text.splitlines() if line.startswith(f"| {first}")]


@pytest.mark.parametrize(
    "model, config",
    [("FAST_MODEL", "fast_hubert_base_librispeech"), ("STOCK_MODEL", "hubert_base_librispeech")],
)
def test_the_step_benchmark_builds_the_shipped_base_models(model, config):
    """train_step_speed.py (and official_equivalence.py, through benchmarks/common.py) writes the Base model
    sections out, as it must not import the plugin beside the official code: every value it sets is the
    shipped config's (label_rate, ??? there, is the labels' 50 Hz)."""
    from omegaconf import OmegaConf

    shipped = OmegaConf.load(REPO / "config" / "pretraining" / f"{config}.yaml").model
    written = dict(getattr(train_step_speed, model))
    assert written.pop("label_rate") == 50 and OmegaConf.is_missing(shipped, "label_rate")
    assert {k: v for k, v in written.items() if shipped.get(k) != v} == {}, config
    assert len(written) >= 10


def test_train_step_speed_times_both_models_with_the_fbank_inside(tmp_path):
    out = tmp_path / "step.md"
    run(
        [
            sys.executable,
            str(BENCH / "train_step_speed.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--shapes",
            "1x1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--flops",
            "--peak-tflops",
            "0.1",
            "--sync-check",
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    assert "fast_hubert's Kaldi fbank is computed on the device inside its step" in text
    timed, flops = text.split("## FLOPs")
    names = [row.split("|")[1].strip() for row in timed.splitlines() if re.match(r"\| (stock|fast)", row)]
    assert names == ["stock", "fast", "fast_ils", "stock +torch_adamw", "fast fairseq-adam", "fast cudnn-posconv"]
    for row in table_rows(timed, "fast "):  # every row timed: a positive median, a ratio to stock, an MFU
        cells = [c.strip() for c in row.split("|")]
        assert float(cells[3]) > 0 and cells[7].endswith("x") and cells[12].endswith(")") and "%" in cells[12]
    per_second = {}
    for row in table_rows(flops, "1x1s"):  # counted = analytic; fast_hubert needs about a third of stock's
        cells = [c.strip() for c in row.split("|")]
        assert abs(float(cells[5]) - 1) < 0.01, row
        per_second[cells[2]] = float(cells[6])
    assert list(per_second) == ["stock", "fast", "fast_ils"] and 0.2 < per_second["fast"] / per_second["stock"] < 0.5
    assert len(re.findall(r"\| not checked \(CPU", text)) == 3  # the sync check ran each main system's step


def test_every_system_drops_the_same_blocks_at_a_given_repeat(monkeypatch):
    """What the record says of layerdrop: fairseq's encoder draws it from numpy, the plugin's from torch; the
    benchmark lets the plugin draw from numpy too and reseeds numpy right before every system's layers."""
    from fast_hubert_plugin.models import layer_encoder

    # the benchmark replaces the plugin's draw for its whole process: restored after this test
    monkeypatch.setattr(layer_encoder, "layerdrop_draw", layer_encoder.layerdrop_draw)
    dictionary = train_step_speed.unit_dictionary()
    systems = [train_step_speed.stock_system(dictionary), train_step_speed.fast_system(dictionary, "fast", "")]
    batch = train_step_speed.make_batch(SPEECH_DIR, "librispeech_train_clean_100.tsv", 1, 1.0, 0, dictionary)
    ran = {s.name: [] for s in systems}
    for s in systems:
        s.model.train()
        s.model.encoder.layerdrop = 0.5  # drops about half the blocks: a pattern to compare
        train_step_speed.seed_layerdrop(s)
        for i, layer in enumerate(s.model.encoder.layers):
            layer.register_forward_pre_hook(lambda m, inputs, i=i, name=s.name: ran[name].append(i))
    patterns = []
    for repeat in range(3):
        for s in systems:
            ran[s.name].clear()
            s.layerdrop_seed = 1000 + repeat
            np.random.seed(2000 + repeat + len(s.name))  # the systems' other draws differ
            torch.manual_seed(3000 + repeat + len(s.name))
            with torch.no_grad():
                s.criterion(s.model, s.make_sample(batch))
        assert ran["stock"] == ran["fast"], ran
        patterns.append(tuple(ran["stock"]))
    assert len(set(patterns)) > 1 and all(0 < len(p) < 12 for p in patterns), patterns


def test_e2e_throughput_and_precision_runs_rehearse_on_the_cpu(tmp_path):
    out = tmp_path / "e2e.md"
    run(
        [
            sys.executable,
            str(BENCH / "e2e_throughput.py"),
            "--tiny",
            "--speech-dir",
            str(SPEECH_DIR),
            "--work-dir",
            str(tmp_path / "work"),
            "--updates",
            "6",
            "--skip",
            "2",
            "--log-interval",
            "2",
            "--repeat",
            "3",
            "--precision-updates",
            "4",
            "--peak-tflops",
            "0.05",
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    rows = {row.split("|")[1].strip(): row for row in text.splitlines() if row.startswith("| ")}
    for name in ("stock", "fast", "fast fairseq-adam"):
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[3] == "0" and float(cells[5].replace(",", "")) > 0, rows[name]
        rate, hours = float(cells[5].replace(",", "")), float(cells[9].replace(",", ""))
        assert hours == pytest.approx(400_000 * 2_800 / rate / 3600, rel=0.01)  # the iteration at that rate
        assert float(cells[10]) > 0 and cells[11].endswith("%")  # FLOPs per audio-second and MFU
    for name in ("pretrain common.bf16=true", "fine-tune common.bf16=true", "pretrain common.bf16=true + ILS"):
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[2] == "0" and cells[3] != "-", rows[name]  # ran, and logged finite losses


def test_e2e_throughput_times_intervals_from_ups_not_whole_second_wall():
    # fairseq rounds `wall` to whole seconds: three records in one second once divided by zero
    records = [
        {"num_updates": "2", "wall": "3", "ups": "9.5", "bsz": "5"},
        {"num_updates": "4", "wall": "3", "ups": "4.0", "bsz": "5"},
        {"num_updates": "6", "wall": "3", "ups": "2.0", "bsz": "3"},
    ]
    audio_s, ups, bsz, updates = e2e_throughput.throughput(records, skip=2, crop_s=10.0)
    assert updates == 4 and bsz == 4.0
    assert ups == 4 / (2 / 4.0 + 2 / 2.0)  # the first record's interval lies before the skip
    assert audio_s == 4 * 4.0 * 10.0 / 1.5
    assert e2e_throughput.throughput(records[:1], skip=2, crop_s=10.0) is None


def test_loader_and_cpu_speed_benchmarks_write_their_records(tmp_path):
    other = tmp_path / "other" / "fast_hubert_plugin"
    shutil.copytree(REPO / "fast_hubert_plugin", other, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "loader.md"
    run(
        [
            sys.executable,
            str(BENCH / "loader_throughput.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--workers",
            "1",
            "--max-tokens",
            "20000",
            "--batches",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--other",
            str(other),
            "--other-label",
            "a copy",
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    rows = [row.split("|") for row in table_rows(text, "") if not row.startswith("| variant")]
    rates = {cells[1].strip(): float(cells[3].replace(",", "")) for cells in rows}
    assert set(rates) == {"batch-reads", "item-reads", "other: a copy", "decode-only"}, rates
    assert min(rates.values()) > 0 and "200.0 s batches" in text
    out = tmp_path / "cpu.md"
    run(
        [
            sys.executable,
            str(BENCH / "cpu_pretraining_speed.py"),
            "--other",
            str(other),
            "--other-label",
            "a copy",
            "--updates",
            "12",
            "--skip",
            "2",
            "--repeats",
            "1",
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    assert len(table_rows(text, "this checkout")) == 1 and len(table_rows(text, "a copy")) == 1


def test_gpu_script_rehearses_its_parts_on_the_cpu(tmp_path):
    """benchmarks/gpu_records.sh in its CPU mode (tiny shapes): the script's own plumbing, part by part."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python3").chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}", PARTS="peak,loader,profile")
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu_records.sh"), str(tmp_path / "out"), str(SPEECH_DIR), "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0 and "profile: exit 0" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    assert "Self CPU time total" in (tmp_path / "out" / "profile_fast.txt").read_text()
    # the measured peak reaches the other parts (their MFU), and the loader part wrote its record
    peak = re.search(r"^peak: ([0-9.]+) TFLOP/s$", proc.stdout, re.M)
    assert peak and float(peak.group(1)) > 0 and "| batch-reads | 1 |" in proc.stdout, proc.stdout
