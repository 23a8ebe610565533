"""Does the tiny pretraining learn from the audio? True labels against two controls, over seeds.

The test suite's pretraining run (``tests/conftest.py``: ``pretraining_data``, ``pretrained_tiny``) is
repeated here with several seeds, beside the same run on labels that no longer belong to the audio, and
both are scored on the true labels of held-out utterances. The margins that ``tests/test_pretraining_cli.py``
asserts are set well inside what this record shows:

- **unigram**: the cross-entropy (bits) of the held-out units under the training units' frequencies, and
  the accuracy of always guessing the most frequent unit: what a model learns from the labels alone;
- **shuffled**: the same training, each training utterance given another utterance's units (a fixed
  derangement, stretched to its own length): the same unit frequencies, nothing to learn from the audio.

Then the suite's fine-tuning (``finetuned``): each seed's true-label model fine-tuned with letter CTC on 20
speechocean762 utterances, and its Viterbi transcripts of those utterances scored (CER, WER, sentences right)
against the best transcript that ignores the audio (``audio_free_cer``).

Scored: the validation the run does at its last update (fairseq's ``valid`` record: masked-frame
cross-entropy in bits and masked-unit accuracy of the last block's head, ``loss_m_L4`` / ``acc_m_L4``),
on the held-out utterances' true units.

The data is the suite's (``tests/data/speech``: 48 speechocean762 + 8 LibriSpeech training utterances,
16 speechocean762 dev utterances held out; fbank k-means units, K=50, 50 Hz); ``write_pretraining_data``
builds it for the tests and for this script alike.

    python benchmarks/learning_controls.py [--seeds 1 2 3 4 5] [--finetune-seeds 1 2 3] [--jobs 2]

Runs kept in ``--work-dir`` are reused (each writes its result.json last). Writes ``benchmarks/results/learning_controls_cpu.md``.
"""

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from common import REPO, RESULTS, machine, reproduce

TEST_SPEECH = REPO / "tests" / "data" / "speech"
CLUSTERS = 50
LABEL = "km"
UPDATES = 150  # the suite's pretrained_tiny
SCORED_HEAD = "m_L4"  # the last block's head (the tiny config supervises blocks 2 and 4)


