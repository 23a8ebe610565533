"""Input features: audio reading, Kaldi-style log-Mel fbank, MFCC, global CMVN, SpecAugment."""

from .audio import read_audio
from .cmvn import GlobalCMVN
from .kaldi_fbank import FBANK_FRAME_RATE, NUM_MEL_BINS, compute_fbank, num_fbank_frames

__all__ = [
    "read_audio",
    "GlobalCMVN",
    "FBANK_FRAME_RATE",
    "NUM_MEL_BINS",
    "compute_fbank",
    "num_fbank_frames",
]
