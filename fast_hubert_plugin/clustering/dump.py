"""fast-hubert-dump: frame-level features of a manifest, stored as memory-mappable shards.

Reads a fairseq manifest (first line the audio root, then ``path<TAB>num_samples``) and writes,
into OUT_DIR, for shard R of N (a contiguous range of manifest rows):

  {split}_{R}_{N}.npy   float32 or float16 (--dtype) (frames, dim): the frames of every row, concatenated
  {split}_{R}_{N}.json  what was dumped: feature, dim, frame rate, manifest, rows, checkpoint, sample
  {split}_{R}_{N}.len   frames per row, one line per row (written last: marks the shard done)

For k-means alone, --sample-fraction F dumps a random F of the utterances (the same ones however
the manifest is sharded; the others get 0 frames in the .len): learn-kmeans reads the sample, and
fast-hubert-label labels every utterance on the fly, with no full dump on disk (HuBERT's recipe
learns k-means on about 10 % of the data). --dtype float16 halves the disk of a full dump.

Features: ``mfcc`` (39 = 13 MFCC + delta + delta-delta, 100 Hz; HuBERT iteration 1),
``fbank`` (80-dim log-Mel, 100 Hz, optionally with --cmvn stats; k-means input: fbank precomputed
for training comes from fast-hubert-store-fbank), ``layer`` (output of
Transformer block --layer of a fast_hubert or stock fairseq hubert --checkpoint; 25 Hz for
the 40 ms fast_hubert model, 50 Hz for hubert). Finished shards are skipped when run again
with the same settings, so an interrupted job is resumed by re-running the same command.
A layer runs an utterance longer than --chunk-seconds in pieces, each with --chunk-context-seconds of
audio either side (bounded memory for long recordings; the frames near a cut see less context).
Next step: fast-hubert-learn-kmeans.
"""

import argparse
import logging
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from tqdm import tqdm

from ..data.manifest import read_manifest
from ..models.frame_features import Chunking
from ..utils.cli import HelpFormatter, console_script
from .extractors import FeatureSource, add_source_arguments, build_extractor, check_row_frames, source_options
from .feature_shards import ShardPaths, ShardWriter, check_same_request, read_meta, row_range, shard_request

logger = logging.getLogger("fast_hubert.clustering")

LEGACY_DEFAULTS = {"dtype": "float32"}  # shards written before the key existed
DTYPES = ("float32", "float16")


def sampled_rows(num_rows: int, fraction: float, seed: int = 0) -> np.ndarray:
    """The ceil(fraction x num_rows) rows a sampled dump keeps, sorted; drawn over the whole manifest,
    so every shard of any --nshard agrees (fairseq's learn_kmeans.py samples utterances too)."""
    if not 0 < fraction <= 1:
        raise SystemExit(f"--sample-fraction must be in (0, 1], got {fraction}")
    count = math.ceil(fraction * num_rows)
    return np.sort(np.random.default_rng(seed).choice(num_rows, count, replace=False))


def dump_split(
    manifest_path,
    out_dir,
    feature: str,
    split: Optional[str] = None,
    nshard: int = 1,
    rank: int = 0,
    cmvn: Optional[str] = None,
    checkpoint: Optional[str] = None,
    layer: Optional[int] = None,
    device: str = "cpu",
    batch_seconds: float = 100.0,
    chunking: Chunking = Chunking(),
    workers: int = 1,
    resample: bool = True,
    dtype: str = "float32",
    sample_fraction: Optional[float] = None,
    sample_seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict:
    """Dump one shard; returns its meta plus ``skipped`` (True when it was already finished). ``resample``
    False refuses audio that is not 16 kHz mono (``--no-resample``)."""
    manifest = read_manifest(manifest_path, resample=resample)
    split = split or Path(manifest_path).stem
    start, end = row_range(len(manifest), rank, nshard)
    paths = ShardPaths.of(out_dir, split, rank, nshard)
    if dtype not in DTYPES:
        raise SystemExit(f"--dtype must be one of {DTYPES}, got {dtype!r}")
    keep = set(range(start, end))
    sample = None
    if sample_fraction is not None:
        chosen = sampled_rows(len(manifest), sample_fraction, sample_seed)
        keep &= set(chosen.tolist())
        sample = {"fraction": sample_fraction, "seed": sample_seed, "rows": len(chosen)}
    source = FeatureSource(feature, cmvn, checkpoint, layer, device, batch_seconds, chunking, workers, resample)
    request = {
        **source.settings(),
        **shard_request(manifest_path, len(manifest), split, rank, nshard),
        "dtype": dtype,
        "sample": sample,
    }
    if paths.is_finished() and not overwrite:
        meta = read_meta(paths)
        check_same_request(paths.meta, meta, request, LEGACY_DEFAULTS)
        return dict(meta, skipped=True)

    extractor = build_extractor(source)
    rows = sorted(keep)
    lengths = [extractor.num_frames(manifest.num_samples[i]) if i in keep else 0 for i in range(start, end)]
    meta = dict(extractor.describe(), **request)
    t0 = time.time()
    with ShardWriter(paths, lengths, extractor.dim, meta, dtype) as writer:
        for i in set(range(start, end)) - keep:  # not in the sample: no frames
            writer.write(i - start, np.zeros((0, extractor.dim), np.float32))
        feats_iter = extractor.features_of_rows(manifest, rows, workers)
        for i, feats in tqdm(feats_iter, total=len(rows), desc=f"dump {split} {rank}/{nshard}", disable=not progress):
            check_row_frames(manifest, i, feats, lengths[i - start])
            writer.write(i - start, feats)
        writer.meta["seconds"] = round(time.time() - t0, 2)
    return dict(writer.meta, skipped=False, frames=int(sum(lengths)), rows_dumped=len(rows))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-dump", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("manifest", help="fairseq manifest (.tsv) of the split to dump")
    p.add_argument("out_dir", help="folder for the feature shards (created if missing)")
    add_source_arguments(p, "dump")
    p.add_argument(
        "--sample-fraction",
        type=float,
        default=None,
        help="dump only this random fraction (0..1] of the utterances, for fast-hubert-learn-kmeans "
        "(label with fast-hubert-label); default: every utterance",
    )
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the utterance sample (default: %(default)s)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="how the frames are stored; float16 halves the disk, values beyond +-65504 are refused "
        "(default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="recompute the shard even if it is finished")
    return p


@console_script("fast-hubert-dump")
def main(argv=None):
    args = build_parser().parse_args(argv)
    source, shard = source_options(args)
    meta = dump_split(
        args.manifest,
        args.out_dir,
        **{f.name: getattr(source, f.name) for f in fields(source)},
        **shard,
        dtype=args.dtype,
        sample_fraction=args.sample_fraction,
        sample_seed=args.sample_seed,
        overwrite=args.overwrite,
    )
    paths = ShardPaths.of(args.out_dir, meta["split"], args.rank, args.nshard)
    start, end = meta["rows"]
    if meta["skipped"]:
        print(f"{paths.npy} is already finished ({end - start} rows, {meta['feature']}): skipped")
    else:
        print(
            f"wrote {paths.npy}: {meta['rows_dumped']} of rows {start}..{end - 1} of {meta['manifest_rows']}, {meta['frames']} frames "
            f"of {meta['feature']} (dim {meta['dim']}, {meta['frame_rate']:g} Hz, {meta['dtype']}) in "
            f"{meta['seconds']:.1f} s"
        )
    return meta


if __name__ == "__main__":
    main()
