"""The clustering stage at corpus scale: a sampled dump for k-means, labels computed on the fly equal to
dump-then-apply, shards that give the labels of one job, float16 dumps, and long recordings in pieces."""

import numpy as np

from fast_hubert_plugin.clustering.kmeans import CentroidIndex

# ---------------------------------------------------------------- nearest centroid: one unit per frame


def test_a_frames_unit_does_not_depend_on_its_batch():
    rng = np.random.default_rng(1)
    centroids = rng.normal(size=(50, 64)).astype(np.float32)
    # frames exactly between two centroids (true ties) and within float32 rounding of a tie
    mid = (centroids[rng.integers(50, size=300)] + centroids[rng.integers(50, size=300)]) / 2
    near = mid + rng.normal(scale=1e-6, size=mid.shape).astype(np.float32)
    x = np.concatenate([rng.normal(size=(2000, 64)), mid, near]).astype(np.float32)
    index = CentroidIndex(centroids)
    units, dists = index.assign(x)
    x64, c64 = x.astype(np.float64), centroids.astype(np.float64)
    exact = ((x64[:, None, :] - c64[None]) ** 2).sum(-1)
    best = exact.min(1)
    assert (exact[np.arange(len(x)), units] - best <= 1e-9 * (1 + best)).all()  # the nearest, in float64
    np.testing.assert_allclose(dists, best, rtol=1e-4, atol=1e-3)
    assert index.rechecked >= 300  # the ties were settled in float64
    for batch in (1, 5, 19, 21, 700):  # FAISS searches under 20 frames another way than larger batches
        np.testing.assert_array_equal(CentroidIndex(centroids).assign(x, batch)[0], units)
    twins = np.concatenate([centroids[:3], centroids[:3]])  # duplicated centroids: the lower unit wins
    np.testing.assert_array_equal(CentroidIndex(twins).assign(centroids[:3])[0], [0, 1, 2])
