"""fast-hubert-extract: dump one layer's features of a manifest to a memory-mappable array.

Reads a fairseq manifest (audio root line, then path<TAB>num_samples) and a fast-hubert
checkpoint, pretrained (fast_hubert) or fine-tuned (hubert_ctc). Writes, into --output-dir, the
same shard files as fast-hubert-dump (so fast-hubert-learn-kmeans / -apply-kmeans read them):

  {split}_{rank}_{nshard}.npy   float32 (total frames, dim): every utterance's frames, in
                                manifest order (np.load(..., mmap_mode="r"))
  {split}_{rank}_{nshard}.len   frames per utterance, one line per manifest row
  {split}_{rank}_{nshard}.json  what was extracted (checkpoint, layer, dim, frame rate)

Layer 0 is the Transformer input (projected subsampler features), layer L in 1..N the output of
block L. Frames at 25 Hz for the 40 ms model. Files are written atomically (the .len last).
Utterances are batched by length (--max-tokens fbank frames per batch); padding does not
change the features.
"""
import argparse
import logging
import os

import torch
from tqdm import tqdm

from ..clustering.feature_shards import ShardPaths, ShardWriter, row_range
from ..data.manifest import read_manifest
from ..features.fbank import num_fbank_frames
from ..utils.errors import DataError
from .batching import fbank_batches
from .layer_features import FeatureExtractor

logger = logging.getLogger("fast_hubert.extract")


def extract_manifest(extractor: FeatureExtractor, manifest_path: str, layer: int, output_dir: str, split: str,
                     rank: int = 0, nshard: int = 1, max_tokens: int = 16000, num_workers: int = 0,
                     progress: bool = True) -> ShardPaths:
    manifest = read_manifest(manifest_path)
    manifest.check_files_exist()
    start, end = row_range(len(manifest), rank, nshard)
    rows = list(range(start, end))
    layers = extractor.resolve_layers([layer])
    lengths = [extractor.num_frames(num_fbank_frames(manifest.num_samples[r])) for r in rows]
    meta = {"feature": "layer", "checkpoint": extractor.checkpoint, "layer": layer,
            "dim": extractor.dim, "frame_rate": extractor.frame_rate, "manifest": os.path.abspath(manifest_path),
            "rows": [start, end]}
    paths = ShardPaths.of(output_dir, split, rank, nshard)
    os.makedirs(output_dir, exist_ok=True)
    with ShardWriter(paths, lengths, extractor.dim, meta) as writer:
        for ids, source, padding_mask in tqdm(fbank_batches(manifest, max_tokens, num_workers, rows), desc=f"extract {split}",
                                              disable=not progress):
            out, _ = extractor.forward_layers(source, padding_mask, layers)
            feats = out[layer].float().cpu()
            for b, i in enumerate(ids.tolist()):
                writer.write(i, feats[b, : lengths[i]].numpy())
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="fast-hubert-extract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="fast-hubert checkpoint (.pt): pretrained or fine-tuned")
    parser.add_argument("manifest", help="fairseq manifest (.tsv) of the utterances to extract")
    parser.add_argument("--layer", type=int, required=True, help="0: Transformer input; 1..N: output of block L")
    parser.add_argument("--output-dir", required=True, help="folder for {split}_{rank}_{nshard}.npy/.len/.json")
    parser.add_argument("--split", help="name of the outputs (default: the manifest's file name without .tsv)")
    parser.add_argument("--rank", type=int, default=0, help="this shard's index (rows split into --nshard parts)")
    parser.add_argument("--nshard", type=int, default=1, help="number of shards")
    parser.add_argument("--max-tokens", type=int, default=16000, help="fbank frames (100 per second) per batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader processes computing fbank")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        split = args.split or os.path.splitext(os.path.basename(args.manifest))[0]
        extractor = FeatureExtractor.from_checkpoint(args.checkpoint, args.device)
        paths = extract_manifest(extractor, args.manifest, args.layer, args.output_dir, split, args.rank, args.nshard,
                                 args.max_tokens, args.num_workers, progress=not args.quiet)
        print(f"wrote {paths.npy} (layer {args.layer}, dim {extractor.dim}, {extractor.frame_rate:g} frames/s), "
              f"{paths.len}, {paths.meta}")
    except DataError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()
