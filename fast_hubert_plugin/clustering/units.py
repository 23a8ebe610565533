"""Frames to units, and units to label files: what every labelling path shares.

``fast-hubert-apply-kmeans`` (frames read from dumped shards) and ``fast-hubert-label`` (frames computed
on the fly) both turn frames into units with :class:`UnitLabeller` (nearest centroid, every n-th frame at
the label rate) and write ``{split}.{label}`` + ``dict.{label}.txt`` with :func:`write_label_files`,
after the checks the pretraining task runs at start-up.
"""

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..data.labels import check_label_lengths, check_units_in_dictionary, load_dictionary
from ..data.manifest import AudioManifest
from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.errors import DataError
from .kmeans import CentroidIndex, use_gpu


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
    """(n_clusters, dim) float32 centroids from fast-hubert-learn-kmeans, checked against the features' dim."""
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


class UnitLabeller:
    """Label lines of rows of frames: the nearest centroid of every ``step``-th frame, with unit counts.

    ``label_rows(feats, lengths)``: the frames of consecutive rows concatenated, (sum(lengths), dim) ->
    one line per row of space-separated units. A frame's unit does not depend on which rows it is
    searched with (:class:`~.kmeans.CentroidIndex`), so any grouping of rows gives the same lines.
    """

    def __init__(self, centroids: np.ndarray, step: int = 1, gpu: Optional[bool] = None, batch_size: int = 100000):
        self.index = CentroidIndex(centroids, use_gpu(gpu))
        self.step, self.batch_size = step, batch_size
        self.n_clusters = centroids.shape[0]
        self.counts = np.zeros(self.n_clusters, dtype=np.int64)  # units written, per unit
        self.sq_dist_sum, self.frames = 0.0, 0  # over every frame searched (not only those kept)

    def label_rows(self, feats: np.ndarray, lengths: Sequence[int]) -> List[str]:
        units, dists = self.index.assign(feats, self.batch_size)
        self.sq_dist_sum += float(dists.astype(np.float64).sum())
        self.frames += units.shape[0]
        lines, a = [], 0
        for n in lengths:
            kept = units[a : a + n : self.step]
            self.counts += np.bincount(kept, minlength=self.n_clusters)
            lines.append(" ".join(map(str, kept.tolist())))
            a += n
        return lines

    @property
    def mean_sq_dist(self) -> float:
        return self.sq_dist_sum / max(self.frames, 1)


def format_dictionary(counts: np.ndarray) -> str:
    return "".join(f"{unit} {int(c)}\n" for unit, c in enumerate(counts))


def write_label_files(
    lines: Sequence[str], counts: np.ndarray, manifest: AudioManifest, label_rate: float, label_dir, split: str, label
) -> dict:
    """Check ``lines`` (one per manifest row) as the pretraining task does, then write
    ``{label_dir}/{split}.{label}`` and ``dict.{label}.txt`` (``unit count`` for units 0..K-1)."""
    label_dir = Path(label_dir)
    label_path = label_dir / f"{split}.{label}"
    dict_path = label_dir / f"dict.{label}.txt"
    if len(lines) != len(manifest):
        raise DataError(
            label_path, f"{len(lines)} label lines for the {len(manifest)} rows of {manifest.path}", "re-run labelling"
        )
    check_label_lengths(lines, manifest.num_samples, label_rate, label_path, manifest.path)
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
        "rows": len(lines),
        "labels": int(counts.sum()),
        "label_rate": label_rate,
        "n_clusters": len(counts),
        "used_clusters": int((counts > 0).sum()),
    }


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """--label, --label-rate, --batch-size, --gpu: how frames become label files, for both labelling commands."""
    p.add_argument("--label", default="km", help="label file extension (task.labels), default km")
    p.add_argument(
        "--label-rate",
        type=float,
        default=None,
        help="labels per second (model.label_rate); must divide the feature rate; default: the feature "
        "rate. Fast-HuBERT and HuBERT pretraining use 50",
    )
    p.add_argument("--batch-size", type=int, default=100000, help="frames per FAISS search (default: %(default)s)")
    p.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search on the GPU (default: when FAISS sees one)",
    )


def describe_labels(s: dict) -> str:
    """One line on the label files a summary of :func:`write_label_files` (with ``mean_sq_dist``) describes."""
    return (
        f"wrote {s['label_path']} ({s['rows']} rows, {s['labels']} labels at {s['label_rate']:g} Hz) and "
        f"{s['dict_path']} ({s['n_clusters']} units, {s['used_clusters']} used); "
        f"mean squared distance {s['mean_sq_dist']:.4f}"
    )
