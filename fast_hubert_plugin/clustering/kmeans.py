"""k-means with FAISS: k-means++ seeding, Lloyd iterations, nearest-centroid assignment.

Shapes: frames ``x`` are ``(n, dim)`` float32, centroids ``(k, dim)`` float32, labels ``(n,)``
int64. FAISS runs on every visible GPU when ``faiss.get_num_gpus() > 0`` (a ``faiss-gpu``
install), on the CPU otherwise; the code path is the same.
"""

import logging
import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it reports each instruction set it tries
import faiss  # noqa: E402

logger = logging.getLogger("fast_hubert.clustering")

INIT_MAX_POINTS = 30000  # frames k-means++ seeds from (sklearn's MiniBatchKMeans uses 3 x batch = 30000)


def use_gpu(requested: Optional[bool] = None) -> bool:
    """GPU when asked for, or (``None``) whenever FAISS sees one."""
    available = faiss.get_num_gpus() > 0
    if requested and not available:
        raise SystemExit(
            "--gpu: FAISS sees no GPU (install faiss-gpu instead of faiss-cpu, check CUDA_VISIBLE_DEVICES)"
        )
    return available if requested is None else bool(requested)


def make_index(centroids: np.ndarray, gpu: bool = False) -> "faiss.Index":
    """Exact L2 index over the centroids (k, dim)."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    if gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


# FAISS's float32 distance ||x||^2 + ||c||^2 - 2 x.c is off by at most (dim + 2) x unit roundoff x
# (||x|| + ||c||)^2 (the error bound of a dot product of dim terms, plus the norms). A frame whose two best
# distances are within 4 such bounds is settled in float64: one not re-checked has a true gap of more
# than 2 bounds, so every search (any batch, BLAS or device) and the float64 one agree on its unit.
UNIT_ROUNDOFF_F32 = 2.0**-24
RECHECK_ROWS = 4096  # frames settled in float64 at a time: (4096, k) float64 distances


class CentroidIndex:
    """Nearest centroid of frames, the same unit for a frame whatever the batch, the BLAS or the device.

    FAISS finds the two nearest centroids; a frame whose two distances are closer than float32 rounding
    can tell apart (the bound above) is settled in float64 over every centroid, the lowest unit winning a
    tie. So a frame's unit depends only on its values and the centroids (up to float64 rounding): labels
    from a dump, labels computed on the fly, sharded or not, are the same.

    centroids: (k, dim); ``assign(x)`` with frames x (n, dim) -> units (n,) int64, squared distances (n,) float32.
    """

    def __init__(self, centroids: np.ndarray, gpu: bool = False):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.index = make_index(self.centroids, gpu)
        self._c64 = self.centroids.astype(np.float64)
        self._c_sq = np.einsum("ij,ij->i", self._c64, self._c64)
        self._max_c_norm = float(np.sqrt(self._c_sq.max()))
        self._tie_factor = 4 * (self.centroids.shape[1] + 2) * UNIT_ROUNDOFF_F32
        self.rechecked = 0  # frames settled in float64 so far

    def assign(self, x: np.ndarray, batch_size: int = 100000) -> Tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        labels = np.empty(n, dtype=np.int64)
        dists = np.empty(n, dtype=np.float32)
        for s in range(0, n, batch_size):
            labels[s : s + batch_size], dists[s : s + batch_size] = self._assign(x[s : s + batch_size])
        return labels, dists

    def _assign(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        k = min(2, self.centroids.shape[0])
        d, i = self.index.search(x, k)
        labels, dists = i[:, 0].copy(), np.maximum(d[:, 0], 0)
        if k < 2 or not x.shape[0]:
            return labels, dists
        x_norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        near = np.nonzero(d[:, 1] - d[:, 0] <= self._tie_factor * (x_norm + self._max_c_norm) ** 2)[0]
        for a in range(0, len(near), RECHECK_ROWS):
            rows = near[a : a + RECHECK_ROWS]
            x64 = x[rows].astype(np.float64)
            exact = np.einsum("ij,ij->i", x64, x64)[:, None] + self._c_sq[None] - 2 * x64 @ self._c64.T  # (m, k)
            labels[rows] = np.argmin(exact, axis=1)  # the first of equal minima: the lowest unit
            dists[rows] = np.maximum(exact[np.arange(len(rows)), labels[rows]], 0)
        self.rechecked += len(near)
        return labels, dists


def inertia(x: np.ndarray, centroids: np.ndarray, gpu: bool = False) -> float:
    """Sum over frames of the squared distance to the nearest centroid (float64 sum)."""
    _, d = CentroidIndex(centroids, gpu).assign(x)
    return float(d.astype(np.float64).sum())


def kmeans_plusplus(
    x: np.ndarray, k: int, seed: int = 0, max_points: int = INIT_MAX_POINTS, n_local_trials: Optional[int] = None
) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; 2 + log k candidates per step, as
    scikit-learn does) on a random subset of at most ``max_points`` frames: (k, dim) float32."""
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_points:
        x = x[np.sort(rng.choice(x.shape[0], max_points, replace=False))]
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    trials = n_local_trials or 2 + int(np.log(k))
    x_sq = np.einsum("ij,ij->i", x, x)

    def sq_dist(idx):  # (n, len(idx)) squared distances to the frames idx
        c = x[idx]
        return np.maximum(x_sq[:, None] + x_sq[idx][None, :] - 2.0 * (x @ c.T), 0)

    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = sq_dist([first])[:, 0]
    for c in range(1, k):
        cum = np.cumsum(closest, dtype=np.float64)
        if cum[-1] <= 0:  # fewer distinct frames than clusters: fall back to random frames
            cand = rng.integers(n, size=trials)
        else:
            cand = np.minimum(np.searchsorted(cum, rng.random(trials) * cum[-1]), n - 1)
        new_closest = np.minimum(closest[:, None], sq_dist(cand))
        best = int(np.argmin(new_closest.sum(0, dtype=np.float64)))
        closest = new_closest[:, best]
        centers[c] = x[cand[best]]
    return centers


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, dim) float32
    inertia: float  # sum of squared distances of the training frames to their nearest centroid
    num_frames: int
    seconds: float
    init_seconds: float
    redo: int  # which of the nredo runs was kept (lowest inertia)

    @property
    def mean_inertia(self) -> float:
        return self.inertia / max(self.num_frames, 1)


