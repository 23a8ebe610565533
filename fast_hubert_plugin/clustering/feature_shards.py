"""Memory-mappable feature shards: the files between ``dump`` and ``learn``/``apply``.

A split dumped in N shards gives, per rank R (rows ``row_range(num_rows, R, N)`` of the
manifest, contiguous and in manifest order):

- ``{split}_{R}_{N}.npy``: float32 or float16 ``(frames, dim)``, the frames of every row concatenated
  (a sampled dump: 0 frames for the rows left out);
- ``{split}_{R}_{N}.json``: what was dumped (feature kind, dim, frame rate, manifest, rows);
- ``{split}_{R}_{N}.len``: one line per row, its number of frames.

The frames are one array of ``data/feature_store.py`` (the store the training's precomputed fbank
uses too). Each file is written under a temporary name and renamed; the ``.len`` file is written last,
so a shard is finished exactly when its ``.len`` exists. A crash leaves at most a hidden
``.{name}.*.tmp.*`` file, never a finished-looking shard.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.feature_store import FrameArray, FrameWriter
from ..utils.atomic import atomic_write_text
from ..utils.errors import DataError


def row_range(num_rows: int, rank: int, nshard: int) -> Tuple[int, int]:
    """Rows ``[start, end)`` of shard ``rank`` out of ``nshard`` (sizes differ by at most 1)."""
    if nshard < 1 or not 0 <= rank < nshard:
        raise ValueError(f"need 0 <= rank < nshard, got rank={rank} nshard={nshard}")
    return num_rows * rank // nshard, num_rows * (rank + 1) // nshard


def shard_request(manifest_path, num_rows: int, split: str, rank: int, nshard: int) -> Dict:
    """Which rows of which manifest a shard holds, as its ``.json`` records them."""
    start, end = row_range(num_rows, rank, nshard)
    return {
        "manifest": os.path.abspath(manifest_path),
        "manifest_rows": num_rows,
        "rows": [start, end],
        "rank": rank,
        "nshard": nshard,
        "split": split,
    }


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

    The frames go through :class:`~..data.feature_store.FrameWriter` (preallocated, filled in
    place); the ``.json`` and then the ``.len`` follow once the ``.npy`` is in place. A finished shard
    being rewritten (``--overwrite``) loses its ``.len`` first: a job killed after the new ``.npy`` is in
    place never leaves it beside the old ``.json`` and ``.len`` as a finished-looking shard.
    """

    def __init__(self, paths: ShardPaths, lengths: List[int], dim: int, meta: Dict, dtype: str = "float32"):
        self.paths, self.meta = paths, dict(meta)
        self.frames = FrameWriter(paths.npy, lengths, dim, dtype)
        self.lengths = self.frames.lengths

    def __enter__(self) -> "ShardWriter":
        self.paths.len.unlink(missing_ok=True)  # the shard stops being finished before anything changes
        self.frames.__enter__()
        return self

    def write(self, row: int, feats: np.ndarray) -> None:
        """Store ``feats`` ``(lengths[row], dim)`` for row ``row`` (0-based within the shard)."""
        self.frames.write(row, feats)

    def __exit__(self, exc_type, exc, tb):
        self.frames.__exit__(exc_type, exc, tb)  # renames the .npy into place, or raises
        if exc_type is None:
            atomic_write_text(self.paths.meta, json.dumps(self.meta, indent=1, sort_keys=True) + "\n")
            atomic_write_text(self.paths.len, "".join(f"{n}\n" for n in self.lengths))  # last: marks it finished
        return False


class Shard(FrameArray):
    """A finished shard: ``feats`` (frames, dim) memory-mapped, ``lengths`` (rows,), ``meta``."""

    def __init__(self, paths: ShardPaths, lengths: np.ndarray, meta: Dict, fix: str):
        super().__init__(paths.npy, lengths, paths.len, fix)
        self.paths, self.meta = paths, meta


def read_meta(paths: ShardPaths) -> Dict:
    with open(paths.meta, encoding="utf-8") as f:
        return json.load(f)


def load_shard(paths: ShardPaths) -> Shard:
    fix = "re-run fast-hubert-dump for this shard (delete the broken files first)"
    if not paths.is_finished():
        raise DataError(paths.len, "feature shard is not finished (no .len/.npy/.json)", fix)
    return Shard(paths, np.loadtxt(paths.len, dtype=np.int64, ndmin=1), read_meta(paths), fix)


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
    keys = ("feature", "dim", "frame_rate", "manifest_rows", "sample")
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


def check_same_request(meta_path, meta: Dict, request: Dict, legacy: Optional[Dict] = None) -> None:
    """A finished output is reused only when made with the settings ``request`` now asks for (a key its
    ``meta`` lacks, written before the key existed, counts as ``legacy``'s value); else DataError."""
    legacy = legacy or {}
    old = {k: meta.get(k, legacy.get(k)) for k in request}
    if old != request:
        diff = {k: (old[k], request[k]) for k in request if old[k] != request[k]}
        raise DataError(
            meta_path,
            f"a finished output with other settings is in the way (old, new): {diff}",
            "use another output folder, delete it, or pass --overwrite",
        )
