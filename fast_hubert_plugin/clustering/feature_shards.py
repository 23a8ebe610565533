"""Memory-mappable feature shards: the files between ``dump`` and ``learn``/``apply``.

A split dumped in N shards gives, per rank R (rows ``row_range(num_rows, R, N)`` of the
manifest, contiguous and in manifest order):

- ``{split}_{R}_{N}.npy``: float32 ``(frames, dim)``, the frames of every row concatenated;
- ``{split}_{R}_{N}.json``: what was dumped (feature kind, dim, frame rate, manifest, rows);
- ``{split}_{R}_{N}.len``: one line per row, its number of frames.

Each file is written under a temporary name and renamed; the ``.len`` file is written last,
so a shard is finished exactly when its ``.len`` exists. A crash leaves at most a hidden
``.{name}.*.tmp.*`` file, never a finished-looking shard.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np

from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.errors import DataError


def row_range(num_rows: int, rank: int, nshard: int) -> Tuple[int, int]:
    """Rows ``[start, end)`` of shard ``rank`` out of ``nshard`` (sizes differ by at most 1)."""
    if nshard < 1 or not 0 <= rank < nshard:
        raise ValueError(f"need 0 <= rank < nshard, got rank={rank} nshard={nshard}")
    return num_rows * rank // nshard, num_rows * (rank + 1) // nshard


@dataclass(frozen=True)
class ShardPaths:
    npy: Path
    len: Path
    meta: Path

    @classmethod
    def of(cls, feat_dir, split: str, rank: int, nshard: int) -> "ShardPaths":
        stem = Path(feat_dir) / f"{split}_{rank}_{nshard}"
        return cls(stem.with_suffix(".npy"), stem.with_suffix(".len"), stem.with_suffix(".json"))

    def is_finished(self) -> bool:
        return self.len.is_file() and self.npy.is_file() and self.meta.is_file()


class ShardWriter:
    """Writes one shard; use as a context manager, then ``write(row, feats)`` for every row.

    ``lengths`` (frames per row) must be known up front: the ``.npy`` is preallocated with
    ``np.lib.format.open_memmap`` and filled in place, so a shard never sits in memory.
    """

    def __init__(self, paths: ShardPaths, lengths: List[int], dim: int, meta: Dict):
        self.paths, self.dim, self.meta = paths, int(dim), dict(meta)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self._ctx = None
        self._array = None
        self._written = np.zeros(len(self.lengths), dtype=bool)

    def __enter__(self) -> "ShardWriter":
        self._ctx = atomic_path(self.paths.npy)
        tmp = self._ctx.__enter__()
        self._array = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(int(self.offsets[-1]), self.dim)
        )
        return self

    def write(self, row: int, feats: np.ndarray) -> None:
        """Store ``feats`` ``(lengths[row], dim)`` for row ``row`` (0-based within the shard)."""
        if feats.shape != (self.lengths[row], self.dim):
            raise ValueError(f"row {row}: expected features {(int(self.lengths[row]), self.dim)}, got {feats.shape}")
        self._array[self.offsets[row] : self.offsets[row + 1]] = feats
        self._written[row] = True

    def __exit__(self, exc_type, exc, tb):
        ok = exc_type is None
        if ok and not self._written.all():
            missing = int((~self._written).sum())
            exc = RuntimeError(f"{missing} rows of {self.paths.npy} were never written")
            ok = False
        if self._array is not None:
            self._array.flush()
            del self._array
            self._array = None
        if not ok:
            self._ctx.__exit__(type(exc), exc, None)
            if exc_type is None:
                raise exc
            return False
        self._ctx.__exit__(None, None, None)  # renames the .npy into place
        atomic_write_text(self.paths.meta, json.dumps(self.meta, indent=1, sort_keys=True) + "\n")
        atomic_write_text(self.paths.len, "".join(f"{n}\n" for n in self.lengths))  # last: marks it finished
        return False


@dataclass
class Shard:
    """A finished shard: ``feats`` (frames, dim) memory-mapped, ``lengths`` (rows,), ``meta``."""

    paths: ShardPaths
    feats: np.ndarray
    lengths: np.ndarray
    meta: Dict

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)])

    def utterances(self) -> Iterator[np.ndarray]:
        """Features of each row in order: (frames_i, dim) views of the memory map."""
        off = self.offsets
        for i in range(len(self.lengths)):
            yield self.feats[off[i] : off[i + 1]]


def read_meta(paths: ShardPaths) -> Dict:
    with open(paths.meta, encoding="utf-8") as f:
        return json.load(f)


def load_shard(paths: ShardPaths) -> Shard:
    fix = "re-run fast-hubert-dump for this shard (delete the broken files first)"
    if not paths.is_finished():
        raise DataError(paths.len, "feature shard is not finished (no .len/.npy/.json)", fix)
    lengths = np.loadtxt(paths.len, dtype=np.int64, ndmin=1)
    feats = np.load(paths.npy, mmap_mode="r")
    meta = read_meta(paths)
    if feats.ndim != 2 or feats.shape[0] != lengths.sum():
        raise DataError(
            paths.npy, f"array {feats.shape} does not hold the {lengths.sum()} frames listed in {paths.len}", fix
        )
    return Shard(paths, feats, lengths, meta)


def find_shards(feat_dir, split: str) -> List[ShardPaths]:
    """All shards of ``split`` in ``feat_dir`` in rank order; every one must be finished."""
    feat_dir = Path(feat_dir)
    found = {}
    for p in feat_dir.glob(f"{split}_*_*.len"):
        parts = p.stem[len(split) + 1 :].split("_")
        if len(parts) == 2 and all(s.isdigit() for s in parts):
            found.setdefault(int(parts[1]), set()).add(int(parts[0]))
    if not found:
        raise DataError(
            feat_dir / f"{split}_0_1.len",
            f"no finished feature shards of split '{split}'",
            "run fast-hubert-dump for this split (all ranks) into this folder first",
        )
    if len(found) > 1:
        raise DataError(
            feat_dir,
            f"shards of '{split}' from different --nshard values {sorted(found)}",
            "delete the shards of the runs you do not want",
        )
    nshard, ranks = next(iter(found.items()))
    missing = sorted(set(range(nshard)) - ranks)
    if missing:
        raise DataError(
            feat_dir / f"{split}_{missing[0]}_{nshard}.len",
            f"shard(s) {missing} of {nshard} are missing or unfinished",
            f"run fast-hubert-dump ... --nshard {nshard} --rank R for each missing R",
        )
    return [ShardPaths.of(feat_dir, split, r, nshard) for r in range(nshard)]


def load_split(feat_dir, split: str) -> List[Shard]:
    """Every shard of a split, checked to be consistent (same feature, dim, frame rate, manifest)."""
    shards = [load_shard(p) for p in find_shards(feat_dir, split)]
    keys = ("feature", "dim", "frame_rate", "manifest_rows")
    first = {k: shards[0].meta.get(k) for k in keys}
    for s in shards[1:]:
        other = {k: s.meta.get(k) for k in keys}
        if other != first:
            raise DataError(
                s.paths.meta,
                f"shard settings {other} differ from {shards[0].paths.meta}: {first}",
                "re-dump all shards of the split with the same settings",
            )
    rows = sum(len(s.lengths) for s in shards)
    if rows != first["manifest_rows"]:
        raise DataError(
            shards[-1].paths.len,
            f"shards hold {rows} rows, the manifest had {first['manifest_rows']}",
            "re-dump the split",
        )
    return shards


def same_settings(a: Dict, b: Dict) -> bool:
    """Whether two shard metas describe the same dump (ignoring bookkeeping such as timings)."""
    skip = {"seconds"}
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def remove_shard(paths: ShardPaths) -> None:
    for p in (paths.len, paths.meta, paths.npy):  # .len first: the shard stops being finished
        if p.exists():
            os.unlink(p)
