"""fast-hubert-label: k-means labels straight from the audio, features computed and assigned in one pass.

For corpora whose full dump would not fit on disk (iteration 2 on LibriSpeech 960 h at 25 Hz x 768
float32 is about 265 GB): learn the centroids from a sampled dump (fast-hubert-dump --sample-fraction),
then label every utterance here, with nothing dumped. The features are those fast-hubert-dump computes
with the same flags (MFCC, fbank, or layer --layer of a --checkpoint, batched, on the GPU when torch
sees one); each frame gets its nearest centroid by the code fast-hubert-apply-kmeans runs (FAISS, on
the GPU when FAISS sees one), so the labels are those of dump-then-apply. Writes into LABEL_DIR:

  {split}.{label}                 one line per manifest row, as fast-hubert-apply-kmeans writes it,
  dict.{label}.txt                checked the same way, renamed into place last (--nshard 1, or the job
                                  that finds every shard done)
  {split}_{R}_{N}.{label}         with --nshard N: the label lines of shard R's rows
  {split}_{R}_{N}.{label}.json    their settings and unit counts (written last: "shard R done")

With --nshard N run one job per rank (e.g. a SLURM array); a finished shard is skipped when its job
runs again with the same settings, and whichever job finds all N shards done writes {split}.{label}
and the dictionary (re-running any rank redoes that).
Pretrain with task.label_dir=LABEL_DIR task.labels='["{label}"]' model.label_rate=RATE.
"""

import argparse
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ..data.manifest import AudioManifest, read_manifest
from ..utils.atomic import atomic_write_text
from ..utils.cli import HelpFormatter, console_script
from ..utils.errors import DataError
from .extractors import FeatureSource, add_source_arguments, build_extractor, check_row_frames, source_options
from .feature_shards import check_same_request, row_range, shard_request
from .units import UnitLabeller, add_search_arguments, describe_labels, label_step, load_centroids, write_label_files

logger = logging.getLogger("fast_hubert.clustering")


def part_paths(label_dir, split: str, rank: int, nshard: int, label: str) -> Tuple[Path, Path]:
    """Shard ``rank``'s label lines and its ``.json`` (settings, unit counts; present once finished)."""
    lines = Path(label_dir) / f"{split}_{rank}_{nshard}.{label}"
    return lines, lines.with_name(lines.name + ".json")


