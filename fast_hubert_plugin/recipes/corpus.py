"""Which speech the demo and the benchmarks use, and how it splits into pretraining / CTC / dev.

Resolution order: an explicit folder (``--speech-dir`` or ``$FAST_HUBERT_SPEECH_DIR``), then the
project's speech folder beside the repository (``../shared/speech``) when present, otherwise Mini
LibriSpeech, downloaded into the cache (``~/.cache/fast-hubert`` or ``$FAST_HUBERT_CACHE``).
"""

import csv
import os
import random
from pathlib import Path
from typing import List, NamedTuple, Optional

import soundfile

from ..data.mini_librispeech import fetch_mini_librispeech

SPEECH_ENV = "FAST_HUBERT_SPEECH_DIR"
REPO = Path(__file__).resolve().parents[2]
SHARED_SPEECH = REPO.parent / "shared" / "speech"


class Layout(NamedTuple):
    """Transcribed manifests of a corpus folder: CTC training, dev, and audio for pretraining only."""

    train: str
    dev: str
    pretrain_only: tuple = ()
    max_dev: Optional[int] = None


LAYOUTS = {
    # the project's speech folder: speechocean762 train/dev + LibriSpeech excerpts (no transcripts)
    "so762": Layout("so762_train.tsv", "so762_dev.tsv", ("librispeech_train_clean_100.tsv",)),
    # Mini LibriSpeech: 5 h of training speech; 300 of the dev-clean-2 utterances keep validation short
    "mini_librispeech": Layout("train-clean-5.tsv", "dev-clean-2.tsv", max_dev=300),
}


class Corpus(NamedTuple):
    """Rows are dicts with an absolute ``path`` and a ``text`` (empty when untranscribed)."""

    pretrain: List[dict]
    train: List[dict]
    dev: List[dict]


def resolve_speech_dir(
    speech_dir: Optional[Path] = None,
    shared: Path = SHARED_SPEECH,
    cache_dir: Optional[Path] = None,
    base_url: Optional[str] = None,
) -> Path:
    """The folder to read speech from, downloading Mini LibriSpeech when nothing else is there."""
    explicit = speech_dir or os.environ.get(SPEECH_ENV)
    if explicit:
        folder = Path(explicit).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"speech folder {folder} not found: pass --speech-dir (or ${SPEECH_ENV}) "
                "pointing at a folder of 16 kHz .flac/.wav audio"
            )
        return folder
    if (shared / LAYOUTS["so762"].train).is_file():
        return shared.resolve()
    print(f"no speech folder given and none at {shared}: using Mini LibriSpeech (OpenSLR 31)", flush=True)
    return fetch_mini_librispeech(cache_dir, base_url)


def _read(tsv: Path, root: Path) -> List[dict]:
    with open(tsv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["path"] = str((root / r["path"]).resolve())
        r["text"] = r.get("text") or ""
    return rows


def load_corpus(speech: Path, transcripts: Optional[Path] = None, dev_fraction: float = 0.15) -> Corpus:
    """Split a folder into pretraining audio, CTC training rows and dev rows.

    A folder with one of the known layouts is split by its manifests. Any other folder: every
    .flac/.wav below it is pretraining audio; ``transcripts`` (TSV with ``path`` relative to the
    folder and ``text``) gives the CTC rows, whose last ``dev_fraction`` become the dev set.
    """
    if transcripts is None:
        for layout in LAYOUTS.values():
            if (speech / layout.train).is_file() and (speech / layout.dev).is_file():
                train, dev = _read(speech / layout.train, speech), _read(speech / layout.dev, speech)
                extra = [r for name in layout.pretrain_only for r in _read(speech / name, speech)]
                return Corpus(train + extra, train, dev[: layout.max_dev])
    audio = sorted(p for p in speech.rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    if not audio:
        raise FileNotFoundError(f"no .flac/.wav audio under {speech}: pass --speech-dir pointing at your audio")
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
        duration = soundfile.info(rows[i]["path"]).duration
        if seconds + duration > hours * 3600:
            break
        keep.add(i)
        seconds += duration
    return [r for i, r in enumerate(rows) if i in keep]