def train_kmeans(
    x: np.ndarray,
    k: int,
    niter: int = 20,
    nredo: int = 1,
    seed: int = 0,
    init: str = "k-means++",
    max_points_per_centroid: Optional[int] = None,
    gpu: Optional[bool] = None,
    verbose: bool = False,
) -> KMeansResult:
    """Lloyd k-means of frames (n, dim) into k clusters, best of ``nredo`` runs (seeds seed..seed+nredo-1).

    ``init``: "k-means++" (seeded here, then given to FAISS as initial centroids) or "random"
    (FAISS's own random sampling of k frames). The Lloyd iterations run on a random subset of
    ``k * max_points_per_centroid`` frames when there are more (FAISS's subsampling; ``None``:
    all frames). The inertia returned is always that of all ``n`` frames.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    if n < k:
        raise ValueError(f"{n} frames cannot make {k} clusters: sample more frames or lower --n-clusters")
    gpu = use_gpu(gpu)
    t0 = time.time()
    best, init_seconds = None, 0.0
    for r in range(nredo):
        km = faiss.Kmeans(
            dim,
            k,
            niter=niter,
            nredo=1,
            seed=seed + r,
            gpu=gpu,
            verbose=verbose,
            max_points_per_centroid=max_points_per_centroid or n // k + 1,
            min_points_per_centroid=1,
        )
        init_centroids = None
        if init == "k-means++":
            t_init = time.time()
            init_centroids = kmeans_plusplus(x, k, seed=seed + r)
            init_seconds += time.time() - t_init
        elif init != "random":
            raise ValueError(f"unknown init {init!r}: k-means++ or random")
        km.train(x, init_centroids=init_centroids)
        centroids = np.array(km.centroids, dtype=np.float32)
        value = inertia(x, centroids, gpu)
        logger.info("k-means run %d/%d: inertia %.6g", r + 1, nredo, value)
        if best is None or value < best[1]:
            best = (centroids, value, r)
    return KMeansResult(best[0], best[1], n, time.time() - t0, init_seconds, best[2])
