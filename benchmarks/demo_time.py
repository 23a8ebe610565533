"""How long `make demo` takes, and what its report says, on the machine it runs on.

Two ways:

- as a user runs it (default): the demo from this checkout with its own choice of speech (the
  project's ``../shared/speech`` beside the repository; or ``--speech-dir``), nothing else given:

      .venv/bin/python benchmarks/demo_time.py --output benchmarks/results/demo_time_cpu.md

- ``--stand-in``, the Mini LibriSpeech path where the corpus cannot be downloaded: a stand-in for the
  download cache is built from a transcribed speech folder (``--speech-dir``, so762 manifests):
  ``LibriSpeech/train-clean-5`` holds the so762 training utterances repeated to about 5 hours
  (train-clean-5's size), ``LibriSpeech/dev-clean-2`` the so762 dev utterances, in LibriSpeech's
  layout with ``*.trans.txt`` (audio symlinked); the demo then finds only that cache. Run it from a
  clone with no ``../shared`` beside it (otherwise the demo would take that folder). The download
  itself (458 MB) is not timed.

Writes the wall-clock, the demo's stage timings, the machine and its load before the run, and the
demo's own one-screen report into a Markdown record.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, RESULTS, machine, speech_folder


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
    p.add_argument(
        "--speech-dir",
        type=Path,
        help="the demo's --speech-dir (default: its own choice); with --stand-in the so762 folder to build it from",
    )
    p.add_argument("--stand-in", action="store_true", help="time the Mini LibriSpeech path on a stand-in cache")
    p.add_argument("--work", type=Path, default=REPO / "demo_time_work")
    p.add_argument("--train-hours", type=float, default=5.0, help="with --stand-in: train-clean-5's size")
    p.add_argument("--output", type=Path, help="default: results/demo_time[_minilibrispeech]_cpu.md")
    args = p.parse_args(argv)
    if args.stand_in and not args.speech_dir:
        p.error("--stand-in needs --speech-dir (the transcribed so762 folder it is built from)")
    args.output = args.output or RESULTS / ("demo_time_minilibrispeech_cpu.md" if args.stand_in else "demo_time_cpu.md")
    return args


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


def demo_command(args) -> list:
    """examples/demo.py as `make demo` runs it; with the stand-in, only its cache to find."""
    data = ["--cache-dir", str(args.work / "cache")] if args.stand_in else []
    if args.speech_dir and not args.stand_in:
        data = ["--speech-dir", str(args.speech_dir)]
    return [sys.executable, str(REPO / "examples" / "demo.py"), *data, "--work-dir", str(args.work / "demo_output")]


def run_demo(cmd: list) -> float:
    """The demo with this checkout's package first on the path; its minutes."""
    env = {k: v for k, v in os.environ.items() if k != "FAST_HUBERT_SPEECH_DIR"}
    # this checkout's package first: an environment installed (editable) from another clone would
    # otherwise run that clone's code and find the speech folder beside it
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    start = time.time()
    subprocess.run(cmd, check=True, env=env)
    return (time.time() - start) / 60


def demo_summary(args) -> str:
    """The demo's own report (refused unless a --stand-in run took the stand-in); it names no folder of
    this machine."""
    work = args.work
    summary = (work / "demo_output" / "report" / "summary.md").read_text()
    if args.stand_in and f"Data: {(work / 'cache').resolve()}" not in summary:
        sys.exit("the demo did not take the Mini LibriSpeech stand-in (see its report's Data line): not recorded")
    shared = speech_folder().SHARED_SPEECH
    summary = summary.replace(str(work.resolve()), "WORK").replace(str(shared.resolve()), "../shared/speech")
    summary = summary.replace(str(REPO.parent.resolve()), "..")
    return summary.replace(str(REPO.resolve()), ".")


def record(args, stand_in, load_before, minutes: float) -> list:
    timings = json.loads((args.work / "demo_output" / "report" / "timings.json").read_text())
    if stand_in:
        copies, train, train_s, dev, dev_s = stand_in
        title, command = "on a Mini LibriSpeech-sized stand-in", "--stand-in --speech-dir SPEECH_DIR"
        data = [
            f"- stand-in train-clean-5: so762_train x {copies} = {train_s / 3600:.2f} h "
            f"({copies * len(train)} utterances); dev-clean-2: so762_dev, {dev_s / 60:.1f} min "
            f"({len(dev)} utterances; the demo uses at most 300); a clone with no ../shared beside it",
        ]
    else:
        title, command = "as a user runs it", "--speech-dir SPEECH_DIR" if args.speech_dir else ""
        data = ["- data: the demo's own choice (its report's Data line); threads: the demo's (its budget)"]
    return [
        f"# `make demo` {title} (CPU)",
        "",
        f"- machine: {machine(threads=None)}; load average before the run {tuple(round(x, 2) for x in load_before)}",
        f"- command: `{f'python benchmarks/demo_time.py {command}'.strip()}` (from the repository checkout, after make setup)",
        *data,
        f"- demo wall-clock: **{minutes:.1f} min**" + (" (download excluded)" if stand_in else ""),
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in timings.items()],
        "",
        "## The demo's own report",
        "",
        demo_summary(args),
    ]


def main(argv=None):
    args = parse_args(argv)
    stand_in = None
    if args.stand_in:
        shared, so762 = speech_folder().SHARED_SPEECH, speech_folder().LAYOUTS["so762"]
        if (shared / so762.train).is_file():
            sys.exit(f"{shared} exists, so the demo would use it: run this from a clone with no ../shared beside it")
        stand_in = build_stand_in(args)
    load_before = os.getloadavg()
    minutes = run_demo(demo_command(args))
    lines = record(args, stand_in, load_before, minutes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"demo took {minutes:.1f} min; record: {args.output}")


if __name__ == "__main__":
    main()
