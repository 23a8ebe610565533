"""FAISS k-means (fast-hubert-learn-kmeans) vs scikit-learn MiniBatchKMeans as fairseq runs it.

Both cluster the same real-speech frames; inertia (sum of squared distances of those frames to
their nearest centroid) is evaluated for both by the same function
(``fast_hubert_plugin.clustering.kmeans.inertia``). Two problems:

(a) HuBERT iteration 1: 39-dim MFCC (+delta, +delta-delta, 100 Hz) of every utterance of the
    shared speech corpus (all three manifests), 100 clusters.
(b) HuBERT iteration 2 size: 768-dim frames, 500 clusters, ``--frames-768`` frames. No trained
    768-dim model exists in this project yet, so these are NOT layer-6 HuBERT features: they are
    CMVN-normalised 80-dim fbank stacked over 9 frames (+-4, 720 dims) every 2nd frame (50 Hz),
    mapped to 768 dims by a fixed random orthonormal matrix. The map preserves distances, so
    k-means sees real speech structure at the dimension and cost of HuBERT-Base layer features.

scikit-learn settings are those of fairseq's examples/hubert/simple_kmeans/learn_kmeans.py:
k-means++, batch 10000, n_init 20, max_iter 100, max_no_improvement 100, reassignment_ratio 0,
init_size None, tol 0. Writes a Markdown table (--output) with the machine, library versions
and the BLAS builds threadpoolctl finds.

    python benchmarks/kmeans_faiss_vs_sklearn.py --output benchmarks/results/kmeans_cpu.md
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from fast_hubert_plugin.clustering.dump import dump_split
from fast_hubert_plugin.clustering.feature_shards import load_split
from fast_hubert_plugin.clustering.kmeans import inertia, train_kmeans
from fast_hubert_plugin.clustering.learn import build_parser as build_learn_parser
from fast_hubert_plugin.utils.atomic import atomic_write_text
from fast_hubert_plugin.utils.machine import cpu_model_name

from common import RESULTS, SPEECH_DIR

CORPUS_TSVS = ["so762_train.tsv", "so762_dev.tsv", "librispeech_train_clean_100.tsv"]


def write_corpus_manifest(speech_dir: Path, path: Path) -> Path:
    lines = [str(speech_dir)]
    for name in CORPUS_TSVS:
        with open(speech_dir / name, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            col_path, col_n = header.index("path"), header.index("num_samples")
            for row in f:
                items = row.rstrip("\n").split("\t")
                lines.append(f"{items[col_path]}\t{items[col_n]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def all_frames(feat_dir, split) -> np.ndarray:
    return np.concatenate([np.asarray(s.feats) for s in load_split(feat_dir, split)])


def stacked_fbank_768(fbank_dir, split, n_frames: int, seed: int) -> np.ndarray:
    """(n_frames, 768): CMVN fbank, +-4 frame context (720-d), 50 Hz, random orthonormal map to 768-d."""
    shards = load_split(fbank_dir, split)
    utts = [np.asarray(u) for s in shards for u in s.utterances()]
    cat = np.concatenate(utts)
    mean, std = cat.mean(0), np.sqrt(np.maximum(cat.var(0), 1e-8))
    stacked = []
    for u in utts:
        u = (u - mean) / std
        if u.shape[0] < 9:
            continue
        win = np.lib.stride_tricks.sliding_window_view(u, (9, 80))[:, 0]  # (T-8, 9, 80)
        stacked.append(win.reshape(win.shape[0], 720)[::2])
    x = np.concatenate(stacked).astype(np.float32)
    rng = np.random.default_rng(seed)
    if x.shape[0] > n_frames:
        x = x[np.sort(rng.choice(x.shape[0], n_frames, replace=False))]
    q, _ = np.linalg.qr(rng.standard_normal((768, 720)))  # (768, 720), orthonormal columns
    return np.ascontiguousarray(x @ q.T.astype(np.float32), dtype=np.float32)


def run_sklearn(x, k, seed, n_init):
    from sklearn.cluster import MiniBatchKMeans

    t = time.time()
    km = MiniBatchKMeans(
        n_clusters=k,
        init="k-means++",
        max_iter=100,
        batch_size=10000,
        tol=0.0,
        max_no_improvement=100,
        init_size=None,
        n_init=n_init,
        reassignment_ratio=0.0,
        random_state=seed,
        compute_labels=False,
        verbose=0,
    )
    km.fit(x)
    return km.cluster_centers_.astype(np.float32), time.time() - t


def run_faiss(x, k, seed, niter, init, max_points_per_centroid):
    t = time.time()
    result = train_kmeans(x, k, niter=niter, seed=seed, init=init, max_points_per_centroid=max_points_per_centroid)
    return result.centroids, time.time() - t


def faiss_configs():
    """(label, niter, init, max_points_per_centroid): the CLI defaults first, then variants."""
    d = build_learn_parser().parse_args(["feats", "train", "km.npy", "--n-clusters", "1"])
    return [
        (
            f"faiss, fast-hubert-learn-kmeans defaults ({d.init}, niter {d.niter}, <= {d.max_points_per_centroid} "
            f"frames per cluster)",
            d.niter,
            d.init,
            d.max_points_per_centroid,
        ),
        ("faiss k-means++, niter 20, all frames", 20, "k-means++", None),
        ("faiss k-means++, niter 50, all frames", 50, "k-means++", None),
        ("faiss k-means++, niter 100, all frames", 100, "k-means++", None),
        ("faiss random init, niter 100, all frames", 100, "random", None),
    ]


def cached_sklearn(cache: Path, x, k, seed, n_init, threads):
    """sklearn is the slow part: its (seconds, inertia) are kept in the work dir per problem and settings."""
    key = f"{x.shape[0]}x{x.shape[1]}_k{k}_seed{seed}_ninit{n_init}_threads{threads}_sum{float(x[:1000].sum()):.6g}"
    store = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in store:
        c, sec = run_sklearn(x, k, seed, n_init)
        store[key] = {"seconds": sec, "inertia": inertia(x, c)}
        cache.write_text(json.dumps(store, indent=1))
    return store[key]["seconds"], store[key]["inertia"]


def machine_lines():
    import faiss
    import sklearn
    from threadpoolctl import threadpool_info

    cpu = cpu_model_name()
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores visible; {platform.system()} {platform.machine()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, faiss {faiss.__version__} "
        f"(compile options: {faiss.get_compile_options()}), "
        f"scikit-learn {sklearn.__version__}",
        "- threadpoolctl (BLAS/OpenMP pools as loaded in this process):",
    ]
    for info in threadpool_info():
        lines.append(
            f"  - {info.get('internal_api')} {info.get('version')} `{Path(info['filepath']).name}`: "
            f"architecture {info.get('architecture', '-')}, {info.get('num_threads')} threads"
        )
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", default=SPEECH_DIR)
    p.add_argument("--work-dir", default=None, help="feature cache (default: a temporary folder)")
    p.add_argument("--output", default=str(RESULTS / "kmeans_cpu.md"))
    p.add_argument("--frames-768", type=int, default=100000)
    p.add_argument("--sklearn-n-init", type=int, default=20)
    p.add_argument("--only", choices=["a", "b"], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="threads for both libraries (BLAS and OpenMP pools, via threadpoolctl)",
    )
    return p.parse_args(argv)


def problems(args, work: Path) -> list:
    """(name, frames, clusters) of the problems --only keeps, their features dumped into ``work``."""
    manifest = write_corpus_manifest(Path(args.speech_dir), work / "all.tsv")
    out = []
    if args.only in (None, "a"):
        dump_split(manifest, work / "mfcc", "mfcc", split="all", progress=False)
        out.append(("(a) MFCC 39-d, K=100", all_frames(work / "mfcc", "all"), 100))
    if args.only in (None, "b"):
        dump_split(manifest, work / "fbank", "fbank", split="all", progress=False)
        x = stacked_fbank_768(work / "fbank", "all", args.frames_768, args.seed)
        out.append(("(b) 768-d stacked fbank, K=500", x, 500))
    return out


def compare(args, work: Path, name: str, x, k: int):
    """(name, shape, sklearn's (label, seconds, inertia), each FAISS configuration's)."""
    print(f"{name}: {x.shape[0]} frames x {x.shape[1]}", flush=True)
    runs = []
    for label, niter, init, ppc in faiss_configs():
        c, sec = run_faiss(x, k, args.seed, niter, init, ppc)
        runs.append((label, sec, inertia(x, c)))
        print(f"  {label}: {sec:.1f} s, inertia {runs[-1][2]:.6g}", flush=True)
    sec, val = cached_sklearn(work / "sklearn_cache.json", x, k, args.seed, args.sklearn_n_init, args.threads)
    ref = (f"sklearn MiniBatchKMeans (fairseq settings, n_init {args.sklearn_n_init})", sec, val)
    print(f"  {ref[0]}: {sec:.1f} s, inertia {val:.6g}", flush=True)
    return name, x.shape, ref, runs


def record(args, results, load_start) -> list:
    flags = ("frames_768", "sklearn_n_init", "seed", "threads")
    out = [
        "# k-means on CPU: FAISS vs scikit-learn MiniBatchKMeans (fairseq settings)",
        "",
        "Reproduce: `python benchmarks/kmeans_faiss_vs_sklearn.py --output benchmarks/results/kmeans_cpu.md"
        f" {' '.join(['--' + k.replace('_', '-') + ' ' + str(v) for k, v in vars(args).items() if k in flags])}`",
        "",
        *machine_lines(),
        f"- load average (1, 5, 15 min) at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"at end {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}",
        "",
        "Features: see the module docstring. (a) all MFCC frames of the shared corpus; (b) 768-d frames "
        "are stacked fbank context windows under a random orthonormal map (no trained 768-d model exists "
        "yet), not HuBERT layer outputs. Inertia: sum over all frames of the squared distance to the "
        "nearest centroid, computed by the same function for every method; ratio < 1 means lower "
        "(better) than sklearn. The machine's 2 cores may have been shared with other work.",
        "",
    ]
    for name, shape, ref, runs in results:
        out += [
            f"## {name}: {shape[0]} frames x {shape[1]}",
            "",
            "| method | wall time (s) | speed-up vs sklearn | inertia | inertia / sklearn | per frame |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, sec, val in [ref] + runs:
            out.append(
                f"| {label} | {sec:.1f} | {ref[1] / sec:.1f}x | {val:.6g} | {val / ref[2]:.4f} | {val / shape[0]:.4f} |"
            )
        out.append("")
    return out


def main(argv=None):
    args = parse_args(argv)
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)
    load_start = os.getloadavg()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kmeans_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    results = [compare(args, work, name, x, k) for name, x, k in problems(args, work)]
    atomic_write_text(args.output, "\n".join(record(args, results, load_start)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
