"""39-dim MFCC features for HuBERT's first k-means iteration (13 MFCC + delta + delta-delta).

Matches fairseq's ``examples/hubert/simple_kmeans/dump_mfcc_feature.py``: Kaldi MFCC with
torchaudio's ``compliance.kaldi.mfcc`` defaults (23 mel bins, 13 cepstra, lifter 22, povey
window, pre-emphasis 0.97, snip_edges, dither 0, ``use_energy=False``) on the float waveform in
[-1, 1] (not scaled to int16), then first-order regression deltas with a 5-frame window applied
twice (delta of delta, edges replicated), as ``torchaudio.functional.compute_deltas`` does.
Computed with kaldi-native-fbank, so torchaudio is not needed. 100 frames per second;
a waveform of N samples at 16 kHz gives ``1 + (N - 400) // 160`` frames.
"""

import kaldi_native_fbank as knf
import numpy as np

from .kaldi_fbank import SAMPLE_RATE


def set_kaldi_defaults(opts, num_mel_bins: int, sample_rate: int = SAMPLE_RATE):
    """Kaldi framing and mel settings of the project's fbank, for kaldi-native-fbank's options."""
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


NUM_CEPS = 13
MFCC_DIM = 3 * NUM_CEPS  # 39
MFCC_FRAME_RATE = 100
DELTA_WINDOW = 2  # +-2 frames: torchaudio compute_deltas(win_length=5)


def mfcc_options(sample_rate: int = SAMPLE_RATE) -> "knf.MfccOptions":
    opts = set_kaldi_defaults(knf.MfccOptions(), num_mel_bins=23, sample_rate=sample_rate)
    opts.num_ceps = NUM_CEPS
    opts.cepstral_lifter = 22.0
    return opts


def compute_mfcc_static(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """13 Kaldi MFCCs of a float waveform in [-1, 1]: (frames, 13) float32."""
    mfcc = knf.OnlineMfcc(mfcc_options(sample_rate))
    mfcc.accept_waveform(sample_rate, np.asarray(waveform, dtype=np.float32))
    mfcc.input_finished()
    n = mfcc.num_frames_ready
    if n == 0:
        return np.zeros((0, NUM_CEPS), dtype=np.float32)
    return np.stack([mfcc.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)


def _delta(feats: np.ndarray) -> np.ndarray:
    """First-order regression delta over +-2 frames, edges replicated: (T, D) -> (T, D)."""
    out = knf.compute_deltas(knf.DeltaOptions(order=1, window=DELTA_WINDOW), np.ascontiguousarray(feats))
    return out[:, feats.shape[1] :]


def compute_mfcc(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCC + delta + delta-delta of a float waveform in [-1, 1]: (frames, 39) float32."""
    static = compute_mfcc_static(waveform, sample_rate)
    if static.shape[0] == 0:
        return np.zeros((0, MFCC_DIM), dtype=np.float32)
    delta = _delta(static)
    delta2 = _delta(delta)
    return np.concatenate([static, delta, delta2], axis=1).astype(np.float32, copy=False)
