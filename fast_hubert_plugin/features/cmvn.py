"""Global CMVN: per-bin mean and std of fbank over the training set, applied as (x - mean) / std.

Stats file: ``.npz`` with ``mean`` and ``std`` (float32, one value per bin; the same keys the
official Fast-HuBERT ``stats_npz_path`` uses), plus ``frames`` and ``utterances`` counted.
The official code's ``global_cmvn.npy`` (``np.save`` of a dict ``{"mean": ..., "std": ...}``, a
pickled object array) is read too, by an unpickler that accepts numpy arrays and nothing else.
"""

import pickle
from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_path
from ..utils.errors import DataError

STD_FLOOR_VAR = 1e-8


class CMVNAccumulator:
    """Sums in float64 so 1000 h of frames do not lose precision."""

    def __init__(self, dim: int):
        self.dim = dim
        self.frames = 0
        self.utterances = 0
        self.sum = np.zeros(dim, dtype=np.float64)
        self.sum_sq = np.zeros(dim, dtype=np.float64)

    def add(self, feats: np.ndarray) -> None:
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"expected (frames, {self.dim}) features, got {feats.shape}")
        f = feats.astype(np.float64)
        self.sum += f.sum(0)
        self.sum_sq += (f * f).sum(0)
        self.frames += f.shape[0]
        self.utterances += 1

    def finalize(self) -> "GlobalCMVN":
        if self.frames == 0:
            raise ValueError("no frames accumulated: the manifest has no usable audio")
        mean = self.sum / self.frames
        var = self.sum_sq / self.frames - mean * mean
        std = np.sqrt(np.maximum(var, STD_FLOOR_VAR))
        return GlobalCMVN(mean, std, frames=self.frames, utterances=self.utterances)


class GlobalCMVN:
    def __init__(self, mean: np.ndarray, std: np.ndarray, frames: int = 0, utterances: int = 0):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.inv_std = (1.0 / self.std).astype(np.float32)
        self.frames, self.utterances = int(frames), int(utterances)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.mean) * self.inv_std

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            np.savez(tmp, mean=self.mean, std=self.std, frames=self.frames, utterances=self.utterances)

    @classmethod
    def load(cls, path, expected_dim: int = None) -> "GlobalCMVN":
        path = Path(path)
        fix = "compute it with `fast-hubert-cmvn TRAIN_MANIFEST --output STATS.npz` and set task.cmvn_stats_path"
        if not path.is_file():
            raise DataError(path, "CMVN stats file not found", fix)
        try:
            if path.suffix == ".npy":
                z = read_npy_dict(path)
            else:
                with np.load(path, allow_pickle=False) as npz:
                    z = {key: npz[key] for key in npz.files}
            mean, std = np.asarray(z["mean"], dtype=np.float64), np.asarray(z["std"], dtype=np.float64)
            frames = int(z["frames"]) if "frames" in z else 0
            utts = int(z["utterances"]) if "utterances" in z else 0
        except (KeyError, ValueError, TypeError, OSError, pickle.UnpicklingError) as e:
            raise DataError(path, f"not a CMVN stats file with 'mean' and 'std' arrays ({e})", fix) from None
        if mean.shape != std.shape or mean.ndim != 1:
            raise DataError(path, f"mean {mean.shape} and std {std.shape} must be equal 1-D arrays", fix)
        if expected_dim is not None and mean.shape[0] != expected_dim:
            raise DataError(path, f"stats have {mean.shape[0]} bins, features have {expected_dim}", fix)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise DataError(path, "stats contain NaN/inf or non-positive std", fix)
        return cls(mean, std, frames=frames, utterances=utts)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, dtypes and scalars; any other global in the pickle is refused."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def read_npy_dict(path) -> dict:
    """The dict stored by ``np.save(path, {"mean": ..., "std": ...})`` (the official Fast-HuBERT
    ``global_cmvn.npy``), read without ``allow_pickle=True``: only numpy objects are rebuilt."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if not dtype.hasobject:
            raise ValueError(f"a plain {dtype} array of shape {shape}, expected a dict with 'mean' and 'std'")
        value = _NumpyOnlyUnpickler(f).load()
    value = value.item() if isinstance(value, np.ndarray) and value.shape == () else value
    if not isinstance(value, dict):
        raise ValueError(f"holds a {type(value).__name__}, expected a dict with 'mean' and 'std'")
    return value
