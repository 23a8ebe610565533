"""The label stage at corpus scale, on the CPU: what a full dump costs against a sampled dump + labels
computed on the fly, whether float16 dumps change k-means, and a 30-minute recording in pieces.

Three parts (``--part``), each writing its own record into ``--output-dir``:

``scale`` (``labels_at_scale_cpu.md``): HuBERT iteration 2, the output of block ``--layer`` of a fast_hubert
checkpoint (default: a Base-shaped model, 12 x 768, random weights: disk and time do not depend on the
weights; or ``--checkpoint``), ``--clusters`` units, over ``--minutes`` of the speech folder:

    full dump      fast-hubert-dump (float32; then again float16) -> learn-kmeans --percent 0.1 -> apply-kmeans
    sample + fly   fast-hubert-dump --sample-fraction 0.1 -> learn-kmeans -> fast-hubert-label

Disk written is the bytes of every file each stage leaves (exact); time is each stage's wall clock, in
this process (the checkpoint is loaded by each stage, as a user's command does). Both per audio-hour and
extrapolated linearly to LibriSpeech's 960 h (an extrapolation, not a measurement).

``float16`` (``dump_float16_cpu.md``): the test fixtures (``tests/data/speech``), MFCC and fbank dumped as
float32 and float16, k-means (``--fixture-clusters``) with ``--seeds`` seeds from each; the inertia of every
centroid set on the float32 frames, and how far two labellings agree (PNMI of one given the other, 1 =
the same partition): float16 vs float32 with the same seed against float32 with seed s vs s + 1 (the noise).

``long`` (``long_recording_cpu.md``): a 30-minute recording (speech-folder utterances end to end). Each
measurement runs in a fresh process (the peak RSS while it computes, VmHWM reset once the audio and the
model are loaded, and what that adds): the fbank whole and in pieces, the MFCC, and a layer whole and in pieces of 100 s
with 5 s and 0 s of context (``--long-checkpoint``, a trained model; and the Base-shaped one, in
pieces only); the features' difference and the labels' agreement (k-means of the whole's features)
against the whole, over all frames and over those within 5 s of a cut.

    python benchmarks/labels_at_scale.py --speech-dir SPEECH --long-checkpoint IT1.pt --output-dir benchmarks/results
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from common import REPO, SPEECH_DIR, machine, reproduce, speech_rows

FIXTURES = REPO / "tests" / "data" / "speech"
SPEECH_TSVS = ["librispeech_train_clean_100.tsv", "so762_train.tsv", "so762_dev.tsv"]
LIBRISPEECH_HOURS = 960
LONG_MINUTES = 30
NEAR_CUT_SECONDS = 5.0  # frames this close to a cut between pieces are counted apart


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="scale,float16,long", help="comma-separated parts to run")
    p.add_argument("--speech-dir", default=SPEECH_DIR)
    p.add_argument("--checkpoint", help="scale/long: fast_hubert checkpoint (default: a Base-shaped random one)")
    p.add_argument("--long-checkpoint", help="long: a trained fast_hubert checkpoint for the pieces' differences")
    p.add_argument("--layer", type=int, default=6, help="scale: the block whose output is clustered")
    p.add_argument("--long-layer", type=int, default=3, help="long: the block of --long-checkpoint")
    p.add_argument("--minutes", type=float, default=20.0, help="scale: minutes of audio")
    p.add_argument("--long-minutes", type=float, default=LONG_MINUTES, help="long: length of the recording")
    p.add_argument("--piece-seconds", type=float, default=100.0, help="long: --chunk-seconds of the pieces")
    p.add_argument("--context-seconds", type=float, default=5.0, help="long: --chunk-context-seconds")
    p.add_argument("--clusters", type=int, default=500)
    p.add_argument("--fixture-clusters", type=int, default=50)
    p.add_argument("--seeds", type=int, default=10, help="float16: k-means seeds per dump")
    p.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads")
    p.add_argument("--work-dir", default=None, help="default: a temporary folder")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--child", help=argparse.SUPPRESS)  # long: one measurement in a fresh process (JSON)
    p.add_argument("--wav", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    import faiss

    faiss.omp_set_num_threads(n)


# Paths of the machine that made a record are named by what they hold in its Reproduce line.
PLACEHOLDERS = {"--speech-dir": "SPEECH_DIR", "--checkpoint": "CHECKPOINT", "--long-checkpoint": "IT1_CHECKPOINT"}
PLACEHOLDERS["--work-dir"] = "WORK_DIR"


def header(title: str, argv, threads: int) -> List[str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    shown = [PLACEHOLDERS.get(prev, a) for prev, a in zip([None] + argv, argv)]
    return [
        f"# {title}",
        "",
        f"Reproduce: `{reproduce('labels_at_scale.py', shown)}`",
        "",
        f"- machine: {machine(threads)}",
        f"- load average at start (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


# ----------------------------------------------------------------------------- checkpoints and audio
def base_shaped_checkpoint(path: Path) -> str:
    """A fast_hubert Base (the model config's defaults: 12 x 768, 40 ms), random weights, saved by fairseq's
    Trainer as training does; 500 units."""
    if path.is_file():
        return str(path)
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    from fast_hubert_plugin.features.cmvn import GlobalCMVN

    folder = path.parent / "base_task"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(500)))
    GlobalCMVN(np.full(80, 10.0), np.full(80, 3.0)).save(folder / "cmvn.npz")
    # fmt: off
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(folder), "--task", "fast_hubert_pretraining", "--labels", '["km"]', "--label-dir", str(folder),
        "--label-rate", "50", "--cmvn-stats-path", str(folder / "cmvn.npz"), "--arch", "fast_hubert",
        "--criterion", "fast_hubert", "--optimizer", "adam", "--lr", "0.0005", "--lr-scheduler", "fixed",
        "--max-tokens", "1000", "--cpu", "--seed", "1", "--no-save-optimizer-state",
    ])
    # fmt: on
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model)
    Trainer(cfg, task, model, task.build_criterion(cfg.criterion)).save_checkpoint(str(path), {})
    return str(path)


def describe_checkpoint(path: str) -> str:
    import torch

    import fast_hubert_plugin  # noqa: F401  (allowlists fairseq's checkpoint types)

    state = torch.load(path, map_location="cpu", weights_only=False)
    model = state["cfg"]["model"]
    updates = state["optimizer_history"][-1]["num_updates"]
    return (
        f"`{Path(path).name}`: {model['encoder_layers']} blocks x {model['encoder_embed_dim']}, "
        f"{updates} updates{' (random weights)' if updates == 0 else ''}"
    )


def speech_manifest(speech: Path, minutes: float, path: Path) -> float:
    """A fairseq manifest of the speech folder's utterances in order, up to ``minutes``; returns its hours."""
    rows, samples = [], 0
    for r in speech_rows(speech, SPEECH_TSVS, 0.5):
        if samples >= minutes * 60 * 16000:
            break
        rows.append(f"{r['path']}\t{r['num_samples']}")
        samples += int(r["num_samples"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{speech}\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return samples / 16000 / 3600


def folder_bytes(*paths: Path) -> int:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return sum(f.stat().st_size for f in files)


# ----------------------------------------------------------------------------- scale
def timed(main, argv) -> Tuple[float, float]:
    """(wall, CPU) seconds of ``main(argv)`` in this process."""
    t, cpu = time.time(), time.process_time()
    main([str(a) for a in argv])
    return time.time() - t, time.process_time() - cpu


def scale_stages(args, work: Path, manifest: Path, checkpoint: str) -> Dict[str, List]:
    """{path: [(stage, (wall, CPU) seconds, bytes written)]}."""
    from fast_hubert_plugin.clustering import apply, dump, label, learn

    layer = ["--feature", "layer", "--checkpoint", checkpoint, "--layer", args.layer, "--device", "cpu"]
    k = ["--n-clusters", args.clusters]
    full, sample, km_full, km_sample = work / "full", work / "sample", work / "km_full.npy", work / "km_sample.npy"
    t_dump = timed(dump.main, [manifest, full / "f32", *layer])
    t_dump16 = timed(dump.main, [manifest, full / "f16", *layer, "--dtype", "float16"])
    t_learn = timed(learn.main, [full / "f32", "train", km_full, *k, "--percent", 0.1])
    t_apply = timed(apply.main, [full / "f32", "train", km_full, work / "labels_full", "--label-rate", 25])
    t_sample = timed(dump.main, [manifest, sample, *layer, "--sample-fraction", 0.1])
    t_learn_s = timed(learn.main, [sample, "train", km_sample, *k])
    t_label = timed(label.main, [manifest, km_sample, work / "labels_fly", *layer, "--label-rate", 25])
    return {
        "full dump (float32)": [
            ("fast-hubert-dump", t_dump, folder_bytes(full / "f32")),
            ("fast-hubert-learn-kmeans --percent 0.1", t_learn, folder_bytes(km_full)),
            ("fast-hubert-apply-kmeans", t_apply, folder_bytes(work / "labels_full")),
        ],
        "full dump (float16)": [("fast-hubert-dump --dtype float16", t_dump16, folder_bytes(full / "f16"))],
        "sample + on the fly": [
            ("fast-hubert-dump --sample-fraction 0.1", t_sample, folder_bytes(sample)),
            ("fast-hubert-learn-kmeans", t_learn_s, folder_bytes(km_sample)),
            ("fast-hubert-label", t_label, folder_bytes(work / "labels_fly")),
        ],
    }


def scale_record(args, argv, hours: float, checkpoint: str, stages: Dict[str, List]) -> List[str]:
    out = header("Labels at corpus scale: full dump vs sample + on-the-fly labels (CPU)", argv, args.threads)
    out += [
        f"- model: {describe_checkpoint(checkpoint)}; block {args.layer}, 25 Hz x 768; {args.clusters} units",
        f"- audio: {hours * 60:.1f} min of the speech folder ({', '.join(SPEECH_TSVS)}, in order)",
        "",
        "Disk: bytes of every file a stage leaves (exact). Time: the stage in one process, the checkpoint load "
        "included; wall clock and CPU time (user + system, all threads), provisional on a shared machine (load "
        "above): the wall clock grows with the load, the CPU time much less. Per audio-hour = measured / "
        f"{hours:.4f} h. The 960 h columns multiply by {LIBRISPEECH_HOURS} / {hours:.4f}: an extrapolation, "
        "not a measurement, for the stages whose work grows with the audio (dump, apply, label); k-means is "
        "left out of them and of the totals' per-hour and 960 h columns (its cost is bounded by the frames "
        "it samples, `--max-frames`, not by the audio).",
        "",
        "| path | stage | wall (s) | CPU (s) | disk (MB) | CPU s per audio-hour | MB per audio-hour | "
        "960 h: CPU hours | 960 h: GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path, rows in stages.items():
        linear = [r for r in rows if "learn-kmeans" not in r[0]]
        total = ("**total**", tuple(sum(r[1][i] for r in rows) for i in (0, 1)), sum(r[2] for r in rows))
        for stage, (wall, cpu), size in rows + [total]:
            if "learn-kmeans" in stage:  # bounded by the frames it samples, not by the audio
                scaled = "- | - | - | - |"
            else:
                part = linear if stage == total[0] else [(stage, (wall, cpu), size)]
                per_h, mb_h = sum(r[1][1] for r in part) / hours, sum(r[2] for r in part) / 1e6 / hours
                scaled = f"{per_h:.0f} | {mb_h:.2f} | {per_h * LIBRISPEECH_HOURS / 3600:.1f} | {mb_h * LIBRISPEECH_HOURS / 1e3:.1f} |"
            out.append(f"| {path} | {stage} | {wall:.1f} | {cpu:.1f} | {size / 1e6:.2f} | {scaled}")
    return out


# ----------------------------------------------------------------------------- float16
def fixture_manifest(path: Path) -> Path:
    rows = speech_rows(FIXTURES, SPEECH_TSVS, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{FIXTURES}\n" + "".join(f"{r['path']}\t{r['num_samples']}\n" for r in rows), encoding="utf-8")
    return path


def agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """PNMI of labelling b given a: I(a; b) / H(a) (1: b determines a)."""
    from fast_hubert_plugin.clustering.metrics import contingency, purity_metrics

    return purity_metrics(contingency(a, b, k, k))["pnmi"]


def float16_rows(args, work: Path) -> List[str]:
    from fast_hubert_plugin.clustering.dump import dump_split
    from fast_hubert_plugin.clustering.feature_shards import load_split
    from fast_hubert_plugin.clustering.kmeans import CentroidIndex, train_kmeans

    manifest, k, rows = fixture_manifest(work / "fixtures.tsv"), args.fixture_clusters, []
    seeds = range(args.seeds)
    for feature in ("mfcc", "fbank"):
        x = {}
        for dtype in ("float32", "float16"):
            dump_split(manifest, work / f"{feature}_{dtype}", feature, split="all", dtype=dtype, progress=False)
            x[dtype] = np.concatenate(
                [np.asarray(s.feats, np.float32) for s in load_split(work / f"{feature}_{dtype}", "all")]
            )
        units, inertia = {}, {}
        for dtype in x:
            for seed in seeds:
                c = train_kmeans(x[dtype], k, seed=seed).centroids
                units[dtype, seed], d = CentroidIndex(c).assign(x["float32"])
                inertia[dtype, seed] = float(d.astype(np.float64).mean())
        rel = np.abs(x["float16"] - x["float32"]).max() / np.abs(x["float32"]).max()
        for dtype in x:
            values = [inertia[dtype, s] for s in seeds]
            vs_other = [
                agreement(units["float32", s], units[dtype, s if dtype == "float16" else s + 1], k) for s in seeds[:-1]
            ]
            rows.append(
                f"| {feature} | {dtype} | {x[dtype].shape[0]} x {x[dtype].shape[1]} | {np.mean(values):.4f} | "
                f"{np.std(values):.4f} | {min(values):.4f}-{max(values):.4f} | "
                f"{'float16 vs float32, same seed' if dtype == 'float16' else 'float32 seed s vs s + 1'}: "
                f"{np.mean(vs_other):.4f} ({min(vs_other):.4f}-{max(vs_other):.4f}) | {rel:.2e} |"
            )
    return rows


def float16_record(args, argv, rows: List[str]) -> List[str]:
    out = header("float16 dumps: k-means quality against float32 (CPU, test fixtures)", argv, args.threads)
    return out + [
        f"- data: every utterance of `tests/data/speech` ({', '.join(SPEECH_TSVS)}); {args.fixture_clusters} "
        f"units; FAISS k-means as fast-hubert-learn-kmeans runs it (k-means++, 20 iterations) on all frames, "
        f"seeds 0-{args.seeds - 1} for each dtype",
        "",
        f"Inertia: mean squared distance of every float32 frame to its nearest centroid (lower is better), over "
        f"the {args.seeds} seeds. Agreement: PNMI of one labelling given the other (1: the same partition), "
        f"averaged over seeds 0-{args.seeds - 2}; the float32 row's is the noise of k-means itself (another seed). Max rel. rounding: the "
        "largest |float16 - float32| over the largest |float32| in the dump.",
        "",
        "| features | dump | frames x dim | inertia, mean | std over seeds | min-max | agreement | max rel. rounding |",
        "|---|---|---|---:|---:|---:|---|---:|",
        *rows,
    ]


# ----------------------------------------------------------------------------- long recording
def long_waveform(speech: Path, minutes: float, path: Path) -> Path:
    from fast_hubert_plugin.features.audio import read_audio

    wavs, n = [], 0
    for r in speech_rows(speech, SPEECH_TSVS, 0.5):
        if n >= minutes * 60 * 16000:
            break
        wavs.append(read_audio(speech / r["path"]))
        n += len(wavs[-1])
    np.save(path, np.concatenate(wavs)[: int(minutes * 60 * 16000)].astype(np.float32))
    return path


def status_mb(key: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0): the peak of imports is not the computation's."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(args) -> None:
    """One measurement: ``--child fbank:CHUNK_FRAMES | mfcc | layer:CKPT:LAYER:SECONDS:CONTEXT``."""
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank
    from fast_hubert_plugin.features.mfcc import compute_mfcc
    from fast_hubert_plugin.models.frame_features import Chunking, load_model_features

    set_threads(args.threads)
    kind, *spec = args.child.split(":")
    features = load_model_features(spec[0], "cpu") if kind == "layer" else None
    wav = np.load(args.wav)
    reset_peak_rss()
    base, t, cpu = status_mb("VmRSS"), time.time(), time.process_time()
    if kind == "fbank":
        out = compute_fbank(wav, chunk_frames=int(spec[0]))
    elif kind == "mfcc":
        out = compute_mfcc(wav)
    else:
        out = features.layer_batch([wav], int(spec[1]), Chunking(float(spec[2]), float(spec[3])))[0]
    seconds, cpu = time.time() - t, time.process_time() - cpu
    np.save(args.out, out)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_mb": status_mb("VmHWM"),
                "loaded_mb": base,
                "frames": out.shape[0],
            }
        )
    )


def measure(args, mode: str, wav: Path, out: Path) -> Dict:
    cmd = [sys.executable, __file__, "--child", mode, "--wav", wav, "--out", out, "--threads", args.threads]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def near_cuts(frames: int, frame_rate: float, piece_seconds: float) -> np.ndarray:
    """(frames,) bool: within NEAR_CUT_SECONDS of a boundary between pieces."""
    t = np.arange(frames) / frame_rate
    cuts = np.arange(piece_seconds, frames / frame_rate, piece_seconds)
    if not len(cuts):
        return np.zeros(frames, bool)
    return np.abs(t[:, None] - cuts[None]).min(1) < NEAR_CUT_SECONDS


def long_rows(args, work: Path, speech: Path, base_checkpoint: str) -> List[str]:
    from fast_hubert_plugin.clustering.kmeans import CentroidIndex, train_kmeans

    wav = long_waveform(speech, args.long_minutes, work / "long.npy")
    trained, piece, context = args.long_checkpoint or base_checkpoint, args.piece_seconds, args.context_seconds
    trained_name = f"layer {args.long_layer}, {'trained' if args.long_checkpoint else '--checkpoint'}"
    modes = [("fbank", "whole", "fbank:1000000000"), ("fbank", "pieces of 6000 frames", "fbank:6000")]
    modes += [("mfcc", "whole (kaldi-native-fbank streams it)", "mfcc")]
    for how, seconds, ctx in [
        ("whole", 1e9, 0),
        (f"pieces of {piece:g} s, {context:g} s context", piece, context),
        (f"pieces of {piece:g} s, no context", piece, 0),
    ]:
        modes.append((trained_name, how, f"layer:{trained}:{args.long_layer}:{seconds}:{ctx}"))
    modes.append(
        (
            f"layer {args.layer}, {'--checkpoint' if args.checkpoint else 'Base-shaped'}",
            f"pieces of {piece:g} s, {context:g} s context",
            f"layer:{base_checkpoint}:{args.layer}:{piece}:{context}",
        )
    )
    rows, outputs = [], {}
    for feature, how, mode in modes:
        r = measure(args, mode, wav, work / f"out_{len(rows)}.npy")
        outputs[feature, how] = np.load(work / f"out_{len(rows)}.npy")
        rows.append([feature, how, r])
    whole = {f: outputs[f, h] for f, h in outputs if h.startswith("whole")}
    centroids = train_kmeans(whole[trained_name], 100, seed=0).centroids
    units_whole, _ = CentroidIndex(centroids).assign(whole[trained_name])
    near = near_cuts(len(units_whole), len(units_whole) / (args.long_minutes * 60), piece)
    lines = []
    for feature, how, r in rows:
        x, ref = outputs[feature, how], whole.get(feature)
        diff = agree = agree_near = "-"
        if ref is not None and not how.startswith("whole"):
            diff = f"{np.linalg.norm(x - ref) / np.linalg.norm(ref):.2e} (max {np.abs(x - ref).max():.3g})"
            if feature == trained_name:
                units, _ = CentroidIndex(centroids).assign(x)
                agree, agree_near = f"{(units == units_whole).mean():.4f}", f"{(units == units_whole)[near].mean():.4f}"
        lines.append(
            f"| {feature} | {how} | {r['frames']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['peak_mb'] - r['loaded_mb']:.0f} | {diff} | {agree} | {agree_near} |"
        )
    return lines + [
        "",
        f"- trained model: {describe_checkpoint(trained)}",
        f"- the scale part's model: {describe_checkpoint(base_checkpoint)}",
    ]


def long_record(args, argv, rows: List[str]) -> List[str]:
    out = header(f"A {args.long_minutes:g}-minute recording: features whole and in pieces (CPU)", argv, args.threads)
    return out + [
        f"- audio: the speech folder's utterances end to end ({', '.join(SPEECH_TSVS)}, in order), "
        f"{args.long_minutes:g} min at 16 kHz, float32 in memory ({args.long_minutes * 60 * 16000 * 4 / 1e6:.0f} MB)",
        "",
        "Each row is a fresh process: peak = its peak RSS (VmHWM) while computing, started again (clear_refs) "
        "once the audio and the model were loaded; added = that peak minus the RSS at that moment. Time: the "
        "computation alone, wall clock and CPU, provisional (shared machine, load above). Difference: "
        "||pieces - whole|| / ||whole|| over all frames. Labels: units of the 100 k-means centroids learned on "
        f"the whole's features, the fraction of frames whose unit is the whole's; 'near a cut': frames within "
        f"{NEAR_CUT_SECONDS:g} s of a boundary between pieces.",
        "",
        "| features | how | frames | wall (s) | CPU (s) | peak RSS (MB) | added (MB) | difference vs whole | labels same "
        "| near a cut |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
        *rows,
    ]


# ----------------------------------------------------------------------------- main
def write(args, name: str, lines: List[str]) -> None:
    from fast_hubert_plugin.utils.atomic import atomic_write_text

    print("\n".join(lines))
    if args.output_dir:
        atomic_write_text(Path(args.output_dir, name), "\n".join(lines) + "\n")
        print(f"wrote {Path(args.output_dir, name)}")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    set_threads(args.threads)
    parts = args.part.split(",")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="labels_at_scale_")).resolve()
    speech = Path(args.speech_dir).resolve()
    base = args.checkpoint or base_shaped_checkpoint(work / "base.pt") if {"scale", "long"} & set(parts) else None
    if "scale" in parts:
        hours = speech_manifest(speech, args.minutes, work / "scale" / "train.tsv")
        stages = scale_stages(args, work / "scale", work / "scale" / "train.tsv", base)
        write(args, "labels_at_scale_cpu.md", scale_record(args, argv, hours, base, stages))
    if "float16" in parts:
        write(args, "dump_float16_cpu.md", float16_record(args, argv, float16_rows(args, work / "float16")))
    if "long" in parts:
        (work / "long").mkdir(parents=True, exist_ok=True)
        write(args, "long_recording_cpu.md", long_record(args, argv, long_rows(args, work / "long", speech, base)))


if __name__ == "__main__":
    main()
