"""Frames of many utterances in one memory-mapped array: every row's frames concatenated in
manifest order, with the rows' frame counts beside it. A few large files instead of one file per
utterance: no inode storm, and readers page in only the frames they touch.

:class:`FrameWriter` and :class:`FrameArray` write and read such an array; the two stores built on
them keep their own file names:

- precomputed fbank for training (``task.feature_dir``, from ``fast-hubert-store-fbank``):
  ``{dir}/{split}.fbank.npy`` (total_frames, 80), float32 or float16, and
  ``{dir}/{split}.fbank.lengths.npy`` (rows,) int64 frame counts (:class:`FbankStore`);
- the clustering's feature shards (``clustering/feature_shards.py``): ``{split}_{R}_{N}.npy``,
  with a ``.len`` text file and a ``.json`` of what was dumped.

Every file is written under a temporary name and renamed when complete.
"""

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np

from ..utils.atomic import atomic_path
from ..utils.errors import DataError

FLOAT16_MAX = float(np.finfo(np.float16).max)


def frame_offsets(lengths) -> np.ndarray:
    """Row i's frames are ``feats[offsets[i] : offsets[i + 1]]``."""
    return np.concatenate([[0], np.cumsum(lengths)])


class FrameWriter:
    """Writes a new ``(sum(lengths), dim)`` ``.npy``; use as a context manager, then
    ``write(row, feats)`` for every row.

    ``lengths`` (frames per row) must be known up front: the array is preallocated with
    ``np.lib.format.open_memmap`` and filled in place, so it never sits in memory. It is renamed
    into place on a clean exit with every row written, else removed.
    """

    def __init__(self, path, lengths: Sequence[int], dim: int, dtype: str = "float32"):
        self.path, self.dim, self.dtype = Path(path), int(dim), np.dtype(dtype)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = frame_offsets(self.lengths)
        self._ctx = self._array = None
        self._written = np.zeros(len(self.lengths), dtype=bool)

    def __enter__(self) -> "FrameWriter":
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        shape = (int(self.offsets[-1]), self.dim)
        self._array = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=shape)
        return self

    def write(self, row: int, feats: np.ndarray) -> None:
        """Store ``feats`` ``(lengths[row], dim)`` for row ``row`` (0-based)."""
        if feats.shape != (self.lengths[row], self.dim):
            raise ValueError(f"row {row}: expected features {(int(self.lengths[row]), self.dim)}, got {feats.shape}")
        if self.dtype == np.float16 and feats.size and np.abs(feats).max() > FLOAT16_MAX:
            raise DataError(
                self.path,
                f"row {row} has values up to {np.abs(feats).max():.4g}, beyond float16's range ({FLOAT16_MAX:g})",
                "store these features as float32",
            )
        self._array[self.offsets[row] : self.offsets[row + 1]] = feats
        self._written[row] = True

    def __exit__(self, exc_type, exc, tb):
        unfinished = None
        if exc_type is None and not self._written.all():
            unfinished = RuntimeError(f"{int((~self._written).sum())} rows of {self.path} were never written")
        if self._array is not None:
            self._array.flush()
            del self._array
            self._array = None
        failure = exc if exc_type is not None else unfinished
        # renames the .npy into place, or, told of the failure, removes the temporary file
        self._ctx.__exit__(None if failure is None else type(failure), failure, None)
        if unfinished is not None:
            raise unfinished
        return False


class FrameArray:
    """A finished array: ``feats`` (frames, dim) memory-mapped, ``lengths`` (rows,), ``offsets``."""

    def __init__(self, path, lengths, lengths_path, fix: str):
        self.path = Path(path)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = frame_offsets(self.lengths)
        self.feats = np.load(self.path, mmap_mode="r")
        if self.feats.ndim != 2 or self.feats.shape[0] != self.offsets[-1]:
            raise DataError(
                self.path,
                f"array {self.feats.shape} does not hold the {self.offsets[-1]} frames listed in {lengths_path}",
                fix,
            )

    def __len__(self) -> int:
        return len(self.lengths)

    # A memory map pickles by value: each loader worker started by spawn or forkserver (macOS, Python
    # >= 3.14) would get a copy of the whole array. Pickled, the array is its path; unpickled, the
    # file is mapped again and a worker pages in only the frames it reads.
    def __getstate__(self):
        return dict(self.__dict__, feats=None)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.feats = np.load(self.path, mmap_mode="r")

    def utterances(self) -> Iterator[np.ndarray]:
        """Features of each row in order: (frames_i, dim) views of the memory map."""
        for i in range(len(self.lengths)):
            yield self.feats[self.offsets[i] : self.offsets[i + 1]]


def store_paths(directory, split: str):
    d = Path(directory)
    return d / f"{split}.fbank.npy", d / f"{split}.fbank.lengths.npy"


class FbankStore(FrameArray):
    """The precomputed fbank of a split, read as float32 rows."""

    def __init__(self, directory, split: str):
        feats_path, lengths_path = store_paths(directory, split)
        fix = f"create it with `fast-hubert-store-fbank MANIFEST --output-dir {directory}`"
        for p in (feats_path, lengths_path):
            if not p.is_file():
                raise DataError(p, "precomputed fbank file not found", fix)
        super().__init__(feats_path, np.load(lengths_path), lengths_path, fix)

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
    rows: Union[Callable[[int], np.ndarray], Iterable[np.ndarray]],
    dim: int,
    dtype: str = "float32",
    progress=None,
) -> None:
    """Write rows 0..n-1 ((lengths[i], dim) each: ``rows(i)``, or the arrays ``rows`` yields in
    order) into a new store; ``progress`` may wrap the rows' iterator (e.g. tqdm)."""
    feats_path, lengths_path = store_paths(directory, split)
    lengths = np.asarray(lengths, dtype=np.int64)
    frames = map(rows, range(len(lengths))) if callable(rows) else iter(rows)
    # The lengths file is the store's "finished" mark: removed before anything is written, renamed in
    # last, so a killed rewrite never leaves old lengths beside new frames.
    if os.path.exists(lengths_path):
        os.remove(lengths_path)
    with atomic_path(lengths_path) as tmp_lengths, FrameWriter(feats_path, lengths, dim, dtype) as out:
        for i, feats in enumerate(frames if progress is None else progress(frames)):
            out.write(i, feats)
        np.save(tmp_lengths, lengths)
