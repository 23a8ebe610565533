"""Kaldi's 80-dim log-Mel filterbank (the Fast-HuBERT input) in batched torch, on any device.

The one fbank implementation of the project: training computes it on the accelerator from
waveform batches, and the clustering dump, CMVN statistics, probes and the transformers export
call the same functions (the export copies this file into its folder, so it imports nothing but
torch and numpy). Kaldi settings: 25 ms povey window, 10 ms shift, DC removal, pre-emphasis 0.97,
no dither, snip_edges, 512-point power spectrum, 80 mel bins over 20 Hz..Nyquist (the Nyquist bin
ignored), log with a float-epsilon floor, the waveform scaled to the int16 range. A waveform of N
samples at 16 kHz gives ``1 + (N - 400) // 160`` frames.

kaldi-native-fbank (float32) is the reference in the tests, value by value, within what float32
rounding allows (``float32_log_mel_tolerance``): two float32 fbanks of the same audio may differ by
``eps * (A + B * sqrt(R))``, eps the float32 machine epsilon and R = 512 * (energy of the frame's
int16-scale samples) / (the bin's mel energy). Why: DC removal and pre-emphasis subtract nearly equal
samples, so each implementation carries an absolute error of about eps * |x| per sample; over the
512-point FFT its power in one bin, relative to the bin's own, is eps^2 * R, which moves the log by about
eps * sqrt(R) (B = 2: five times the largest measured, 0.38 eps * sqrt(R), both implementations' errors added). A bin far below
its frame's energy (the lowest mel bins of near-silent frames: R up to 1e14 in the test speech) may
therefore differ by 0.03; a well-conditioned bin only by the pipeline's own float32 rounding (frame
sums, the FFT, the mel sums: at most 1,120 eps where R < 1e6 in the test speech; A = 8192 eps, 1e-3).
A wrong window, pre-emphasis or mel bank moves well-conditioned bins by far more (tests/test_features.py).
"""

import math

import numpy as np
import torch

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80
FBANK_FRAME_RATE = 100  # frames per second (10 ms shift)
FRAME_LENGTH_SAMPLES = 400  # 25 ms
FRAME_SHIFT_SAMPLES = 160  # 10 ms
FFT_SIZE = 512
INT16_SCALE = 32768.0
PREEMPHASIS = 0.97
LOG_FLOOR = float(np.finfo(np.float32).eps)
FLOAT32_PIPELINE_ULPS = 8192  # A of float32_log_mel_tolerance, in units of float32's eps
FLOAT32_LEAK_FACTOR = 2.0  # B of float32_log_mel_tolerance


def num_fbank_frames(num_samples):
    """Kaldi snip_edges frame count ``1 + (N - 400) // 160``, 0 below one window; int or (B,) tensor."""
    if torch.is_tensor(num_samples):
        n = torch.div(num_samples - FRAME_LENGTH_SAMPLES, FRAME_SHIFT_SAMPLES, rounding_mode="floor") + 1
        return n.clamp(min=0)
    if num_samples < FRAME_LENGTH_SAMPLES:
        return 0
    return 1 + (num_samples - FRAME_LENGTH_SAMPLES) // FRAME_SHIFT_SAMPLES


def check_at_least_one_frame(num_samples: int, what: str = "a waveform") -> None:
    """ValueError unless ``num_samples`` give a fbank frame: an utterance without one has no
    features, labels or padding mask. The one rule for it (the export carries it in this file)."""
    if num_samples < FRAME_LENGTH_SAMPLES:
        raise ValueError(
            f"{what} of {num_samples} samples is shorter than one 25 ms fbank frame ({FRAME_LENGTH_SAMPLES} samples)"
        )


def num_fbank_samples(num_frames: int) -> int:
    """The fewest samples that give ``num_frames`` frames (inverse of ``num_fbank_frames``)."""
    return 0 if num_frames <= 0 else (num_frames - 1) * FRAME_SHIFT_SAMPLES + FRAME_LENGTH_SAMPLES


