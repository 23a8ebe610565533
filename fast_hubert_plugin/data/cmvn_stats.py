"""Global CMVN statistics of a manifest's fbank (the training set's; dev/test reuse them)."""

from tqdm import tqdm

from ..features.cmvn import CMVNAccumulator, GlobalCMVN
from ..features.kaldi_fbank import NUM_MEL_BINS, compute_fbank
from .manifest import read_manifest
from .row_features import row_features


def compute_cmvn(manifest_path, workers: int = 1, progress: bool = True, resample: bool = True) -> GlobalCMVN:
    """Per-bin mean and std of the raw fbank of every utterance of the manifest (``resample`` False: audio
    that is not 16 kHz mono is refused)."""
    manifest = read_manifest(manifest_path, resample=resample)
    manifest.check_files_exist()
    acc = CMVNAccumulator(NUM_MEL_BINS)
    fbanks = row_features(compute_fbank, manifest, workers=workers, chunksize=8)
    for feats in tqdm(fbanks, total=len(manifest), desc="cmvn", disable=not progress):
        if feats.shape[0]:
            acc.add(feats)
    return acc.finalize()