# ----------------------------------------------------------------------------- the suite's data
def corpus_rows(speech_dir: Path, name: str) -> List[Dict[str, str]]:
    with open(Path(speech_dir) / name, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_manifest(path: Path, rows: Sequence[Dict[str, str]], root: Path) -> Path:
    """fairseq manifest: the audio root line, then path<TAB>num_samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{root}\n")
        for r in rows:
            f.write(f"{r['path']}\t{r['num_samples']}\n")
    return path


def write_input_tsv(
    path: Path, rows, speech_root: Path, relative: bool = True, columns=("id", "path", "num_samples", "text")
) -> Path:
    """A transcribed TSV like the corpus ones (fast-hubert-prepare-ctc's input), paths relative to its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(columns) + "\n")
        for r in rows:
            audio = Path(speech_root) / r["path"]
            r = dict(r, path=os.path.relpath(audio, path.parent) if relative else str(audio))
            f.write("\t".join(str(r[c]) for c in columns) + "\n")
    return path


def write_manifests(out: Path, speech_dir: Path = TEST_SPEECH) -> Path:
    """train: 48 so762 + 8 LibriSpeech utterances; valid: 16 so762 dev utterances (fairseq manifests)."""
    train = (
        corpus_rows(speech_dir, "so762_train.tsv")[:48] + corpus_rows(speech_dir, "librispeech_train_clean_100.tsv")[:8]
    )
    write_manifest(out / "train.tsv", train, speech_dir)
    write_manifest(out / "valid.tsv", corpus_rows(speech_dir, "so762_dev.tsv")[:16], speech_dir)
    return out


def write_pretraining_data(d: Path) -> Path:
    """To the manifests in ``d``: CMVN stats and 50 Hz k-means units (CMVN'd fbank, K=50) with their dictionary."""
    import faiss

    from fast_hubert_plugin.data.cmvn_stats import compute_cmvn
    from fast_hubert_plugin.data.manifest import read_manifest
    from fast_hubert_plugin.features import compute_fbank, read_audio

    cmvn = compute_cmvn(d / "train.tsv", progress=False)
    cmvn.save(d / "cmvn.npz")
    feats = {}
    for split in ("train", "valid"):
        m = read_manifest(d / f"{split}.tsv")
        feats[split] = [cmvn(compute_fbank(read_audio(m.audio_path(i)))) for i in range(len(m))]
    km = faiss.Kmeans(80, CLUSTERS, niter=20, seed=1)
    km.train(np.concatenate(feats["train"]).astype(np.float32))
    for split, rows in feats.items():
        with open(d / f"{split}.{LABEL}", "w") as f:
            for x in rows:  # 100 Hz frames -> 50 Hz labels: every second frame
                _, ids = km.index.search(np.ascontiguousarray(x[::2], dtype=np.float32), 1)
                f.write(" ".join(map(str, ids[:, 0])) + "\n")
    with open(d / f"dict.{LABEL}.txt", "w") as f:
        f.writelines(f"{i} 1\n" for i in range(CLUSTERS))
    return d


# ----------------------------------------------------------------------------- controls and baselines
def shuffled_units(lines: Sequence[str], seed: int = 0) -> List[str]:
    """Each line gets the units of another line (a derangement drawn from ``seed``), stretched or shrunk
    to its own length by nearest index: the same units in the same proportions, unrelated to the audio."""
    n = len(lines)
    if n < 2:
        raise ValueError("shuffling needs at least two utterances")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if not (order == np.arange(n)).any():
            break
    out = []
    for i, j in enumerate(order):
        src, length = lines[j].split(), len(lines[i].split())
        out.append(" ".join(src[k * len(src) // length] for k in range(length)))
    return out


def shuffled_label_dir(data: Path, out: Path, seed: int = 0) -> Path:
    """A label folder whose training units are shuffled across utterances; valid keeps the true units."""
    out.mkdir(parents=True, exist_ok=True)
    train = (data / f"train.{LABEL}").read_text().splitlines()
    (out / f"train.{LABEL}").write_text("".join(line + "\n" for line in shuffled_units(train, seed)))
    for name in (f"valid.{LABEL}", f"dict.{LABEL}.txt"):
        shutil.copyfile(data / name, out / name)
    return out


def model_frame_units(path: Path, stride: int = 2) -> List[int]:
    """The units the model predicts: every ``stride``-th 50 Hz label (40 ms frames), of every line."""
    return [int(u) for line in path.read_text().splitlines() for u in line.split()[::stride]]


def unigram_baseline(data: Path) -> Dict[str, float]:
    """Cross-entropy (bits) of the held-out units under the training units' frequencies (add-one), and the
    accuracy of always predicting the most frequent training unit."""
    train, valid = model_frame_units(data / f"train.{LABEL}"), model_frame_units(data / f"valid.{LABEL}")
    counts = np.bincount(train, minlength=CLUSTERS) + 1.0
    p = counts / counts.sum()
    ce = float(-np.mean(np.log2(p[valid])))
    majority = int(np.argmax(counts))
    return {"ce_bits": ce, "majority_acc": float(np.mean(np.asarray(valid) == majority))}


def last_valid(log_text: str) -> Dict[str, float]:
    """Masked-frame CE (bits) and accuracy of the scored head at the last validation."""
    from fast_hubert_plugin.recipes.runner import parse_log_records

    valid = parse_log_records(log_text, "valid")
    if not valid:
        raise ValueError("no [valid] record in the log: the run did not validate")
    rec = valid[-1]
    return {"loss": float(rec[f"valid_loss_{SCORED_HEAD}"]), "acc": float(rec[f"valid_acc_{SCORED_HEAD}"])}


def audio_free_cer(refs: Sequence[str]) -> float:
    """CER (%) of the best transcript that ignores the audio: nothing (a CTC model in its all-blank stage,
    100 %), or the most frequent letter, repeated the number of times that scores best, for every utterance."""
    from fast_hubert_plugin.finetuning.ctc import cer

    letter = Counter(c for r in refs for c in r if c != " ").most_common(1)[0][0]
    return min(cer([letter * n] * len(refs), refs) for n in range(max(map(len, refs)) + 1))


# ----------------------------------------------------------------------------- the suite's fine-tuning
FINETUNE_TRAIN, FINETUNE_DEV = 20, 8  # so762 utterances; the training letters cover the dev ones
FINETUNE_UPDATES = 200


def write_finetuning_data(work: Path, speech_dir: Path = TEST_SPEECH) -> Dict[str, object]:
    """Letter CTC data by fast-hubert-prepare-ctc: {"data": folder, "train": rows, "dev": rows}."""
    from fast_hubert_plugin.recipes.runner import run_cli, tool

    splits = {
        "train": corpus_rows(speech_dir, "so762_train.tsv")[:FINETUNE_TRAIN],
        "valid": corpus_rows(speech_dir, "so762_dev.tsv")[:FINETUNE_DEV],
    }
    data = work / "data"
    for split, rows in splits.items():  # train first: it writes the letter dictionary
        tsv = write_input_tsv(work / "in" / f"{split}.tsv", rows, speech_dir)
        cmd = [tool("fast-hubert-prepare-ctc"), tsv, "--split", split, "--output-dir", data, "--quiet"]
        run_cli(cmd, work / "in" / f"prepare_{split}.log")
    return {"data": data, "train": splits["train"], "dev": splits["valid"]}


def finetune_overrides(updates: int = FINETUNE_UPDATES) -> List[str]:
    """The suite's fine-tuning (tests/conftest.py ``finetuned``): the tiny CPU fine-tuning config, these
    overrides. The encoder trains from the first update (no freeze): 20 utterances are learnt in 200."""
    return [f"optimization.max_update={updates}", "model.freeze_finetune_updates=0"]


# ----------------------------------------------------------------------------- runs
def run_overrides(updates: int = UPDATES) -> List[str]:
    """The suite's pretraining run (tests/conftest.py ``pretrained_tiny``): the tiny CPU config with these
    overrides, validated and saved half-way and at the end."""
    return [
        "model.label_rate=50",
        f"optimization.max_update={updates}",
        "common.log_interval=5",
        f"checkpoint.save_interval_updates={updates // 2}",
        f"dataset.validate_interval_updates={updates // 2}",
        "dataset.validate_interval=1000",
    ]


def hydra_train(kind: str, config: str, run_dir: Path, overrides: Sequence[str], threads: int) -> float:
    """fairseq-hydra-train with the plugin, its output in run_dir/train.log; its CPU seconds."""
    from fast_hubert_plugin.config import config_dir
    from fast_hubert_plugin.recipes.runner import run_cli, tool

    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [tool("fairseq-hydra-train"), "--config-dir", config_dir(kind), "--config-name", config]
    cmd += [f"common.user_dir={REPO / 'fast_hubert_plugin'}", f"hydra.run.dir={run_dir}", *overrides]
    return run_cli(cmd, run_dir / "train.log", threads=threads).cpu_s


def stored(run_dir: Path) -> Optional[Dict[str, float]]:
    """The result of a run finished before (its result.json, written last), else None."""
    path = run_dir / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def store(run_dir: Path, result: Dict[str, float]) -> Dict[str, float]:
    from fast_hubert_plugin.utils.atomic import atomic_write_text

    atomic_write_text(run_dir / "result.json", json.dumps(result))
    return result


def train(data: Path, labels: Path, run_dir: Path, updates: int, seed: int, threads: int = 1) -> Dict[str, float]:
    """The suite's tiny pretraining run with ``labels``; its last validation and CPU seconds."""
    if stored(run_dir):
        return stored(run_dir)
    overrides = [f"task.data={data}", f"task.label_dir={labels}", f"common.seed={seed}", *run_overrides(updates)]
    cpu_s = hydra_train("pretraining", "fast_hubert_tiny_cpu", run_dir, overrides, threads)
    return store(run_dir, dict(last_valid((run_dir / "train.log").read_text(errors="replace")), cpu_s=cpu_s))


def finetune(ft: Dict, pretrained: Path, run_dir: Path, seed: int, threads: int = 1) -> Dict[str, float]:
    """The suite's fine-tuning of ``pretrained``, then fast-hubert-decode of its training utterances."""
    from fast_hubert_plugin.recipes.runner import run_cli, tool

    if stored(run_dir):
        return stored(run_dir)
    data = ft["data"]
    overrides = [f"task.data={data}", f"task.label_dir={data}", f"model.w2v_path={pretrained}", f"common.seed={seed}"]
    overrides += ["dataset.validate_interval=1000", "checkpoint.save_interval=1000", *finetune_overrides()]
    cpu_s = hydra_train("finetuning", "tiny_cpu", run_dir, overrides, threads)
    out = run_dir / "decode_train"
    cmd = [tool("fast-hubert-decode"), run_dir / "checkpoints" / "checkpoint_last.pt", "--data", data]
    run_cli(cmd + ["--split", "train", "--results-dir", out, "--device", "cpu", "--quiet"], run_dir / "decode.log")
    scores = json.loads((out / "scores.json").read_text())
    hyps, refs = ((out / f"{name}.word").read_text().splitlines() for name in ("hypo", "ref"))
    right = sum(h == r for h, r in zip(hyps, refs))
    return store(run_dir, dict(cer=scores["cer"], wer=scores["wer"], sentences_right=right, cpu_s=cpu_s))


def spread(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def record(
    args, baseline: Dict[str, float], runs: Dict[str, Dict[int, Dict[str, float]]], ft: Dict, loads: Sequence[str]
) -> List[str]:
    true, shuffled, tuned = runs["true"], runs["shuffled"], runs["finetuned"]
    seeds = sorted(true)
    gain_unigram = [baseline["ce_bits"] - true[s]["loss"] for s in seeds]
    gain_shuffled = [shuffled[s]["loss"] - true[s]["loss"] for s in seeds]
    acc_gain = [true[s]["acc"] - max(shuffled[s]["acc"], baseline["majority_acc"]) for s in seeds]
    lines = [
        "# Learning controls: the suite's tiny pretraining against a unigram baseline and shuffled labels",
        "",
        f"Machine: {machine(args.threads)}.",
        f"Command: `{reproduce('learning_controls.py', args.argv)}`",
        f"Load average (1, 5, 15 min) at the start: {loads[0]}; at the end: {loads[1]} (CPU seconds, not wall-clock, "
        "are given: they grow less with the load).",
        "",
        f"The suite's run (tests/conftest.py `pretrained_tiny`): tiny fast_hubert + ILS (blocks 2 and 4), "
        f"{args.updates} updates, fbank k-means units (K={CLUSTERS}, 50 Hz) of 48 + 8 training utterances; "
        f"scored at the last update on the 16 held-out utterances' true units (masked frames, block 4). "
        "`shuffled`: the same run on training units shuffled across utterances. Seeds: "
        + ", ".join(map(str, seeds))
        + ".",
        "",
        f"Unigram baseline (held-out units under the training frequencies): **{baseline['ce_bits']:.3f} bits**; "
        f"always the most frequent unit: accuracy **{baseline['majority_acc']:.4f}**.",
        "",
        "| seed | true: CE (bits) | true: accuracy | shuffled: CE (bits) | shuffled: accuracy | CPU s (true, shuffled) |",
        "|---|---|---|---|---|---|",
    ]
    for s in seeds:
        lines.append(
            f"| {s} | {true[s]['loss']:.3f} | {true[s]['acc']:.4f} | {shuffled[s]['loss']:.3f} | "
            f"{shuffled[s]['acc']:.4f} | {true[s]['cpu_s']:.0f}, {shuffled[s]['cpu_s']:.0f} |"
        )
    lines += [
        "",
        "Margins, mean (min-max over seeds):",
        "",
        f"- unigram CE - true CE: {spread(gain_unigram)} bits",
        f"- shuffled CE - true CE: {spread(gain_shuffled)} bits",
        f"- true accuracy - max(shuffled accuracy, majority accuracy): {spread(acc_gain)}",
        f"- true accuracy: {spread([true[s]['acc'] for s in seeds])}; "
        f"shuffled accuracy: {spread([shuffled[s]['acc'] for s in seeds])}",
        "",
    ]
    if tuned:
        ft_seeds = sorted(tuned)
        lines += [
            "## Fine-tuning (tests/conftest.py `finetuned`)",
            "",
            f"The true-label model of each seed fine-tuned with letter CTC (finetuning/tiny_cpu.yaml, "
            f"{' '.join(finetune_overrides())}) on {FINETUNE_TRAIN} speechocean762 utterances, the same seed; "
            f"fast-hubert-decode (Viterbi) of those utterances. The best transcript that ignores the audio "
            f"(nothing, or the most frequent letter repeated): CER **{ft['audio_free_cer']:.1f} %**.",
            "",
            "| seed | training-set CER % | WER % | sentences right (of 20) | CPU s |",
            "|---|---|---|---|---|",
        ]
        for s in ft_seeds:
            r = tuned[s]
            lines.append(f"| {s} | {r['cer']:.1f} | {r['wer']:.1f} | {r['sentences_right']} | {r['cpu_s']:.0f} |")
        cers = [tuned[s]["cer"] for s in ft_seeds]
        lines += ["", f"Training-set CER, mean (min-max): {spread(cers)} %", ""]
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--finetune-seeds", type=int, nargs="*", default=[1, 2, 3], help="of --seeds; none: no fine-tuning")
    p.add_argument("--updates", type=int, default=UPDATES, help="as the suite's pretrained_tiny")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (1 thread each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--work-dir", type=Path, help="keep the runs here and reuse them (default: a temporary folder)")
    p.add_argument("--output", type=Path, default=RESULTS / "learning_controls_cpu.md")
    args = p.parse_args(argv)
    if not set(args.finetune_seeds) <= set(args.seeds):
        p.error("--finetune-seeds must be among --seeds")
    given = list(argv if argv is not None else sys.argv[1:])
    if "--work-dir" in given:  # where the runs are kept changes no number: the record leaves it out
        i = given.index("--work-dir")
        del given[i : i + 2]
    args.argv = given
    return args


def main(argv=None):
    args = parse_args(argv)
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        data = work / "data"
        if not (data / f"dict.{LABEL}.txt").exists():
            write_pretraining_data(write_manifests(data))
        labels = {"true": data, "shuffled": shuffled_label_dir(data, work / "shuffled")}
        ft = write_finetuning_data(work / "finetune") if args.finetune_seeds else {}
        jobs = [(kind, seed) for seed in args.seeds for kind in labels]

        def run(job):
            kind, seed = job
            result = train(data, labels[kind], work / "runs" / f"{kind}_s{seed}", args.updates, seed, args.threads)
            if kind == "true" and seed in args.finetune_seeds:
                pretrained = work / "runs" / f"true_s{seed}" / "checkpoints" / "checkpoint_last.pt"
                tuned = finetune(ft, pretrained, work / "runs" / f"finetuned_s{seed}", seed, args.threads)
                print(json.dumps({"kind": "finetuned", "seed": seed, **tuned}), flush=True)
                result = dict(result, finetuned=tuned)
            print(json.dumps({"kind": kind, "seed": seed, **result}), flush=True)
            return job, result

        runs: Dict[str, Dict[int, Dict[str, float]]] = {kind: {} for kind in (*labels, "finetuned")}
        with ThreadPoolExecutor(args.jobs) as pool:
            for (kind, seed), result in pool.map(run, jobs):
                if "finetuned" in result:
                    runs["finetuned"][seed] = result.pop("finetuned")
                runs[kind][seed] = result
        if ft:
            refs = [" ".join(r["text"].split()) for r in ft["train"]]
            ft = dict(ft, audio_free_cer=audio_free_cer(refs))
        load_end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        lines = record(args, unigram_baseline(data), runs, ft, (load_start, load_end))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    if not all(math.isfinite(r["loss"]) for kind in ("true", "shuffled") for r in runs[kind].values()):
        sys.exit("a run's loss is not finite")


if __name__ == "__main__":
    main()
