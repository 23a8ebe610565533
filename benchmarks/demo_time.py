"""How long `make demo` takes on a Mini LibriSpeech-sized corpus, where the corpus cannot be downloaded.

Builds a stand-in for the Mini LibriSpeech cache folder from a transcribed speech folder (the
project's ``../shared/speech``): ``LibriSpeech/train-clean-5`` holds the so762 training utterances
repeated until about 5 hours (train-clean-5's size), ``LibriSpeech/dev-clean-2`` the so762 dev
utterances, in LibriSpeech's layout with ``*.trans.txt`` (audio symlinked, not copied). Then it
runs the demo from the repository with ``--cache-dir`` pointing there and no other speech folder,
so the demo takes its Mini LibriSpeech path: manifests from the extracted folders, then every
stage. Writes the demo's stage timings and the machine into a Markdown record.

    .venv/bin/python benchmarks/demo_time.py --speech-dir SPEECH_DIR --output benchmarks/results/demo_time_cpu.md

Run it from a clone with no ``../shared`` beside it (otherwise the demo would take that folder).

The download itself (458 MB) is not part of the timing.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, RESULTS, speech_folder


def read_tsv(path: Path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_part(rows, speech: Path, part_dir: Path, copies: int) -> float:
    """LibriSpeech layout: SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac + SPEAKER-CHAPTER.trans.txt."""
    seconds, trans = 0.0, {}
    for c in range(copies):
        for i, r in enumerate(rows):
            speaker, chapter = str(1000 * (c + 1) + int(r["speaker"].split("-")[-1])), "1"
            utt = f"{speaker}-{chapter}-{i:04d}"
            audio = part_dir / speaker / chapter / f"{utt}.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            if not audio.exists():
                audio.symlink_to((speech / r["path"]).resolve())
            trans.setdefault(audio.parent / f"{speaker}-{chapter}.trans.txt", []).append(f"{utt} {r['text']}\n")
            seconds += int(r["num_samples"]) / 16000
    for path, lines in trans.items():
        path.write_text("".join(lines), encoding="utf-8")
    return seconds


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", type=Path, required=True, help="transcribed speech folder (so762 manifests)")
    p.add_argument("--work", type=Path, default=REPO / "demo_time_work")
    p.add_argument("--train-hours", type=float, default=5.0)
    p.add_argument("--output", type=Path, default=RESULTS / "demo_time_cpu.md")
    return p.parse_args(argv)


def build_stand_in(args):
    """train-clean-5 (so762_train repeated to --train-hours) and dev-clean-2 (so762_dev) in the download
    cache; returns (copies, train rows, train seconds, dev rows, dev seconds)."""
    train, dev = read_tsv(args.speech_dir / "so762_train.tsv"), read_tsv(args.speech_dir / "so762_dev.tsv")
    per_copy = sum(int(r["num_samples"]) for r in train) / 16000
    copies = max(1, round(args.train_hours * 3600 / per_copy))
    root = args.work / "cache" / "mini_librispeech" / "LibriSpeech"
    train_s = write_part(train, args.speech_dir, root / "train-clean-5", copies)
    dev_s = write_part(dev, args.speech_dir, root / "dev-clean-2", 1)
    return copies, train, train_s, dev, dev_s


def run_demo(work: Path) -> float:
    """The demo with this checkout's package first on the path and only the stand-in to find; its minutes."""
    env = {k: v for k, v in os.environ.items() if k != "FAST_HUBERT_SPEECH_DIR"}
    # this checkout's package first: an environment installed (editable) from another clone would
    # otherwise run that clone's code and find the speech folder beside it
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    # the stand-in must be found as the download cache: no speech folder may be given or found
    cmd = [
        sys.executable,
        str(REPO / "examples" / "demo.py"),
        "--cache-dir",
        str(work / "cache"),
        "--work-dir",
        str(work / "demo_output"),
    ]
    start = time.time()
    subprocess.run(cmd, check=True, env=env)
    return (time.time() - start) / 60


def demo_summary(work: Path) -> str:
    """The demo's own report, refused unless it took the stand-in; it names no folder of this machine."""
    summary = (work / "demo_output" / "report" / "summary.md").read_text()
    if f"Data: {(work / 'cache').resolve()}" not in summary:
        sys.exit("the demo did not take the Mini LibriSpeech stand-in (see its report's Data line): not recorded")
    return summary.replace(str(work.resolve()), "WORK")


def record(args, stand_in, load_before, minutes: float) -> list:
    copies, train, train_s, dev, dev_s = stand_in
    timings = json.loads((args.work / "demo_output" / "report" / "timings.json").read_text())
    return [
        "# `make demo` on a Mini LibriSpeech-sized stand-in (CPU)",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average before the run {load_before}",
        "- command: `python benchmarks/demo_time.py --speech-dir SPEECH_DIR` (a clone with no ../shared beside it)",
        f"- stand-in train-clean-5: so762_train x {copies} = {train_s / 3600:.2f} h "
        f"({copies * len(train)} utterances); dev-clean-2: so762_dev, {dev_s / 60:.1f} min "
        f"({len(dev)} utterances; the demo uses at most 300)",
        f"- demo wall-clock: **{minutes:.1f} min** (download excluded)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in timings.items()],
        "",
        "## The demo's own report",
        "",
        demo_summary(args.work),
    ]


def main(argv=None):
    args = parse_args(argv)
    shared, so762 = speech_folder().SHARED_SPEECH, speech_folder().LAYOUTS["so762"]
    if (shared / so762.train).is_file():
        sys.exit(f"{shared} exists, so the demo would use it: run this from a clone with no ../shared beside it")
    stand_in = build_stand_in(args)
    load_before = os.getloadavg()
    minutes = run_demo(args.work)
    lines = record(args, stand_in, load_before, minutes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"demo took {minutes:.1f} min; record: {args.output}")


if __name__ == "__main__":
    main()
