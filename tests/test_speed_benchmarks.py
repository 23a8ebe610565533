"""The speed benchmarks and the GPU script run on the CPU with tiny shapes (their numbers live in
benchmarks/results and come from the machines named there; here: that every part runs and writes
its record)."""

import os
import re
import shutil
import subprocess
import sys

from conftest import BIN, REPO, SPEECH_DIR

BENCH = REPO / "benchmarks"


def run(args, timeout=900, **kw):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, **kw)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def table_rows(text: str, first: str):
    return [line for line in text.splitlines() if line.startswith(f"| {first}")]


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
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    assert "fast_hubert's Kaldi fbank is computed on the device inside its step" in text
    names = [row.split("|")[1].strip() for row in text.splitlines() if re.match(r"\| (stock|fast)", row)]
    assert names == ["stock", "fast", "fast_ils", "stock +torch_adamw", "fast fairseq-adam", "fast cudnn-posconv"]
    for row in table_rows(text, "fast "):  # every row timed: a positive median and a ratio to stock
        cells = [c.strip() for c in row.split("|")]
        assert float(cells[3]) > 0 and cells[7].endswith("x")


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
            "--output",
            str(out),
        ]
    )
    text = out.read_text()
    rows = {row.split("|")[1].strip(): row for row in text.splitlines() if row.startswith("| ")}
    for name in ("stock", "fast", "fast fairseq-adam"):
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[3] == "0" and float(cells[5].replace(",", "")) > 0, rows[name]
    for name in ("pretrain common.bf16=true", "fine-tune common.bf16=true", "pretrain common.bf16=true + ILS"):
        cells = [c.strip() for c in rows[name].split("|")]
        assert cells[2] == "0" and cells[3] != "-", rows[name]  # ran, and logged finite losses


def test_loader_and_cpu_speed_benchmarks_write_their_records(tmp_path):
    out = tmp_path / "loader.md"
    run(
        [
            sys.executable,
            str(BENCH / "loader_throughput.py"),
            "--speech-dir",
            str(SPEECH_DIR),
            "--workers",
            "1",
            "--batches",
            "3",
            "--repeats",
            "1",
            "--output",
            str(out),
        ]
    )
    (row,) = table_rows(out.read_text(), "1 ")
    assert float(row.split("|")[2].replace(",", "")) > 0
    other = tmp_path / "other" / "fast_hubert_plugin"
    shutil.copytree(REPO / "fast_hubert_plugin", other, ignore=shutil.ignore_patterns("__pycache__"))
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
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}", PARTS="profile")
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
