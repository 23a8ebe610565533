"""fast-hubert-cmvn: global CMVN statistics of 80-dim fbank over a training manifest.

Reads every utterance of the manifest (fairseq format), computes Kaldi fbank and writes an
``.npz`` with per-bin ``mean`` and ``std`` that ``task.cmvn_stats_path`` loads. Dev/test sets
reuse the training statistics.
"""

import argparse

from ..data.cmvn_stats import compute_cmvn
from ..utils.cli import HelpFormatter, add_no_resample_argument, console_script


@console_script("fast-hubert-cmvn")
def main(argv=None):
    parser = argparse.ArgumentParser(prog="fast-hubert-cmvn", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("manifest", help="training manifest (.tsv): audio root line, then path<TAB>num_samples")
    parser.add_argument("--output", required=True, help="stats file to write (.npz), written atomically")
    parser.add_argument("--workers", type=int, default=1, help="processes computing fbank")
    add_no_resample_argument(parser)
    args = parser.parse_args(argv)
    cmvn = compute_cmvn(args.manifest, workers=args.workers, resample=not args.no_resample)
    cmvn.save(args.output)
    print(
        f"wrote {args.output}: {cmvn.utterances} utterances, {cmvn.frames} frames "
        f"({cmvn.frames / 100 / 3600:.2f} h), mean of means {cmvn.mean.mean():.3f}, mean std {cmvn.std.mean():.3f}"
    )


if __name__ == "__main__":
    main()
