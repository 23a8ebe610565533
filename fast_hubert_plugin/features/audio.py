"""Reading audio with errors that say which file failed and why, as the 16 kHz mono the fbank needs.

The one check of audio files: present, readable, and either 16 kHz mono already or converted to it.
Manifests, the data loader, the clustering dump and fast-hubert-prepare-ctc all go through it, so
they agree on what a usable file is and on how many samples it has.

Any sample rate and channel count in: a multi-channel file is averaged to mono (as fairseq's
HubertDataset does), then a file at another rate is resampled to 16 kHz by libsoxr (python-soxr,
quality "HQ"), the whole file in one call each time it is read (no chunk seams, the same samples
every time). The first file of each (rate, channels) format a process converts is logged, the
others like it are not. ``resample=False`` refuses anything that is not 16 kHz mono instead.

**Sample counts are at 16 kHz.** The ``num_samples`` of a manifest row is the length of the
waveform the model sees: for a file of F frames at R Hz, ``resampled_length(F, R)`` =
round(F * 16000 / R) (halves up), which is exactly what libsoxr returns, so it is known from the
header without decoding. fairseq's ``wav2vec_manifest.py`` writes F itself; for 16 kHz files
the two are equal, for others fast-hubert-prepare-ctc writes the manifest. Fbank frames, label
lengths and crops are all computed from this count, so a resampled file lines up with its labels.
"""

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

import numpy as np
import soundfile as sf
import soxr

from ..utils.errors import DataError
from .kaldi_fbank import SAMPLE_RATE

logger = logging.getLogger("fast_hubert.audio")  # shown by the console scripts too

# soundfile raises LibsndfileError (a RuntimeError) for unreadable files, OSError for unopenable ones
SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError)
RESAMPLER_QUALITY = "HQ"  # libsoxr's default: passband to 0.91 of Nyquist, 144 dB stop band
ALLOW_RESAMPLING = "or allow resampling on load (drop --no-resample / set task.resample_audio=true)"

# (sample rate, channels) of the converted formats this process has logged
_LOGGED_FORMATS = set()


@dataclass(frozen=True)
class AudioFormat:
    """What a file's header says: ``frames`` per channel at ``sample_rate``."""

    sample_rate: int
    channels: int
    frames: int

    def describe(self) -> str:
        return f"{self.sample_rate} Hz, {self.channels} channel{'s' if self.channels > 1 else ''}"

    def is_converted(self, sample_rate: int = SAMPLE_RATE) -> bool:
        return self.sample_rate != sample_rate or self.channels != 1

    def num_samples(self, sample_rate: int = SAMPLE_RATE) -> int:
        """Samples of the mono waveform at ``sample_rate`` that reading the file gives."""
        return resampled_length(self.frames, self.sample_rate, sample_rate)


def resampled_length(frames: int, from_rate: int, to_rate: int = SAMPLE_RATE) -> int:
    """Samples libsoxr returns for ``frames`` at ``from_rate``: frames * to_rate / from_rate rounded
    half up (tests/test_features.py checks it against soxr for many rates and lengths)."""
    return (2 * frames * to_rate + from_rate) // (2 * from_rate)


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


def check_convertible(path, fmt: AudioFormat, sample_rate: int, where: str, resample: bool) -> None:
    """With ``resample`` off, anything but ``sample_rate`` mono is refused."""
    if resample:
        return
    if fmt.sample_rate != sample_rate:
        raise DataError(
            path,
            f"sample rate {fmt.sample_rate} Hz{listed_in(where)}, expected {sample_rate} Hz",
            f"resample the audio to {sample_rate} Hz (e.g. sox in.flac -r {sample_rate} out.flac), {ALLOW_RESAMPLING}",
        )
    if fmt.channels != 1:
        raise DataError(
            path,
            f"{fmt.channels} channels{listed_in(where)}, expected mono",
            f"down-mix it (e.g. sox in.flac -c 1 out.flac), {ALLOW_RESAMPLING}",
        )


