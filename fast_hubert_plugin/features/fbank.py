"""80-dim Kaldi-compatible log-Mel filterbank (the Fast-HuBERT input), via kaldi-native-fbank.

Kaldi settings: 25 ms povey window, 10 ms shift, pre-emphasis 0.97, DC removal, no dither,
snip_edges, 20 Hz..Nyquist mel range, waveform scaled to the int16 range. A waveform of N samples
at 16 kHz gives ``1 + (N - 400) // 160`` frames.
"""
import numpy as np
import kaldi_native_fbank as knf

SAMPLE_RATE = 16000
NUM_MEL_BINS = 80
FBANK_FRAME_RATE = 100  # frames per second (10 ms shift)
FRAME_LENGTH_SAMPLES = 400  # 25 ms
FRAME_SHIFT_SAMPLES = 160  # 10 ms
INT16_SCALE = 32768.0


def num_fbank_frames(num_samples: int) -> int:
    """Number of fbank frames for ``num_samples`` samples at 16 kHz (Kaldi snip_edges)."""
    if num_samples < FRAME_LENGTH_SAMPLES:
        return 0
    return 1 + (num_samples - FRAME_LENGTH_SAMPLES) // FRAME_SHIFT_SAMPLES


def set_kaldi_defaults(opts, num_mel_bins: int, sample_rate: int = SAMPLE_RATE):
    """Kaldi framing and mel settings shared by fbank and MFCC options (kaldi-native-fbank)."""
    opts.frame_opts.samp_freq = sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.mel_opts.num_bins = num_mel_bins
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0  # 0 means the Nyquist frequency, as in Kaldi
    opts.use_energy = False
    return opts


def fbank_options(num_mel_bins: int = NUM_MEL_BINS, sample_rate: int = SAMPLE_RATE) -> "knf.FbankOptions":
    return set_kaldi_defaults(knf.FbankOptions(), num_mel_bins, sample_rate)


def compute_fbank(
    waveform: np.ndarray, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = NUM_MEL_BINS
) -> np.ndarray:
    """Log-Mel fbank of a float waveform in [-1, 1]: (frames, num_mel_bins) float32."""
    fbank = knf.OnlineFbank(fbank_options(num_mel_bins, sample_rate))
    fbank.accept_waveform(sample_rate, np.asarray(waveform, dtype=np.float32) * INT16_SCALE)
    fbank.input_finished()
    n = fbank.num_frames_ready
    if n == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)
