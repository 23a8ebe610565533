"""fast-hubert-dump: frame-level features of a manifest, stored as memory-mappable shards.

Reads a fairseq manifest (first line the audio root, then ``path<TAB>num_samples``) and writes,
into OUT_DIR, for shard R of N (a contiguous range of manifest rows):

  {split}_{R}_{N}.npy   float32 (frames, dim): the frames of every row, concatenated
  {split}_{R}_{N}.json  what was dumped: feature, dim, frame rate, manifest, rows, checkpoint
  {split}_{R}_{N}.len   frames per row, one line per row (written last: marks the shard done)

Features: ``mfcc`` (39 = 13 MFCC + delta + delta-delta, 100 Hz; HuBERT iteration 1),
``fbank`` (80-dim log-Mel, 100 Hz, optionally with --cmvn stats; k-means input: fbank precomputed
for training comes from fast-hubert-store-fbank), ``layer`` (output of
Transformer block --layer of a fast_hubert or stock fairseq hubert --checkpoint; 25 Hz for
the 40 ms fast_hubert model, 50 Hz for hubert). Finished shards are skipped when run again
with the same settings, so an interrupted job is resumed by re-running the same command.
Next step: fast-hubert-learn-kmeans.
"""

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ..data.batching import length_batches
from ..data.manifest import AudioManifest, read_manifest
from ..data.row_features import row_features
from ..features.kaldi_fbank import SAMPLE_RATE
from ..utils.cli import HelpFormatter, console_script
from ..utils.errors import DataError
from .extractors import build_extractor
from .feature_shards import ShardPaths, ShardWriter, read_meta, row_range

logger = logging.getLogger("fast_hubert.clustering")

# Settings that must match for a finished shard to be reused.
REQUEST_KEYS = (
    "feature",
    "cmvn",
    "checkpoint",
    "layer",
    "manifest",
    "manifest_rows",
    "rows",
    "rank",
    "nshard",
    "split",
)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _layer_features(
    extractor, manifest: AudioManifest, rows: List[int], batch_seconds: float
) -> Iterator[Tuple[int, np.ndarray]]:
    sizes = [manifest.num_samples[i] for i in rows]
    for batch in ([rows[k] for k in b] for b in length_batches(sizes, int(batch_seconds * SAMPLE_RATE))):
        wavs = [manifest.read_audio(i) for i in batch]
        yield from zip(batch, extractor.extract(wavs))


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
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict:
    """Dump one shard; returns its meta plus ``skipped`` (True when it was already finished)."""
    manifest = read_manifest(manifest_path)
    split = split or Path(manifest_path).stem
    start, end = row_range(len(manifest), rank, nshard)
    paths = ShardPaths.of(out_dir, split, rank, nshard)
    request = {
        "feature": feature,
        "cmvn": os.path.abspath(cmvn) if cmvn else None,
        "checkpoint": os.path.abspath(checkpoint) if checkpoint else None,
        "layer": layer,
        "manifest": os.path.abspath(manifest_path),
        "manifest_rows": len(manifest),
        "rows": [start, end],
        "rank": rank,
        "nshard": nshard,
        "split": split,
    }
    if feature != "layer":
        request["checkpoint"] = request["layer"] = None
    if feature != "fbank":
        request["cmvn"] = None
    if paths.is_finished() and not overwrite:
        meta = read_meta(paths)
        old = {k: meta.get(k) for k in REQUEST_KEYS}
        if old != request:
            diff = {k: (old[k], request[k]) for k in REQUEST_KEYS if old[k] != request[k]}
            raise DataError(
                paths.meta,
                f"a finished shard with other settings is in the way (old, new): {diff}",
                "use another output folder, delete that shard, or pass --overwrite",
            )
        return dict(meta, skipped=True)

    extractor = build_extractor(feature, cmvn=cmvn, checkpoint=checkpoint, layer=layer, device=device)
    rows = list(range(start, end))
    lengths = [extractor.num_frames(manifest.num_samples[i]) for i in rows]
    meta = dict(request, **extractor.describe())
    t0 = time.time()
    if feature == "layer":
        feats_iter = _layer_features(extractor, manifest, rows, batch_seconds)
    else:
        feats_iter = zip(rows, row_features(extractor.compute, manifest, rows, workers))
    with ShardWriter(paths, lengths, extractor.dim, meta) as writer:
        for i, feats in tqdm(feats_iter, total=len(rows), desc=f"dump {split} {rank}/{nshard}", disable=not progress):
            if feats.shape[0] != lengths[i - start]:
                raise DataError(
                    manifest.audio_path(i),
                    f"{feats.shape[0]} frames, expected {lengths[i - start]} from num_samples in {manifest.where(i)}",
                    "regenerate the manifest from the audio",
                )
            writer.write(i - start, feats)
        writer.meta["seconds"] = round(time.time() - t0, 2)
    return dict(writer.meta, skipped=False, frames=int(sum(lengths)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-dump", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("manifest", help="fairseq manifest (.tsv) of the split to dump")
    p.add_argument("out_dir", help="folder for the feature shards (created if missing)")
    p.add_argument(
        "--feature",
        required=True,
        choices=["mfcc", "fbank", "layer"],
        help="what to dump (fbank for training: fast-hubert-store-fbank)",
    )
    p.add_argument("--split", help="name used in the shard file names (default: the manifest's file stem)")
    p.add_argument("--cmvn", help="fbank only: CMVN stats (.npz from fast-hubert-cmvn) to normalise with")
    p.add_argument("--checkpoint", help="layer only: fairseq checkpoint (fast_hubert or stock hubert)")
    p.add_argument("--layer", type=int, help="layer only: 1-based Transformer block whose output is dumped")
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=100.0,
        help="layer only: seconds of (padded) audio per forward pass (fast_hubert; hubert runs one "
        "utterance at a time) (default: %(default)s)",
    )
    p.add_argument("--device", default=None, help="layer only: torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--nshard", type=int, default=1, help="number of shards the manifest is split into (default: %(default)s)"
    )
    p.add_argument(
        "--rank", type=int, default=0, help="which shard to dump (0-based); run one job per rank (default: %(default)s)"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="mfcc/fbank: processes computing features (default: %(default)s)"
    )
    p.add_argument("--overwrite", action="store_true", help="recompute the shard even if it is finished")
    return p


@console_script("fast-hubert-dump")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 <= args.rank < args.nshard:
        raise SystemExit(f"--rank must be in [0, {args.nshard}), got {args.rank}")
    if args.feature != "fbank" and args.cmvn:
        raise SystemExit("--cmvn applies to --feature fbank only")
    if args.feature == "layer" and (args.checkpoint is None or args.layer is None):
        raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
    meta = dump_split(
        args.manifest,
        args.out_dir,
        args.feature,
        split=args.split,
        nshard=args.nshard,
        rank=args.rank,
        cmvn=args.cmvn,
        checkpoint=args.checkpoint,
        layer=args.layer,
        device=args.device or default_device(),
        batch_seconds=args.batch_seconds,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    paths = ShardPaths.of(args.out_dir, meta["split"], args.rank, args.nshard)
    start, end = meta["rows"]
    if meta["skipped"]:
        print(f"{paths.npy} is already finished ({end - start} rows, {meta['feature']}): skipped")
    else:
        print(
            f"wrote {paths.npy}: rows {start}..{end - 1} of {meta['manifest_rows']}, {meta['frames']} frames "
            f"of {meta['feature']} (dim {meta['dim']}, {meta['frame_rate']:g} Hz) in {meta['seconds']:.1f} s"
        )


if __name__ == "__main__":
    main()
