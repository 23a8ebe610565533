"""Precomputed fbank stored as one large memory-mappable array per split, with offsets.

``{dir}/{split}.fbank.npy``   (total_frames, 80), float32 or float16, rows concatenated
``{dir}/{split}.fbank.lengths.npy``   (rows,) int64 frame counts, in manifest order

A few large files instead of one file per utterance: no inode storm, and readers page in only
the frames they touch. Both files are written under temporary names and renamed at the end.
"""

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..utils.atomic import atomic_path
from ..utils.errors import DataError


def store_paths(directory, split: str):
    d = Path(directory)
    return d / f"{split}.fbank.npy", d / f"{split}.fbank.lengths.npy"


class FbankStore:
    def __init__(self, directory, split: str):
        feats_path, lengths_path = store_paths(directory, split)
        fix = f"create it with `fast-hubert-store-fbank MANIFEST --output-dir {directory}`"
        for p in (feats_path, lengths_path):
            if not p.is_file():
                raise DataError(p, "precomputed fbank file not found", fix)
        self.path = feats_path
        self.lengths = np.load(lengths_path)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.feats = np.load(feats_path, mmap_mode="r")
        if self.feats.shape[0] != self.offsets[-1]:
            raise DataError(
                feats_path, f"{self.feats.shape[0]} frames but the lengths file sums to {self.offsets[-1]}", fix
            )

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, row: int) -> np.ndarray:
        return np.asarray(self.feats[self.offsets[row] : self.offsets[row + 1]], dtype=np.float32)

    def check_matches(self, expected_lengths: Sequence[int], manifest_path: str) -> None:
        if len(self.lengths) != len(expected_lengths):
            raise DataError(
                self.path,
                f"{len(self.lengths)} rows but the manifest {manifest_path} has {len(expected_lengths)}",
                "recompute the store from this manifest",
            )
        diff = np.nonzero(self.lengths != np.asarray(expected_lengths))[0]
        if len(diff):
            i = int(diff[0])
            raise DataError(
                self.path,
                f"row {i} has {self.lengths[i]} frames, the manifest's num_samples give {expected_lengths[i]} "
                f"(manifest line {i + 2})",
                "recompute the store from this manifest",
            )


def write_store(
    directory,
    split: str,
    lengths: Sequence[int],
    compute_row: Callable[[int], np.ndarray],
    dim: int,
    dtype: str = "float32",
    progress=None,
) -> None:
    """Write rows 0..n-1 (``compute_row(i)`` -> (lengths[i], dim)) into a new store."""
    feats_path, lengths_path = store_paths(directory, split)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with atomic_path(feats_path) as tmp_feats, atomic_path(lengths_path) as tmp_lengths:
        out = np.lib.format.open_memmap(tmp_feats, mode="w+", dtype=np.dtype(dtype), shape=(int(offsets[-1]), dim))
        rows = range(len(lengths)) if progress is None else progress(range(len(lengths)))
        for i in rows:
            f = compute_row(i)
            if f.shape != (lengths[i], dim):
                raise ValueError(f"row {i}: got features {f.shape}, expected {(int(lengths[i]), dim)}")
            out[offsets[i] : offsets[i + 1]] = f
        out.flush()
        del out
        np.save(tmp_lengths, lengths)
