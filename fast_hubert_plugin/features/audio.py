"""Reading audio with errors that say which file failed and why."""

import os

import numpy as np
import soundfile as sf

from ..utils.errors import DataError


def read_audio(path, expected_sample_rate: int = 16000, where: str = "") -> np.ndarray:
    """Read a mono waveform as float32 in [-1, 1].

    Multi-channel audio is averaged to mono (as fairseq's HubertDataset does).
    ``where`` (e.g. "manifest train.tsv, line 12") is added to error messages.
    """
    suffix = f" (listed in {where})" if where else ""
    if not os.path.isfile(path):
        raise DataError(path, f"audio file not found{suffix}", "check the manifest's root line and path")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise DataError(
            path, f"cannot read audio{suffix}: {e}", "re-encode it as 16-bit WAV/FLAC or drop the row"
        ) from None
    if sr != expected_sample_rate:
        raise DataError(
            path,
            f"sample rate {sr} Hz{suffix}, expected {expected_sample_rate} Hz",
            f"resample the audio to {expected_sample_rate} Hz (e.g. sox in.flac -r {expected_sample_rate} out.flac)",
        )
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if wav.size == 0:
        raise DataError(path, f"audio file is empty{suffix}", "drop the row from the manifest")
    return np.ascontiguousarray(wav, dtype=np.float32)