@contextlib.contextmanager
def open_audio(path, sample_rate: int = SAMPLE_RATE, where: str = "", resample: bool = True) -> Iterator[sf.SoundFile]:
    """The audio file opened for reading, once checked: present, readable, and ``sample_rate`` mono
    unless ``resample`` allows converting it."""
    check_audio_exists(path, where)
    try:
        f = sf.SoundFile(str(path))
    except SOUNDFILE_ERRORS as e:
        raise unreadable(path, where, e) from None
    with f:
        check_convertible(path, header_format(f), sample_rate, where, resample)
        yield f


def read_pcm16_span(
    path, start: int, count: int, sample_rate: int = SAMPLE_RATE, where: str = "", resample: bool = True
) -> Optional[Tuple[int, np.ndarray]]:
    """(the file's samples, samples [start, start + count) as int16) of a mono 16-bit PCM file at
    ``sample_rate``, decoded from ``start`` only as far as ``count`` (a FLAC or WAV seek: a training crop
    costs its own length, not the utterance's); None for any other file, which ``read_audio`` converts
    (down-mix, resampling, other sample formats). Fewer than ``count`` samples come back when the file
    ends first."""
    with open_audio(path, sample_rate, where, resample) as f:
        if f.channels != 1 or f.subtype != "PCM_16" or f.samplerate != sample_rate:
            return None
        try:
            f.seek(start)
            return int(f.frames), f.read(count, dtype="int16")
        except SOUNDFILE_ERRORS as e:  # a header that opens but data that does not decode
            raise unreadable(path, where, e) from None


def header_format(f: sf.SoundFile) -> AudioFormat:
    return AudioFormat(sample_rate=int(f.samplerate), channels=int(f.channels), frames=int(f.frames))


def audio_format(path, sample_rate: int = SAMPLE_RATE, where: str = "", resample: bool = True) -> AudioFormat:
    """The header of a checked audio file, read without decoding it."""
    with open_audio(path, sample_rate, where, resample) as f:
        return header_format(f)


def audio_num_samples(path, sample_rate: int = SAMPLE_RATE, where: str = "", resample: bool = True) -> int:
    """Samples of the mono waveform at ``sample_rate`` that ``read_audio`` gives, from the header alone."""
    return audio_format(path, sample_rate, where, resample).num_samples(sample_rate)


def log_conversion_once(path, fmt: AudioFormat, sample_rate: int) -> None:
    key = (fmt.sample_rate, fmt.channels)
    if key in _LOGGED_FORMATS:
        return
    _LOGGED_FORMATS.add(key)
    logger.info(
        f"{path}: {fmt.describe()}, converted on load to {sample_rate} Hz mono (channels averaged, soxr "
        f"{RESAMPLER_QUALITY}); other {fmt.describe()} files are converted without a message"
    )


def read_audio(path, sample_rate: int = SAMPLE_RATE, where: str = "", resample: bool = True) -> np.ndarray:
    """A mono waveform (N,) at ``sample_rate`` as float32, in [-1, 1] for 16-bit audio.

    Multi-channel audio is averaged to mono and other rates are resampled (module docstring), unless
    ``resample`` is off, which refuses them. ``where`` (e.g. "manifest train.tsv, line 12") is
    added to error messages.
    """
    with open_audio(path, sample_rate, where, resample) as f:
        fmt = header_format(f)
        try:
            wav = f.read(dtype="float32", always_2d=True)
        except SOUNDFILE_ERRORS as e:  # a header that opens but data that does not decode
            raise unreadable(path, where, e) from None
    if wav.size == 0:
        raise DataError(path, f"audio file is empty{listed_in(where)}", "drop the row from the manifest")
    wav = wav[:, 0] if fmt.channels == 1 else wav.mean(axis=1)
    if fmt.is_converted(sample_rate):
        log_conversion_once(path, fmt, sample_rate)
    if fmt.sample_rate != sample_rate:
        wav = soxr.resample(wav, fmt.sample_rate, sample_rate, quality=RESAMPLER_QUALITY)
    return np.ascontiguousarray(wav, dtype=np.float32)
