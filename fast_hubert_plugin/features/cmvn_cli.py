"""fast-hubert-cmvn: global CMVN statistics of 80-dim fbank over a training manifest.

Reads every utterance of the manifest (fairseq format), computes Kaldi fbank and writes an
``.npz`` with per-bin ``mean`` and ``std`` that ``task.cmvn_stats_path`` loads. Dev/test sets
reuse the training statistics.
"""
import argparse
import logging
from multiprocessing import Pool

from tqdm import tqdm

from ..data.manifest import read_manifest
from .audio import read_audio
from .cmvn import CMVNAccumulator
from .fbank import NUM_MEL_BINS, compute_fbank

logger = logging.getLogger("fast_hubert.cmvn")


def _fbank_of(args):
    path, where = args
    return compute_fbank(read_audio(path, where=where))


def compute_cmvn(manifest_path, workers: int = 1, progress: bool = True):
    manifest = read_manifest(manifest_path)
    manifest.check_files_exist()
    jobs = [(manifest.audio_path(i), manifest.where(i)) for i in range(len(manifest))]
    acc = CMVNAccumulator(NUM_MEL_BINS)
    with Pool(workers) if workers > 1 else _Serial() as pool:
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fast-hubert-cmvn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="training manifest (.tsv): audio root line, then path<TAB>num_samples")
    parser.add_argument("--output", required=True, help="stats file to write (.npz), written atomically")
    parser.add_argument("--workers", type=int, default=1, help="processes computing fbank")
    args = parser.parse_args(argv)
    cmvn = compute_cmvn(args.manifest, workers=args.workers)
    cmvn.save(args.output)
    print(f"wrote {args.output}: {cmvn.utterances} utterances, {cmvn.frames} frames "
          f"({cmvn.frames / 100 / 3600:.2f} h), mean of means {cmvn.mean.mean():.3f}, mean std {cmvn.std.mean():.3f}")


if __name__ == "__main__":
    main()
