"""A speech folder as the recipes read it: pretraining audio, CTC training rows and dev rows.

A folder with one of the caller's ``Layout``s (transcribed manifests) splits by its manifests; any
other folder is every .flac/.wav below it, with an optional transcripts TSV for the CTC rows. Which
folder to read, and which layouts it may have, is the caller's choice.
"""

import csv
import random
from pathlib import Path
from typing import Iterable, List, NamedTuple, Optional

from ..features.audio import audio_num_samples

SAMPLE_RATE = 16000


class Layout(NamedTuple):
    """Transcribed manifests of a corpus folder: CTC training, dev, and audio for pretraining only."""

    train: str
    dev: str
    pretrain_only: tuple = ()
    max_dev: Optional[int] = None


class Corpus(NamedTuple):
    """Rows are dicts with an absolute ``path`` and a ``text`` (empty when untranscribed)."""

    pretrain: List[dict]
    train: List[dict]
    dev: List[dict]


def _read(tsv: Path, root: Path) -> List[dict]:
    with open(tsv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["path"] = str((root / r["path"]).resolve())
        r["text"] = r.get("text") or ""
    return rows


def load_corpus(
    speech: Path,
    layouts: Iterable[Layout] = (),
    transcripts: Optional[Path] = None,
    dev_fraction: float = 0.15,
) -> Corpus:
    """Split a folder into pretraining audio, CTC training rows and dev rows.

    A folder holding the manifests of one of ``layouts`` is split by them. Any other folder: every
    .flac/.wav below it is pretraining audio; ``transcripts`` (TSV with ``path`` relative to the
    folder and ``text``) gives the CTC rows, whose last ``dev_fraction`` become the dev set.
    """
    if transcripts is None:
        for layout in layouts:
            if (speech / layout.train).is_file() and (speech / layout.dev).is_file():
                train, dev = _read(speech / layout.train, speech), _read(speech / layout.dev, speech)
                extra = [r for name in layout.pretrain_only for r in _read(speech / name, speech)]
                return Corpus(train + extra, train, dev[: layout.max_dev])
    audio = sorted(p for p in speech.rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    if not audio:
        raise FileNotFoundError(f"no .flac/.wav audio under {speech}: point at a folder of 16 kHz speech")
    every = [{"path": str(p.resolve()), "text": ""} for p in audio]
    if transcripts is None:
        return Corpus(every, [], [])
    rows = [r for r in _read(Path(transcripts), speech) if r["text"].strip()]
    cut = int(len(rows) * (1 - dev_fraction))
    return Corpus(every, rows[:cut], rows[cut:])


def at_most_hours(rows: List[dict], hours: float, seed: int = 0) -> List[dict]:
    """A seeded random subset of ``rows`` holding at most ``hours`` of audio, in the rows' order (all
    rows when they hold less): the data-bound stages (CMVN, feature dumps, k-means) scale with it."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    keep, seconds = set(), 0.0
    for i in order:
        duration = audio_num_samples(rows[i]["path"]) / SAMPLE_RATE
        if seconds + duration > hours * 3600:
            break
        keep.add(i)
        seconds += duration
    return [r for i, r in enumerate(rows) if i in keep]
