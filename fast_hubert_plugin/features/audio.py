"""Reading audio with errors that say which file failed and why.

The one check of audio files: present, readable, at the expected sample rate. Manifests, the
data loader and fast-hubert-prepare-ctc all go through it, so they agree on what a usable file is.
"""

import contextlib
import os
from typing import Iterator

import numpy as np
import soundfile as sf

from ..utils.errors import DataError

# soundfile raises LibsndfileError (a RuntimeError) for unreadable files, OSError for unopenable ones
SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)


def listed_in(where: str) -> str:
    return f" (listed in {where})" if where else ""


def unreadable(path, where: str, error: Exception) -> DataError:
    return DataError(
        path, f"cannot read audio{listed_in(where)}: {error}", "re-encode it as 16-bit WAV/FLAC or drop the row"
    )


def check_audio_exists(path, where: str = "") -> None:
    """``where`` (e.g. "manifest train.tsv, line 12") is added to the message."""
    if not os.path.isfile(path):
        raise DataError(
            path,
            f"audio file not found{listed_in(where)}",
            "fix the path (or the root folder it is relative to), or remove the row",
        )


@contextlib.contextmanager
def open_audio(path, expected_sample_rate: int = 16000, where: str = "") -> Iterator[sf.SoundFile]:
    """The audio file opened for reading, once checked: present, readable, at ``expected_sample_rate``."""
    check_audio_exists(path, where)
    try:
        f = sf.SoundFile(str(path))
    except SOUNDFILE_ERRORS as e:
        raise unreadable(path, where, e) from None
    with f:
        sr = f.samplerate
        if sr != expected_sample_rate:
            raise DataError(
                path,
                f"sample rate {sr} Hz{listed_in(where)}, expected {expected_sample_rate} Hz",
                f"resample the audio to {expected_sample_rate} Hz (e.g. sox in.flac -r {expected_sample_rate} out.flac)",
            )
        yield f


def audio_num_samples(path, expected_sample_rate: int = 16000, where: str = "") -> int:
    """Samples (per channel) of a checked audio file, read from its header without decoding it."""
    with open_audio(path, expected_sample_rate, where) as f:
        return int(f.frames)


def read_audio(path, expected_sample_rate: int = 16000, where: str = "") -> np.ndarray:
    """Read a mono waveform as float32 in [-1, 1].

    Multi-channel audio is averaged to mono (as fairseq's HubertDataset does).
    ``where`` (e.g. "manifest train.tsv, line 12") is added to error messages.
    """
    with open_audio(path, expected_sample_rate, where) as f:
        try:
            wav = f.read(dtype="float32", always_2d=False)
        except SOUNDFILE_ERRORS as e:  # a header that opens but data that does not decode
            raise unreadable(path, where, e) from None
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.size == 0:
        raise DataError(path, f"audio file is empty{listed_in(where)}", "drop the row from the manifest")
    return np.ascontiguousarray(wav, dtype=np.float32)
