"""fairseq audio manifests: first line the audio root, then ``relative/path<TAB>num_samples``.

Loaded once, validated row by row, with errors that name the line (1-based, as an editor shows).
``num_samples`` counts samples of the 16 kHz mono waveform a row's file is read as (features/audio.py:
for a 44.1 kHz file, round(frames * 16000 / 44100)); fbank frames, label lengths and crops derive from it.
"""

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..features.audio import audio_format, check_audio_exists, read_audio, read_pcm16_span
from ..features.kaldi_fbank import check_at_least_one_frame
from ..utils.errors import DataError

MANIFEST_FIX = "each row must be 'relative/path<TAB>num_samples' after a first line holding the audio root"


@dataclass
class AudioManifest:
    path: str
    root: str
    names: List[str]
    num_samples: List[int]
    resample: bool = True  # convert files that are not 16 kHz mono on load; False refuses them

    def __len__(self) -> int:
        return len(self.names)

    def audio_path(self, i: int) -> str:
        return os.path.join(self.root, self.names[i])

    def line_of(self, i: int) -> int:
        """1-based line of row ``i`` in the manifest file (line 1 is the root)."""
        return i + 2

    def where(self, i: int) -> str:
        return f"manifest {self.path}, line {self.line_of(i)}"

    def read_audio(self, i: int, sample_rate: int = 16000) -> np.ndarray:
        """Mono waveform (N,) of row ``i`` at ``sample_rate`` (float32 in [-1, 1]); N must be the row's
        ``num_samples`` (label lengths and feature offsets are computed from it)."""
        path = self.audio_path(i)
        wav = read_audio(path, sample_rate, where=self.where(i), resample=self.resample)
        if len(wav) != self.num_samples[i]:
            raise self.wrong_length(i, len(wav), sample_rate)
        return wav

    def wrong_length(self, i: int, samples: int, sample_rate: int = 16000) -> DataError:
        """The error for row ``i`` whose audio has ``samples`` samples at ``sample_rate``, not the manifest's
        count; it says so when the manifest holds the file's own frame count at another rate."""
        path = self.audio_path(i)
        fmt = audio_format(path, sample_rate, resample=self.resample)
        native = fmt.is_converted(sample_rate) and fmt.frames == self.num_samples[i]
        return DataError(
            path,
            f"{samples} samples but {self.where(i)} says {self.num_samples[i]}"
            + (
                f", the file's own frame count at {fmt.sample_rate} Hz (as fairseq's wav2vec_manifest "
                f"writes): this project's manifests count samples at {sample_rate} Hz after resampling"
                if native
                else ""
            ),
            "regenerate the manifest from the audio (fast-hubert-prepare-ctc --no-text): its sizes "
            "must match for labels to line up",
        )

    def read_pcm16_span(self, i: int, start: int, count: int, sample_rate: int = 16000) -> Optional[np.ndarray]:
        """Samples [start, start + count) of row ``i`` as 16-bit PCM (int16), decoded only that far, or None
        when the file is not mono 16-bit PCM at ``sample_rate`` (the caller then reads it whole and converts
        it). They are ``to_pcm16(self.read_audio(i))[start : start + count]``: 16-bit PCM as stored."""
        span = read_pcm16_span(self.audio_path(i), start, count, sample_rate, self.where(i), self.resample)
        if span is None:
            return None
        frames, out = span
        if frames != self.num_samples[i]:
            raise self.wrong_length(i, frames, sample_rate)
        if len(out) != count:
            raise self.wrong_length(i, start + len(out), sample_rate)
        return out

    def check_at_least_one_frame(self, rows: Optional[Sequence[int]] = None) -> None:
        """Every row (or each of ``rows``) is long enough for a fbank frame."""
        for i in range(len(self)) if rows is None else rows:
            try:
                check_at_least_one_frame(self.num_samples[i], "an utterance")
            except ValueError as e:
                raise DataError(self.path, str(e), "remove it from the manifest", line=self.line_of(i)) from None

    def check_files_exist(self) -> None:
        for i in range(len(self)):
            check_audio_exists(self.audio_path(i), self.where(i))


def read_manifest(path, resample: bool = True) -> AudioManifest:
    """``resample``: rows whose audio is not 16 kHz mono are converted when read (else refused)."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, "manifest not found", "check task.data (the folder holding {split}.tsv)")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise DataError(path, "empty manifest or empty root line", MANIFEST_FIX, line=1)
    root = lines[0].strip()
    if "\t" in root:
        raise DataError(
            path,
            "the first line has a tab: it looks like a data row, not the audio root",
            "put the audio root directory alone on the first line",
            line=1,
        )
    names, sizes = [], []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise DataError(path, "empty line", "remove it: rows must line up with the label files", line=n)
        items = line.split("\t")
        if len(items) < 2:
            raise DataError(path, f"expected 2 tab-separated fields, got {len(items)}", MANIFEST_FIX, line=n)
        try:
            size = int(items[1])
        except ValueError:
            raise DataError(path, f"num_samples {items[1]!r} is not an integer", MANIFEST_FIX, line=n) from None
        if size <= 0:
            raise DataError(path, f"num_samples is {size}", "remove empty utterances from the manifest", line=n)
        names.append(items[0])
        sizes.append(size)
    if not names:
        raise DataError(path, "manifest has no utterances", MANIFEST_FIX)
    return AudioManifest(path=path, root=root, names=names, num_samples=sizes, resample=resample)
