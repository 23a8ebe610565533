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


def assign(x: np.ndarray, index: "faiss.Index", batch_size: int = 100000) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each frame: labels (n,) int64 and squared distances (n,) float32."""
    n = x.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n, dtype=np.float32)
    for s in range(0, n, batch_size):
        d, i = index.search(np.ascontiguousarray(x[s : s + batch_size], dtype=np.float32), 1)
        labels[s : s + batch_size], dists[s : s + batch_size] = i[:, 0], d[:, 0]
    return labels, np.maximum(dists, 0)


def inertia(x: np.ndarray, centroids: np.ndarray, gpu: bool = False) -> float:
    """Sum over frames of the squared distance to the nearest centroid (float64 sum)."""
    _, d = assign(x, make_index(centroids, gpu))
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
