"""Mini LibriSpeech (OpenSLR resource 31): download, verify, extract, and write transcribed manifests.

``fetch_mini_librispeech(cache_dir)`` leaves, under ``cache_dir/mini_librispeech``:

- ``LibriSpeech/train-clean-5/`` and ``LibriSpeech/dev-clean-2/`` as in the archives
  (``SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` and ``SPEAKER-CHAPTER.trans.txt``);
- ``train-clean-5.tsv`` and ``dev-clean-2.tsv``: ``id  path  speaker  num_samples  text``
  (tab-separated, header line, ``path`` relative to the folder, upper-case transcripts).

Each step is skipped when its output exists, and every output appears only when complete, so an
interrupted run continues where it stopped. LibriSpeech is CC BY 4.0 (Panayotov et al., ICASSP 2015).
"""

import csv
import os
from pathlib import Path
from typing import Dict, Optional

from tqdm import tqdm

from ..features.audio import audio_num_samples
from ..utils.atomic import atomic_path
from .download import Archive, DownloadError, Unreachable, download, extract_member_dir, verify

OPENSLR_URL = "https://www.openslr.org/resources/31"
# MD5 of the archives as OpenSLR serves them, as published in PaddleSpeech's Mini LibriSpeech
# preparation script (dataset/mini_librispeech/mini_librispeech.py: MD5_TRAIN_CLEAN, MD5_DEV_CLEAN).
MD5 = {
    "train-clean-5": "5df7d4e78065366204ca6845bb08f490",
    "dev-clean-2": "6d7ab67ac6a1d2c993d050e16d61080d",
}
APPROX_MB = {"train-clean-5": 332, "dev-clean-2": 126}
PARTS = ("train-clean-5", "dev-clean-2")
CACHE_ENV = "FAST_HUBERT_CACHE"
URL_ENV = "FAST_HUBERT_MINI_LIBRISPEECH_URL"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "fast-hubert")).expanduser()


def archives(base_url: Optional[str] = None, md5: Optional[Dict[str, str]] = None) -> Dict[str, Archive]:
    """The archives to fetch; ``base_url`` (or ``$FAST_HUBERT_MINI_LIBRISPEECH_URL``) points at a mirror."""
    base = (base_url or os.environ.get(URL_ENV) or OPENSLR_URL).rstrip("/")
    md5 = md5 or MD5
    return {p: Archive(f"{base}/{p}.tar.gz", md5[p], APPROX_MB.get(p)) for p in PARTS}


def write_manifest(part_dir: Path, root: Path, out: Path) -> int:
    """One row per line of the ``*.trans.txt`` files under ``part_dir``; returns the row count."""
    rows = []
    for trans in sorted(part_dir.rglob("*.trans.txt")):
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, text = line.partition(" ")
            audio = trans.parent / f"{utt}.flac"
            if not audio.is_file():
                raise DownloadError(f"{trans}, line {n}: {audio.name} is missing; delete {part_dir} and run again")
            rows.append((utt, audio.relative_to(root).as_posix(), utt.split("-")[0], text.strip().upper()))
    if not rows:
        raise DownloadError(f"{part_dir}: no transcripts (*.trans.txt) found; delete it and run again")
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "path", "speaker", "num_samples", "text"])
        for utt, rel, speaker, text in tqdm(rows, desc=f"{part_dir.name} manifest", unit="utt"):
            w.writerow([utt, rel, speaker, audio_num_samples(root / rel), text])
    return len(rows)


def fetch_mini_librispeech(
    cache_dir: Optional[Path] = None,
    base_url: Optional[str] = None,
    md5: Optional[Dict[str, str]] = None,
    progress: bool = True,
) -> Path:
    """Download, verify and extract both parts and write their manifests; returns the corpus folder."""
    root = Path(cache_dir or default_cache_dir()) / "mini_librispeech"
    todo = archives(base_url, md5)
    for part, archive in todo.items():
        manifest = root / f"{part}.tsv"
        if manifest.is_file():
            continue
        part_dir = root / "LibriSpeech" / part
        if not part_dir.is_dir():
            try:
                tar = download(archive, root / archive.name, progress=progress)
            except Unreachable as e:  # offline: say everything that is still missing, at once
                missing = [
                    a
                    for p, a in todo.items()
                    if not (root / f"{p}.tsv").is_file() and not (root / "LibriSpeech" / p).is_dir()
                ]
                files = " and ".join(f"{a.url} ({a.approx_mb} MB, MD5 {a.md5})" for a in missing)
                raise Unreachable(
                    e.url,
                    e.reason,
                    f"offline? Download {files} by hand, put them in {root}/ and "
                    "run again; or pass --speech-dir with a folder of your own audio",
                ) from None
            verify(tar, archive.md5)
            extract_member_dir(tar, f"LibriSpeech/{part}", part_dir)
            tar.unlink()  # the extracted folder is the copy we keep
        write_manifest(part_dir, root, manifest)
    return root
