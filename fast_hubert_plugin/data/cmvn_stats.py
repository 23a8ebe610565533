"""Global CMVN statistics of a manifest's fbank (the training set's; dev/test reuse them)."""

from multiprocessing import Pool

from tqdm import tqdm

from ..features.cmvn import CMVNAccumulator, GlobalCMVN
from ..features.kaldi_fbank import NUM_MEL_BINS, compute_fbank
from .manifest import read_manifest

_MANIFEST = {}


def _init_worker(manifest) -> None:
    _MANIFEST["m"] = manifest


def _fbank_of(i: int):
    return compute_fbank(_MANIFEST["m"].read_audio(i))


def compute_cmvn(manifest_path, workers: int = 1, progress: bool = True) -> GlobalCMVN:
    """Per-bin mean and std of the raw fbank of every utterance of the manifest."""
    manifest = read_manifest(manifest_path)
    manifest.check_files_exist()
    jobs = range(len(manifest))
    acc = CMVNAccumulator(NUM_MEL_BINS)
    _init_worker(manifest)
    with Pool(workers, initializer=_init_worker, initargs=(manifest,)) if workers > 1 else _Serial() as pool:
        for feats in tqdm(pool.imap(_fbank_of, jobs, chunksize=8), total=len(jobs), desc="cmvn", disable=not progress):
            if feats.shape[0]:
                acc.add(feats)
    return acc.finalize()


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(fn, items, chunksize=1):
        return map(fn, items)
