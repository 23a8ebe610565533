"""Features of a manifest's rows, computed in worker processes: the one loop over the audio of
``fast-hubert-cmvn``, ``fast-hubert-store-fbank`` and ``fast-hubert-dump`` (input features)."""

import multiprocessing
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .manifest import AudioManifest

_WORKER = {}


def _init_worker(compute, manifest) -> None:
    import torch

    torch.set_num_threads(1)  # the workers are the parallelism: N workers use N cores, not N x cores
    _WORKER["compute"], _WORKER["manifest"] = compute, manifest


def _compute_row(i: int) -> np.ndarray:
    return _WORKER["compute"](_WORKER["manifest"].read_audio(i))


def row_features(
    compute: Callable[[np.ndarray], np.ndarray],
    manifest: AudioManifest,
    rows: Optional[Iterable[int]] = None,
    workers: int = 1,
    chunksize: int = 4,
) -> Iterator[np.ndarray]:
    """``compute(waveform)`` of each row (default: every row), in row order; with ``workers`` > 1
    in that many processes (``compute`` must then pickle: a module function or a bound method).

    The workers are spawned, not forked: a child forked after the parent ran torch's OpenMP thread
    pool hangs in its first parallel region (GNU libgomp), so a CLI that computed anything before
    would deadlock."""
    rows = range(len(manifest)) if rows is None else rows
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(workers, initializer=_init_worker, initargs=(compute, manifest)) as pool:
            yield from pool.imap(_compute_row, rows, chunksize=chunksize)
    else:
        for i in rows:
            yield compute(manifest.read_audio(i))
