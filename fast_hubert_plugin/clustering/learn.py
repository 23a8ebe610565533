"""fast-hubert-learn-kmeans: k-means centroids from a random sample of dumped feature frames.

Reads the feature shards of one split written by fast-hubert-dump (FEAT_DIR/{split}_{R}_{N}.npy,
.len, .json; all N shards must be finished; float32 or float16; a dump made with --sample-fraction
holds only its sample of the utterances, the way to learn on a corpus too large to dump), draws a uniform random sample of frames
(--percent and/or --max-frames), runs FAISS k-means (k-means++ seeding, --niter Lloyd
iterations on at most --max-points-per-centroid frames per cluster, best of --nredo runs; on
the GPU when FAISS sees one) and writes the centroids as a float32 (n_clusters, dim) .npy file,
atomically. Prints the final inertia (sum of squared distances of the sampled frames to their
nearest centroid) and its mean per frame.
Next step: fast-hubert-apply-kmeans.
"""

import argparse
import logging
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from ..utils.atomic import atomic_path
from ..utils.cli import HelpFormatter, console_script
from .feature_shards import Shard, load_split
from .kmeans import train_kmeans

logger = logging.getLogger("fast_hubert.clustering")

CHUNK_FRAMES = 1 << 20


def sample_frames(
    shards: List[Shard], percent: float = -1.0, max_frames: Optional[int] = None, seed: int = 0, progress: bool = False
) -> np.ndarray:
    """Uniform random sample of the frames of all shards: (m, dim) float32.

    Each frame is kept with probability ``percent`` (all frames when ``percent <= 0``), further
    lowered so that about ``max_frames`` are kept; then the sample is cut to ``max_frames``.
    Frames are visited in manifest order with one random stream, so the sample does not depend
    on how the split was sharded.
    """
    total = sum(int(s.feats.shape[0]) for s in shards)
    p = 1.0 if percent is None or percent <= 0 else min(float(percent), 1.0)
    if max_frames:
        p = min(p, max_frames / max(total, 1))
    rng = np.random.default_rng(seed)
    parts = []
    with tqdm(total=total, desc="sample frames", unit="frame", unit_scale=True, disable=not progress) as bar:
        for s in shards:
            for a in range(0, s.feats.shape[0], CHUNK_FRAMES):
                chunk = s.feats[a : a + CHUNK_FRAMES]
                keep = rng.random(chunk.shape[0]) < p if p < 1 else slice(None)
                parts.append(np.asarray(chunk[keep], dtype=np.float32))
                bar.update(chunk.shape[0])
    x = np.concatenate(parts) if parts else np.zeros((0, shards[0].feats.shape[1]), np.float32)
    if max_frames and x.shape[0] > max_frames:
        x = x[np.sort(rng.choice(x.shape[0], max_frames, replace=False))]
    return x


def save_centroids(path, centroids: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(centroids, dtype=np.float32))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-learn-kmeans", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("feat_dir", help="folder with the feature shards written by fast-hubert-dump")
    p.add_argument("split", help="split whose shards are read (e.g. train)")
    p.add_argument("output", help="centroids file to write (.npy, float32 (n_clusters, dim))")
    p.add_argument("--n-clusters", type=int, required=True, help="number of clusters K (HuBERT: 100, then 500)")
    p.add_argument(
        "--percent",
        type=float,
        default=-1.0,
        help="fraction (0..1] of frames to sample; <= 0 means all (fairseq's recipes use 0.1)",
    )
    p.add_argument("--max-frames", type=int, default=None, help="at most this many sampled frames")
    p.add_argument("--niter", type=int, default=20, help="Lloyd iterations per run (default: %(default)s)")
    p.add_argument(
        "--nredo",
        type=int,
        default=1,
        help="runs with different seeds; the lowest inertia is kept (default: %(default)s)",
    )
    p.add_argument(
        "--max-points-per-centroid",
        type=int,
        default=1000,
        help="Lloyd iterations run on a random subset of at most n_clusters x this many sampled frames "
        "(0: all); the inertia printed is that of the whole sample (default: %(default)s)",
    )
    p.add_argument(
        "--init",
        choices=["k-means++", "random"],
        default="k-means++",
        help="seeding: greedy k-means++ on <= 30000 sampled frames, or FAISS's random frames",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the frame sample and of the seeding (default: %(default)s)"
    )
    p.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run FAISS on the GPU (default: when FAISS sees one)",
    )
    return p


@console_script("fast-hubert-learn-kmeans")
def main(argv=None):
    args = build_parser().parse_args(argv)
    shards = load_split(args.feat_dir, args.split)
    meta = shards[0].meta
    x = sample_frames(shards, args.percent, args.max_frames, args.seed, progress=True)
    logger.info(
        "k-means of %d frames (dim %d, %s) into %d clusters", x.shape[0], x.shape[1], meta["feature"], args.n_clusters
    )
    try:
        result = train_kmeans(
            x,
            args.n_clusters,
            niter=args.niter,
            nredo=args.nredo,
            seed=args.seed,
            init=args.init,
            max_points_per_centroid=args.max_points_per_centroid or None,
            gpu=args.gpu,
        )
    except ValueError as e:  # too few frames for K
        raise SystemExit(f"error: {args.feat_dir}/{args.split}_*: {e}") from e
    save_centroids(args.output, result.centroids)
    print(
        f"wrote {args.output}: {args.n_clusters} centroids (dim {x.shape[1]}, {meta['feature']}) from "
        f"{x.shape[0]} frames; inertia {result.inertia:.6g} ({result.mean_inertia:.4f} per frame) "
        f"in {result.seconds:.1f} s"
    )
    return result


if __name__ == "__main__":
    main()
