"""fast-hubert-apply-kmeans: label every frame with its nearest centroid; write the label files.

Reads the feature shards of one split (FEAT_DIR/{split}_{R}_{N}.npy/.len/.json from
fast-hubert-dump), the centroids (.npy from fast-hubert-learn-kmeans) and the split's manifest
(by default the one recorded in the shards), and writes into LABEL_DIR, atomically (earlier outputs
are removed first and the dictionary is renamed into place last, so a killed job never leaves a pair):

  {split}.{label}      one line per manifest row, same order: space-separated unit ids at
                       --label-rate (100 Hz features -> 50 Hz keeps every 2nd frame, 25 Hz every 4th)
  dict.{label}.txt     fairseq dictionary, "unit count" for every unit 0..K-1 (count may be 0),
                       counts taken from this split

The labels are checked before writing exactly as the pretraining task checks them (one line
per manifest row, duration within 0.1 s of the audio at --label-rate, units in the dictionary).
Pretrain with task.label_dir=LABEL_DIR task.labels='["{label}"]' model.label_rate=RATE.
"""

import argparse
import logging
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from ..data.manifest import read_manifest
from ..utils.cli import HelpFormatter, console_script
from ..utils.errors import DataError
from .feature_shards import load_split
from .units import UnitLabeller, add_search_arguments, describe_labels, label_step, load_centroids, write_label_files

logger = logging.getLogger("fast_hubert.clustering")


def row_groups(lengths: np.ndarray, max_frames: int) -> List[tuple]:
    """Consecutive row ranges [a, b) of about ``max_frames`` frames (at least one row each)."""
    groups, a, frames = [], 0, 0
    for i, n in enumerate(lengths):
        if i > a and frames + n > max_frames:
            groups.append((a, i))
            a, frames = i, 0
        frames += int(n)
    if a < len(lengths):
        groups.append((a, len(lengths)))
    return groups


def apply_kmeans(
    feat_dir,
    split: str,
    centroids_path,
    label_dir,
    label: str = "km",
    label_rate: Optional[float] = None,
    manifest_path: Optional[str] = None,
    gpu: Optional[bool] = None,
    batch_size: int = 100000,
    progress: bool = True,
) -> dict:
    """Write ``{label_dir}/{split}.{label}`` and ``dict.{label}.txt``; returns a summary dict."""
    shards = load_split(feat_dir, split)
    meta = shards[0].meta
    if meta.get("sample"):
        raise DataError(
            shards[0].paths.meta,
            f"these shards hold a sample of the utterances ({meta['sample']}), made for fast-hubert-learn-kmeans",
            "label every utterance on the fly (fast-hubert-label MANIFEST CENTROIDS LABEL_DIR --feature ...) or "
            "from a full dump (fast-hubert-dump without --sample-fraction)",
        )
    frame_rate = float(meta["frame_rate"])
    centroids = load_centroids(centroids_path, int(meta["dim"]), shards[0].paths.npy)
    step = label_step(frame_rate, label_rate, shards[0].paths.meta)
    manifest_path = manifest_path or meta["manifest"]
    manifest = read_manifest(manifest_path)
    rows = sum(len(s.lengths) for s in shards)
    if rows != len(manifest):
        raise DataError(
            manifest_path,
            f"{len(manifest)} rows but the features in {feat_dir} have {rows} rows",
            "pass the manifest the features were dumped from (--manifest)",
        )
    labeller = UnitLabeller(centroids, step, gpu, batch_size)
    lines: List[str] = []
    with tqdm(total=rows, desc=f"apply {split}", disable=not progress) as bar:
        for s in shards:
            off = s.offsets
            for a, b in row_groups(s.lengths, batch_size):  # rows a..b-1, about batch_size frames
                lines += labeller.label_rows(s.feats[off[a] : off[b]], s.lengths[a:b])
                bar.update(b - a)
    summary = write_label_files(lines, labeller.counts, manifest, frame_rate / step, label_dir, split, label)
    return dict(summary, mean_sq_dist=labeller.mean_sq_dist)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-apply-kmeans", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("feat_dir", help="folder with the feature shards written by fast-hubert-dump")
    p.add_argument("split", help="split to label (e.g. train, valid)")
    p.add_argument("centroids", help="centroids (.npy) from fast-hubert-learn-kmeans")
    p.add_argument("label_dir", help="folder for {split}.{label} and dict.{label}.txt (task.label_dir)")
    p.add_argument("--manifest", default=None, help="the split's manifest (default: the one recorded when dumping)")
    add_search_arguments(p)
    return p


@console_script("fast-hubert-apply-kmeans")
def main(argv=None):
    args = build_parser().parse_args(argv)
    s = apply_kmeans(
        args.feat_dir,
        args.split,
        args.centroids,
        args.label_dir,
        label=args.label,
        label_rate=args.label_rate,
        manifest_path=args.manifest,
        gpu=args.gpu,
        batch_size=args.batch_size,
    )
    print(describe_labels(s))
    return s


if __name__ == "__main__":
    main()
