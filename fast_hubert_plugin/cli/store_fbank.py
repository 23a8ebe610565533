"""fast-hubert-store-fbank: precompute the raw 80-dim fbank of a manifest for training.

Writes ``{output_dir}/{split}.fbank.npy`` (all frames, concatenated in manifest order) and
``{output_dir}/{split}.fbank.lengths.npy``; train with ``task.feature_dir={output_dir}``. For
users whose data loading, not the model, is the bottleneck. Re-running overwrites atomically.
The one way to precompute training fbank: ``fast-hubert-dump --feature fbank`` writes the
clustering's k-means input (shards, optionally CMVN-normalised), which training does not read.
"""

import argparse
import os

from tqdm import tqdm

from ..data.feature_store import store_paths, write_store
from ..data.manifest import read_manifest
from ..data.row_features import row_features
from ..features.kaldi_fbank import NUM_MEL_BINS, compute_fbank, num_fbank_frames
from ..utils.cli import HelpFormatter, add_no_resample_argument, console_script


@console_script("fast-hubert-store-fbank")
def main(argv=None):
    parser = argparse.ArgumentParser(prog="fast-hubert-store-fbank", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("manifest", help="fairseq manifest {split}.tsv; the split name is its file stem")
    parser.add_argument("--output-dir", required=True, help="folder for {split}.fbank.npy and its lengths")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16"],
        help="storage type: float16 halves the disk (log-Mel error ~1e-2)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes computing fbank (default: %(default)s)")
    add_no_resample_argument(parser)
    args = parser.parse_args(argv)

    manifest = read_manifest(args.manifest, resample=not args.no_resample)
    manifest.check_files_exist()
    split = os.path.splitext(os.path.basename(args.manifest))[0]
    lengths = [num_fbank_frames(n) for n in manifest.num_samples]
    write_store(
        args.output_dir,
        split,
        lengths,
        row_features(compute_fbank, manifest, workers=args.workers),
        NUM_MEL_BINS,
        args.dtype,
        progress=lambda r: tqdm(r, total=len(lengths), desc=f"fbank {split}"),
    )
    feats_path, _ = store_paths(args.output_dir, split)
    print(
        f"wrote {feats_path}: {len(lengths)} utterances, {sum(lengths)} frames "
        f"({sum(lengths) / 360000:.2f} h), {os.path.getsize(feats_path) / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
