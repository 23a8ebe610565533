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
from pathlib import Path
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from ..data.labels import check_label_lengths, check_units_in_dictionary, load_dictionary
from ..data.manifest import read_manifest
from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.cli import HelpFormatter, console_script
from ..utils.errors import DataError
from .feature_shards import load_split
from .kmeans import assign, make_index, use_gpu

logger = logging.getLogger("fast_hubert.clustering")


def label_step(frame_rate: float, label_rate: Optional[float], where) -> int:
    """Frames per label: 1 keeps every frame, 2 every 2nd (100 Hz -> 50 Hz), ..."""
    if label_rate is None:
        return 1
    ratio = frame_rate / label_rate if label_rate > 0 else 0
    step = int(round(ratio))
    if label_rate <= 0 or step < 1 or abs(ratio - step) > 1e-6:
        options = [f"{frame_rate / s:g}" for s in (1, 2, 4, 5, 10) if frame_rate / s >= 10]
        raise DataError(
            where,
            f"--label-rate {label_rate:g} Hz cannot be made from features at {frame_rate:g} Hz "
            "(labels keep every n-th frame; they are never interpolated)",
            f"use a rate that divides {frame_rate:g} Hz, e.g. {', '.join(options)}, or dump features at a higher rate",
        )
    return step


def load_centroids(path, feature_dim: int, feat_where) -> np.ndarray:
    path = str(path)
    fix = "use the centroids learned on features of the same kind (fast-hubert-learn-kmeans)"
    try:
        centroids = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(path, "centroids file not found", fix) from None
    except (ValueError, OSError) as e:
        raise DataError(path, f"not a .npy array ({e})", fix) from None
    if centroids.ndim != 2 or centroids.shape[0] < 1:
        raise DataError(path, f"centroids must be a (n_clusters, dim) array, got shape {centroids.shape}", fix)
    if centroids.shape[1] != feature_dim:
        raise DataError(
            path,
            f"centroids have dim {centroids.shape[1]} but the features in {feat_where} have dim {feature_dim}",
            fix,
        )
    return np.ascontiguousarray(centroids, dtype=np.float32)


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


def format_dictionary(counts: np.ndarray) -> str:
    return "".join(f"{unit} {int(c)}\n" for unit, c in enumerate(counts))


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
    frame_rate = float(meta["frame_rate"])
    centroids = load_centroids(centroids_path, int(meta["dim"]), shards[0].paths.npy)
    step = label_step(frame_rate, label_rate, shards[0].paths.meta)
    rate = frame_rate / step
    manifest_path = manifest_path or meta["manifest"]
    manifest = read_manifest(manifest_path)
    rows = sum(len(s.lengths) for s in shards)
    if rows != len(manifest):
        raise DataError(
            manifest_path,
            f"{len(manifest)} rows but the features in {feat_dir} have {rows} rows",
            "pass the manifest the features were dumped from (--manifest)",
        )
    index = make_index(centroids, use_gpu(gpu))
    k = centroids.shape[0]
    counts = np.zeros(k, dtype=np.int64)
    lines: List[str] = []
    total_sq, total_frames = 0.0, 0
    with tqdm(total=rows, desc=f"apply {split}", disable=not progress) as bar:
        for s in shards:
            off = s.offsets
            for a, b in row_groups(s.lengths, batch_size):  # rows a..b-1, about batch_size frames
                labels, dists = assign(s.feats[off[a] : off[b]], index, batch_size)
                total_sq += float(dists.astype(np.float64).sum())
                total_frames += labels.shape[0]
                for i in range(a, b):
                    units = labels[off[i] - off[a] : off[i + 1] - off[a] : step]
                    counts += np.bincount(units, minlength=k)
                    lines.append(" ".join(map(str, units.tolist())))
                bar.update(b - a)
    label_dir = Path(label_dir)
    label_path = label_dir / f"{split}.{label}"
    dict_path = label_dir / f"dict.{label}.txt"
    check_label_lengths(lines, manifest.num_samples, rate, label_path, manifest_path)
    # Earlier outputs go first and the dictionary is renamed into place last: a job killed on the way
    # leaves at most labels without their dictionary (the task refuses them), never a finished-looking pair.
    for old in (dict_path, label_path):
        old.unlink(missing_ok=True)
    with atomic_path(dict_path) as dict_tmp:
        dict_tmp.write_text(format_dictionary(counts), encoding="utf-8")
        check_units_in_dictionary(lines, load_dictionary(dict_tmp), label_path, dict_path)
        atomic_write_text(label_path, "".join(line + "\n" for line in lines))
    return {
        "label_path": str(label_path),
        "dict_path": str(dict_path),
        "rows": rows,
        "labels": int(counts.sum()),
        "label_rate": rate,
        "n_clusters": k,
        "used_clusters": int((counts > 0).sum()),
        "mean_sq_dist": total_sq / max(total_frames, 1),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-apply-kmeans", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("feat_dir", help="folder with the feature shards written by fast-hubert-dump")
    p.add_argument("split", help="split to label (e.g. train, valid)")
    p.add_argument("centroids", help="centroids (.npy) from fast-hubert-learn-kmeans")
    p.add_argument("label_dir", help="folder for {split}.{label} and dict.{label}.txt (task.label_dir)")
    p.add_argument("--label", default="km", help="label file extension (task.labels), default km")
    p.add_argument(
        "--label-rate",
        type=float,
        default=None,
        help="labels per second (model.label_rate); must divide the feature rate; default: the feature "
        "rate. Fast-HuBERT and HuBERT pretraining use 50",
    )
    p.add_argument("--manifest", default=None, help="the split's manifest (default: the one recorded when dumping)")
    p.add_argument("--batch-size", type=int, default=100000, help="frames per FAISS search (default: %(default)s)")
    p.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search on the GPU (default: when FAISS sees one)",
    )
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
    print(
        f"wrote {s['label_path']} ({s['rows']} rows, {s['labels']} labels at {s['label_rate']:g} Hz) and "
        f"{s['dict_path']} ({s['n_clusters']} units, {s['used_clusters']} used); "
        f"mean squared distance {s['mean_sq_dist']:.4f}"
    )
    return s


if __name__ == "__main__":
    main()
