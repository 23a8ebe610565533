"""A copy of a speech folder small enough to carry to an offline GPU machine: its audio as Ogg/Opus.

    python tools/offline_gpu/pack_speech.py SPEECH_DIR DEST [--level 0.95] [--workers 2]

Every manifest of SPEECH_DIR (``*.tsv`` whose header holds ``path`` and ``num_samples``, paths relative to
the folder: the speech-folder format of benchmarks/README.md) is written to DEST with each row's audio
re-encoded by soundfile (libsndfile) as Ogg/Opus at the same sample rate, ``.flac``/``.wav`` renamed
``.ogg``; every other column is kept. Each file's decoded length is checked against ``num_samples``, so
the manifests stay true. ``--level`` is libsndfile's Opus compression level (0 best quality, 1 smallest):
0.95 codes speech at about 20 kbit/s (25 with the container: the committed test speech, 303 s, packs into
0.93 MB), so the project's 2.6 h (163 MB of FLAC) should take about 29 MB, which fits a 64 MiB transfer beside
the checkout (7 MB) and the bundle of ``make_bundle.sh`` (18 MB). Opus is lossy: every model and
baseline of a record made from the copy sees the same decoded audio, and the record names its audio's
format. Resumable: audio already written is kept (each file is written atomically), the manifests last.
"""

import argparse
import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple

import soundfile as sf
from tqdm import tqdm

from fast_hubert_plugin.utils.atomic import atomic_path, atomic_write_text
from fast_hubert_plugin.utils.errors import DataError


def manifests(speech: Path) -> Dict[Path, List[dict]]:
    """The speech-folder manifests of ``speech`` and their rows."""
    out = {}
    for tsv in sorted(speech.glob("*.tsv")):
        with open(tsv, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows and {"path", "num_samples"} <= rows[0].keys():
            out[tsv] = rows
    if not out:
        raise DataError(
            speech,
            "holds no manifest (*.tsv with 'path' and 'num_samples' columns)",
            "point at a speech folder (benchmarks/README.md)",
        )
    return out


def packed_path(path: str) -> str:
    return str(Path(path).with_suffix(".ogg"))


class Job(NamedTuple):
    src: Path
    dst: Path
    num_samples: int
    level: float
    manifest: Path  # the manifest and the line that name the file, for errors
    line: int


def encode(job: Job) -> int:
    """One file to Ogg/Opus (skipped when already there); returns its size in bytes."""
    if not job.dst.exists():
        audio, rate = sf.read(job.src, dtype="int16")
        if len(audio) != job.num_samples:
            raise DataError(
                job.manifest,
                f"{job.src.name} has {len(audio)} samples, the manifest says {job.num_samples}",
                "correct num_samples",
                job.line,
            )
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(job.dst) as tmp:
            sf.write(tmp, audio, rate, format="OGG", subtype="OPUS", compression_level=job.level)
            decoded = sf.info(tmp).frames
            if decoded != job.num_samples:  # the copied manifest would not hold
                raise DataError(
                    job.manifest,
                    f"{job.src.name} decodes from Opus to {decoded} samples, not {job.num_samples}",
                    "try another --level",
                    job.line,
                )
    return job.dst.stat().st_size


def pack(speech: Path, dest: Path, level: float = 0.95, workers: int = 2) -> int:
    """Write DEST's audio and manifests; returns the bytes of audio written."""
    tables = manifests(speech)
    jobs = {}  # by path: a file listed by two manifests is written once
    for tsv, rows in tables.items():
        for line, r in enumerate(rows, start=2):
            jobs[r["path"]] = Job(
                speech / r["path"], dest / packed_path(r["path"]), int(r["num_samples"]), level, tsv, line
            )
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            sizes = list(tqdm(pool.map(encode, jobs.values(), chunksize=8), total=len(jobs), desc="opus", unit="file"))
    else:
        sizes = [encode(job) for job in tqdm(jobs.values(), desc="opus", unit="file")]
    for tsv, rows in tables.items():
        fields = list(rows[0].keys())
        lines = ["\t".join(fields)] + ["\t".join(dict(r, path=packed_path(r["path"]))[k] for k in fields) for r in rows]
        atomic_write_text(dest / tsv.name, "\n".join(lines) + "\n")
    return sum(sizes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("speech_dir", type=Path, help="a speech folder (manifests *.tsv with path and num_samples)")
    p.add_argument("dest", type=Path, help="the copy's folder (git-ignored when it lives in the checkout)")
    p.add_argument("--level", type=float, default=0.95, help="Opus compression level, 0..1 (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="encoding processes (default: %(default)s)")
    args = p.parse_args(argv)
    size = pack(args.speech_dir, args.dest, args.level, args.workers)
    print(f"{args.dest}: {size / 2**20:.1f} MiB of Ogg/Opus audio")


if __name__ == "__main__":
    main()
