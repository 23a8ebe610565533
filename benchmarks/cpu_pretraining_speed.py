"""Pretraining speed on CPUs: the tiny config (tests, demo) with this checkout's plugin against another
checkout's, e.g. the one before the fbank moved from the data loader into the model.

    git worktree add /tmp/before 8708dee
    python benchmarks/cpu_pretraining_speed.py --other /tmp/before/fast_hubert_plugin \\
        --output benchmarks/results/cpu_pretraining_speed.md

Each run is ``fairseq-hydra-train`` with the package's ``fast_hubert_tiny_cpu.yaml`` as shipped (36 s
batches, 6 s crops, one loader process) for ``--updates`` updates on ``--speech-dir`` (a speech folder;
default the speech committed under tests/data: every manifest's utterances of at least 2 s), random
100-unit labels. The runs of the two plugins alternate; updates per second are fairseq's own ``ups`` of
the train_inner records after ``--skip`` updates (start-up excluded). The other plugin is copied under
another package name, so that this checkout's installed package cannot shadow it.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.recipes.runner import parse_log_records
from fast_hubert_plugin.utils.machine import cpu_model_name

from common import REPO, reproduce, speech_rows, write_random_unit_data


def prepare(speech: Path, work: Path) -> Path:
    """Every utterance of at least 2 s of the folder's manifests, random 100-unit labels, dict, CMVN."""
    rows = speech_rows(speech, sorted(p.name for p in Path(speech).glob("*.tsv")), 2.0)
    return write_random_unit_data(work, speech, {"train": rows, "valid": rows[:4]}, 100, cmvn_split="train")


def updates_per_second(user_dir: Path, data: Path, run_dir: Path, updates: int, skip: int) -> float:
    cmd = [
        "fairseq-hydra-train",
        "--config-dir",
        str(config_dir("pretraining")),
        "--config-name",
        "fast_hubert_tiny_cpu",
        f"hydra.run.dir={run_dir}",
        f"common.user_dir={user_dir}",
        f"task.data={data}",
        f"task.label_dir={data}",
        "model.label_rate=50",
        f"optimization.max_update={updates}",
        "common.log_interval=5",
        "checkpoint.no_save=true",
        "dataset.validate_interval=100000",
        "dataset.validate_interval_updates=0",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
    records = [r for r in parse_log_records(proc.stdout + proc.stderr) if int(r["num_updates"]) >= skip]
    if proc.returncode != 0 or len(records) < 2:
        raise SystemExit(f"{user_dir}: run failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")
    # fairseq's own rate per log interval (its `wall` clock is rounded to whole seconds)
    return statistics.mean(float(r["ups"]) for r in records[1:])


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", type=Path, default=REPO / "tests" / "data" / "speech")
    p.add_argument("--other", type=Path, required=True, help="the fast_hubert_plugin folder of another checkout")
    p.add_argument("--other-label", default=None, help="what the other checkout is, for the report")
    p.add_argument("--updates", type=int, default=60)
    p.add_argument("--skip", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def measure(args, work: Path, data: Path) -> dict:
    """Each plugin's updates per second, the runs alternating (the other plugin as a copy: module docstring)."""
    other = work / "fast_hubert_plugin_other"
    shutil.copytree(args.other, other, ignore=shutil.ignore_patterns("__pycache__"))
    plugins = {"this checkout": REPO / "fast_hubert_plugin", args.other_label or f"other ({args.other.name})": other}
    rates = {name: [] for name in plugins}
    for rep in range(args.repeats):
        for name, user_dir in plugins.items():
            rates[name].append(
                updates_per_second(user_dir, data, work / f"run{rep}_{user_dir.name}", args.updates, args.skip)
            )
            print(f"repeat {rep + 1} {name}: {rates[name][-1]:.3f} updates/s", flush=True)
    return rates


def record(args, argv, rates: dict) -> str:
    out = [
        "# CPU pretraining speed, tiny config: this checkout's plugin against another",
        "",
        f"Reproduce: `{reproduce('cpu_pretraining_speed.py', argv)}`",
        "",
        f"- CPU: {cpu_model_name()}, {os.cpu_count()} cores, OMP_NUM_THREADS=1 per run; load average after "
        f"{os.getloadavg()[0]:.2f}; Python {platform.python_version()}",
        f"- {args.updates} updates per run, updates/s from update {args.skip} on; {args.repeats} alternating repeats",
        "",
        "| plugin | updates/s (median) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name, values in rates.items():
        med = statistics.median(values)
        out.append(f"| {name} | {med:.3f} | {min(values):.3f} | {max(values):.3f} |")
    out.append("")
    return "\n".join(out)


def main(argv=None):
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cpu_speed_"))
    rates = measure(args, work, prepare(args.speech_dir, work))
    text = record(args, argv, rates)
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
