"""Build the test fixture set under ``tests/data/speech`` from the full speech folder.

Copies, byte for byte, the first rows of each corpus manifest (48 speechocean762 training
utterances, 16 speechocean762 test-split utterances, 8 LibriSpeech excerpts) with their FLAC
files, and writes the three manifests with the same columns (``id path speaker num_samples text``).
Usage (from the repository root):

    python tests/data/build_fixtures.py SOURCE_SPEECH_DIR [--output tests/data/speech]
"""
import argparse
import csv
import shutil
from pathlib import Path

SUBSETS = {  # manifest -> how many of its first rows the fixture keeps
    "so762_train.tsv": 48,
    "so762_dev.tsv": 16,
    "librispeech_train_clean_100.tsv": 8,
}
MAX_BYTES = 8 * 1024 * 1024


def build(source: Path, output: Path) -> int:
    total = 0
    output.mkdir(parents=True, exist_ok=True)
    for name, count in SUBSETS.items():
        with open(source / name, encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            columns, rows = reader.fieldnames, list(reader)[:count]
        for r in rows:
            dst = output / r["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / r["path"], dst)
            total += dst.stat().st_size
        with open(output / name, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, columns, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    if total > MAX_BYTES:
        raise SystemExit(f"fixture audio is {total} bytes, over the {MAX_BYTES}-byte budget: keep fewer rows")
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="speech folder with the three manifests and their audio")
    p.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "speech")
    args = p.parse_args()
    print(f"{build(args.source, args.output)} bytes of audio written to {args.output}")


if __name__ == "__main__":
    main()