def kaldi_mel_banks(
    num_bins: int = NUM_MEL_BINS,
    sample_rate: int = SAMPLE_RATE,
    fft_size: int = FFT_SIZE,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """(fft_size // 2 + 1, num_bins) float64 triangular mel weights as Kaldi computes them (Nyquist bin 0)."""
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    mel_low, mel_high = mel(low_freq), mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    fft_mels = mel(np.arange(fft_size // 2) * (sample_rate / fft_size))
    left = mel_low + np.arange(num_bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    up = (fft_mels[None, :] - left) / (center - left)
    down = (right - fft_mels[None, :]) / (right - center)
    weights = np.where((fft_mels[None, :] > left) & (fft_mels[None, :] < right), np.minimum(up, down), 0.0)
    weights = np.concatenate([weights, np.zeros((num_bins, 1))], axis=1)  # Kaldi ignores the Nyquist bin
    return torch.from_numpy(weights.T.copy())


def povey_window(length: int = FRAME_LENGTH_SAMPLES) -> torch.Tensor:
    n = torch.arange(length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / (length - 1))) ** 0.85


_CONSTANTS = {}


def _window_and_mel_banks(num_bins: int, device: torch.device, dtype: torch.dtype):
    key = (num_bins, str(device), dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = (
            povey_window().to(device=device, dtype=dtype),
            kaldi_mel_banks(num_bins).to(device=device, dtype=dtype),
        )
    return _CONSTANTS[key]


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    """A float waveform in [-1, 1] as 16-bit PCM (int16, the scale Kaldi reads), rounded and clipped:
    exact for audio stored as 16-bit PCM (LibriSpeech's FLAC, most WAV)."""
    return np.clip(np.rint(waveform * INT16_SCALE), -INT16_SCALE, INT16_SCALE - 1).astype(np.int16)


def kaldi_fbank(
    waveforms: torch.Tensor, num_bins: int = NUM_MEL_BINS, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B, N) waveforms at 16 kHz, 16-bit PCM (int16) or floats in [-1, 1] -> (B, num_fbank_frames(N),
    num_bins) log-Mel fbank; the same values for the same 16-bit audio either way.

    Computed on the waveforms' device in ``dtype`` (float32 for training, float64 for the export's
    reference precision) with autocast off, whatever the input dtype. In a zero-padded batch the
    frames past an utterance's own ``num_fbank_frames`` are computed too: callers mask them.
    """
    if waveforms.dim() != 2:
        raise ValueError(f"expected (batch, samples) waveforms, got shape {tuple(waveforms.shape)}")
    if waveforms.size(1) < FRAME_LENGTH_SAMPLES:
        return waveforms.new_zeros(waveforms.size(0), 0, num_bins, dtype=dtype)
    window, mel_banks = _window_and_mel_banks(num_bins, waveforms.device, dtype)
    with torch.autocast(waveforms.device.type, enabled=False):
        x = waveforms.to(dtype) if waveforms.dtype == torch.int16 else waveforms.to(dtype) * INT16_SCALE
        frames = x.unfold(1, FRAME_LENGTH_SAMPLES, FRAME_SHIFT_SAMPLES)  # B x F x 400 (a view)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        spec = torch.fft.rfft((frames - PREEMPHASIS * prev) * window, n=FFT_SIZE)  # B x F x 257
        power = spec.real.square() + spec.imag.square()
        return torch.matmul(power, mel_banks).clamp(min=LOG_FLOOR).log()


def float32_log_mel_tolerance(waveform, log_mel: np.ndarray) -> np.ndarray:
    """Per-value bound (frames, bins) on the difference between two float32 Kaldi fbanks of one 16 kHz
    waveform (float in [-1, 1] or int16 PCM) whose log-Mel values are ``log_mel`` (module docstring)."""
    waveform = np.asarray(waveform)
    samples = waveform.astype(np.float64) * (1.0 if waveform.dtype == np.int16 else INT16_SCALE)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME_LENGTH_SAMPLES)[::FRAME_SHIFT_SAMPLES]
    frame_energy = np.square(frames).sum(axis=1, keepdims=True)[: len(log_mel)]
    conditioning = FFT_SIZE * frame_energy / np.exp(np.asarray(log_mel, dtype=np.float64))
    return LOG_FLOOR * (FLOAT32_PIPELINE_ULPS + FLOAT32_LEAK_FACTOR * np.sqrt(conditioning))


# compute_fbank works through a long waveform this many frames at a time: each frame depends on its own
# 400 samples only, so pieces whose windows overlap by 400 - 160 samples give the same values (tested
# bit for bit) with memory bounded by the piece (about 10 KB per frame in flight) instead of the waveform.
FBANK_CHUNK_FRAMES = 6000


def compute_fbank(
    waveform, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = NUM_MEL_BINS, chunk_frames: int = FBANK_CHUNK_FRAMES
) -> np.ndarray:
    """Log-Mel fbank of one waveform (float in [-1, 1], or int16 PCM) on the CPU: (frames, num_mel_bins)
    float32 numpy, computed ``chunk_frames`` frames at a time."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"the Fast-HuBERT fbank is defined at {SAMPLE_RATE} Hz, got {sample_rate}")
    waveform = np.asarray(waveform)
    wav = torch.as_tensor(waveform if waveform.dtype == np.int16 else waveform.astype(np.float32)).reshape(1, -1)
    total = num_fbank_frames(wav.shape[1])
    if total <= chunk_frames:
        with torch.no_grad():
            return kaldi_fbank(wav, num_mel_bins)[0].numpy()
    out = np.empty((total, num_mel_bins), dtype=np.float32)
    with torch.no_grad():
        for a in range(0, total, chunk_frames):
            b = min(a + chunk_frames, total)
            piece = wav[:, a * FRAME_SHIFT_SAMPLES : (b - 1) * FRAME_SHIFT_SAMPLES + FRAME_LENGTH_SAMPLES]
            out[a:b] = kaldi_fbank(piece, num_mel_bins)[0].numpy()
    return out