def file_sha1(path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def label_rows(extractor, labeller: UnitLabeller, manifest: AudioManifest, rows: List[int], workers: int, bar: Dict):
    """Label lines of ``rows`` in row order: features of a few rows at a time (batched as the extractor
    batches them), searched ``labeller.batch_size`` frames at a time."""
    lines: Dict[int, str] = {}
    pending: List[Tuple[int, np.ndarray]] = []

    def flush():
        feats = np.concatenate([f for _, f in pending]) if pending else None
        if feats is not None:
            lines.update(zip((i for i, _ in pending), labeller.label_rows(feats, [len(f) for _, f in pending])))
        pending.clear()

    frames = 0
    for i, feats in tqdm(extractor.features_of_rows(manifest, rows, workers), total=len(rows), **bar):
        check_row_frames(manifest, i, feats, extractor.num_frames(manifest.num_samples[i]))
        pending.append((i, feats))
        frames += len(feats)
        if frames >= labeller.batch_size:
            flush()
            frames = 0
    flush()
    return [lines[i] for i in rows]


def label_split(
    manifest_path,
    centroids_path,
    label_dir,
    source: FeatureSource,
    split: Optional[str] = None,
    nshard: int = 1,
    rank: int = 0,
    label: str = "km",
    label_rate: Optional[float] = None,
    gpu: Optional[bool] = None,
    batch_size: int = 100000,
    overwrite: bool = False,
    progress: bool = True,
) -> Dict:
    """Label shard ``rank`` of ``nshard`` (and write the split's files when every shard is done).

    Returns a summary: ``skipped`` (the shard was finished already), ``merged`` (the split's
    ``{split}.{label}`` and dictionary were written) and, once merged, what fast-hubert-apply-kmeans reports."""
    manifest = read_manifest(manifest_path, resample=source.resample)
    split = split or Path(manifest_path).stem
    start, end = row_range(len(manifest), rank, nshard)
    lines_path, meta_path = part_paths(label_dir, split, rank, nshard, label)
    request = {
        **source.settings(),
        "centroids": os.path.abspath(centroids_path),
        "centroids_sha1": file_sha1(centroids_path) if os.path.isfile(centroids_path) else None,
        "label_rate": label_rate,
        **shard_request(manifest_path, len(manifest), split, rank, nshard),
    }
    finished = nshard > 1 and meta_path.is_file() and lines_path.is_file()
    if finished and not overwrite:
        check_same_request(meta_path, json.loads(meta_path.read_text(encoding="utf-8")), request)
        return dict(merge_shards(manifest, label_dir, split, nshard, label), skipped=True)

    extractor = build_extractor(source)
    centroids = load_centroids(centroids_path, extractor.dim, source.checkpoint or f"{source.feature} features")
    step = label_step(extractor.frame_rate, label_rate, centroids_path)
    labeller = UnitLabeller(centroids, step, gpu, batch_size)
    t0 = time.time()
    bar = {"desc": f"label {split} {rank}/{nshard}", "disable": not progress}
    lines = label_rows(extractor, labeller, manifest, list(range(start, end)), source.workers, bar)
    seconds = round(time.time() - t0, 2)
    rate = extractor.frame_rate / step
    if nshard == 1:
        summary = write_label_files(lines, labeller.counts, manifest, rate, label_dir, split, label)
        return dict(summary, mean_sq_dist=labeller.mean_sq_dist, seconds=seconds, skipped=False, merged=True)
    # The .json goes first (the shard stops being finished), then the split's files merged from the old
    # shard, dictionary first: nothing left looks finished that this shard's new lines would not be in.
    for old in (meta_path, lines_path, Path(label_dir) / f"dict.{label}.txt", Path(label_dir) / f"{split}.{label}"):
        old.unlink(missing_ok=True)
    atomic_write_text(lines_path, "".join(line + "\n" for line in lines))
    done = dict(
        request,
        rate=rate,
        counts=labeller.counts.tolist(),
        sq_dist_sum=labeller.sq_dist_sum,
        frames=labeller.frames,
        seconds=seconds,
    )
    atomic_write_text(meta_path, json.dumps(done, indent=1, sort_keys=True) + "\n")  # last: marks it finished
    return dict(merge_shards(manifest, label_dir, split, nshard, label), skipped=False, seconds=seconds)


SHARD_KEYS = ("rank", "rows", "counts", "sq_dist_sum", "frames", "seconds")  # what may differ between shards


def merge_shards(manifest: AudioManifest, label_dir, split: str, nshard: int, label: str) -> Dict:
    """Once all ``nshard`` shards are finished, write ``{split}.{label}`` and the dictionary from them."""
    parts = [part_paths(label_dir, split, r, nshard, label) for r in range(nshard)]
    if not all(meta.is_file() and lines.is_file() for lines, meta in parts):
        waiting = [r for r, (lines, meta) in enumerate(parts) if not meta.is_file()]
        logger.info("%s: shards %s of %d not finished yet; the last job merges them", split, waiting, nshard)
        return {"merged": False, "waiting_for": waiting}
    metas = [json.loads(meta.read_text(encoding="utf-8")) for _, meta in parts]
    common = {k: v for k, v in metas[0].items() if k not in SHARD_KEYS}
    lines: List[str] = []
    for (lines_path, meta_path), meta in zip(parts, metas):
        other = {k: v for k, v in meta.items() if k not in SHARD_KEYS}
        if other != common or meta["rows"] != list(row_range(len(manifest), meta["rank"], nshard)):
            raise DataError(
                meta_path,
                f"shard made with other settings or rows than shard 0 ({parts[0][1]})",
                f"re-run the shards of {split} with the same command (--overwrite)",
            )
        shard_lines = lines_path.read_text(encoding="utf-8").splitlines()
        if len(shard_lines) != meta["rows"][1] - meta["rows"][0]:
            raise DataError(lines_path, f"{len(shard_lines)} lines for rows {meta['rows']}", "re-run this shard")
        lines += shard_lines
    counts = np.sum([np.asarray(m["counts"], dtype=np.int64) for m in metas], axis=0)
    summary = write_label_files(lines, counts, manifest, common["rate"], label_dir, split, label)
    mean = sum(m["sq_dist_sum"] for m in metas) / max(sum(m["frames"] for m in metas), 1)
    return dict(summary, mean_sq_dist=mean, merged=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-label", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("manifest", help="fairseq manifest (.tsv) of the split to label")
    p.add_argument("centroids", help="centroids (.npy) from fast-hubert-learn-kmeans")
    p.add_argument("label_dir", help="folder for {split}.{label} and dict.{label}.txt (task.label_dir)")
    add_source_arguments(p, "label")
    add_search_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="relabel the shard even if it is finished")
    return p


@console_script("fast-hubert-label")
def main(argv=None):
    args = build_parser().parse_args(argv)
    source, shard_rows = source_options(args)
    s = label_split(
        args.manifest,
        args.centroids,
        args.label_dir,
        source,
        **shard_rows,
        label=args.label,
        label_rate=args.label_rate,
        gpu=args.gpu,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    shard = f"shard {args.rank}/{args.nshard}: " + ("already finished, skipped; " if s["skipped"] else "labelled; ")
    if not s["merged"]:
        print(f"{shard}waiting for shards {s['waiting_for']} before writing the split's labels")
    else:
        print(f"{shard if args.nshard > 1 else ''}{describe_labels(s)}")
    return s


if __name__ == "__main__":
    main()
