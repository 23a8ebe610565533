"""The whole job on real speech, from audio to a recognizer, on a CPU in about 15 minutes.

    prepare manifests -> CMVN -> MFCC -> FAISS k-means (iteration 1) -> pretrain a tiny fast_hubert
    -> iteration-2 clustering on one of its layers -> fine-tune letter CTC -> decode -> report

Data, in this order: ``--speech-dir DIR`` (or ``$FAST_HUBERT_SPEECH_DIR``); the speech folder beside
the repository (``../shared/speech``: speechocean762 train / dev with transcripts, LibriSpeech
excerpts without) when present; otherwise Mini LibriSpeech (OpenSLR 31: ``train-clean-5`` for
pretraining and fine-tuning, 300 ``dev-clean-2`` utterances for dev), downloaded once (458 MB;
resumable, MD5-verified) into ``~/.cache/fast-hubert`` (``--cache-dir`` or ``$FAST_HUBERT_CACHE``).
A folder of your own: every .flac/.wav below it is pretraining audio; ``--transcripts TSV`` (columns
``path`` relative to DIR, ``text``) adds fine-tuning and scoring, its last 15 % of rows as dev set.
Every stage writes into ``--work-dir`` and is skipped when its outputs are already there.
"""
import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from fast_hubert_plugin.data.download import DownloadError
from fast_hubert_plugin.recipes.corpus import SPEECH_ENV, load_corpus, resolve_speech_dir

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A few minutes of CTC on a tiny model: train the Transformer from the first update (front-end
# frozen, as the recipes), at a higher peak rate, in small batches, without masking/SpecAugment.
FINETUNE_FAST_START = ["optimization.lr=[0.001]", "model.freeze_finetune_updates=0", "dataset.max_tokens=2000",
                       "model.apply_mask=false"]


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


class Stage:
    """A stage of the demo: skipped when its marker exists; timed; marker written on success."""

    def __init__(self, work: Path, name: str, title: str, timings: dict):
        self.marker = work / ".done" / name
        self.name, self.title, self.timings = name, title, timings

    def __enter__(self):
        self.start = time.time()
        self.skip = self.marker.exists()
        print(f"\n== {self.title}" + (" (done before: skipped)" if self.skip else ""), flush=True)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not self.skip:
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.timings[self.name] = round(time.time() - self.start, 1)
            self.marker.write_text(json.dumps({"seconds": self.timings[self.name]}))
        elif self.skip:
            self.timings[self.name] = json.loads(self.marker.read_text())["seconds"]
        return False


def run(cmd, log: Path = None):
    """Run a CLI; its output goes to the console, or to ``log`` (shown on failure)."""
    cmd = [str(c) for c in cmd]
    if log is None:
        subprocess.run(cmd, check=True)
        return
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n--- last lines of {log} ---\n" + "".join(open(log).readlines()[-40:]))


def run_training(cmd, log: Path, max_update: int, desc: str):
    """fairseq-hydra-train with a progress bar that follows num_updates in its JSON logs."""
    cmd = [str(c) for c in cmd]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as f, tqdm(total=max_update, desc=desc, unit="upd") as bar:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            f.write(line)
            if "[train_inner]" in line and "{" in line:
                rec = json.loads(line[line.index("{"):])
                bar.update(int(rec["num_updates"]) - bar.n)
                bar.set_postfix(loss=rec.get("loss"))
        proc.wait()
    if proc.returncode != 0:
        sys.exit(f"training failed, see {log}:\n" + "".join(open(log).readlines()[-40:]))


def train(config_dir: Path, config_name: str, run_dir: Path, overrides, expected_updates: int, desc: str,
          log: Path = None) -> float:
    """A fresh ``fairseq-hydra-train`` run of a config with the plugin in ``run_dir``; its seconds."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    start = time.time()
    run_training([tool("fairseq-hydra-train"), "--config-dir", config_dir, "--config-name", config_name,
                  f"common.user_dir={REPO / 'fast_hubert_plugin'}", f"hydra.run.dir={run_dir}", *overrides],
                 log or run_dir / "train.log", expected_updates, desc)
    return time.time() - start


def log_records(log: Path, tag: str):
    out = []
    for line in open(log):
        if f"[{tag}]" in line and "{" in line:
            out.append(json.loads(line[line.index("{"):]))
    return out


def write_table(path: Path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "text"])
        for r in rows:
            w.writerow([r["path"], r["text"]])


def plot_curves(pre_log: Path, ft_log: Path, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = log_records(pre_log, "train_inner")
    fig, axes = plt.subplots(1, 3 if ft_log else 2, figsize=(15 if ft_log else 10, 3.6))
    steps = [int(r["num_updates"]) for r in recs]
    axes[0].plot(steps, [float(r["loss"]) for r in recs])
    axes[0].set(title="pretraining: masked CE (bits)", xlabel="update")
    for key in sorted(k for k in recs[-1] if k.startswith("acc_m_")):
        axes[1].plot(steps, [float(r[key]) for r in recs], label=key.replace("acc_m_", "block "))
    axes[1].set(title="pretraining: masked-unit accuracy", xlabel="update")
    axes[1].legend()
    if ft_log:
        ft = log_records(ft_log, "train_inner")
        axes[2].plot([int(r["num_updates"]) for r in ft], [float(r["loss"]) for r in ft], label="train CTC loss")
        val = log_records(ft_log, "valid")
        if val and "valid_wer" in val[0]:
            ax2 = axes[2].twinx()
            ax2.plot([int(r["valid_num_updates"]) for r in val], [float(r["valid_wer"]) for r in val], "r.-",
                     label="valid WER")
            ax2.set_ylabel("valid WER (%)")
        axes[2].set(title="fine-tuning", xlabel="update")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def cluster(manifests: Path, feats: Path, dump_args, km: Path, labels: Path, label_rate: int, clusters: int,
            report_dir: Path):
    """dump -> FAISS k-means on 20 % of the training frames -> labels of both splits -> usage report."""
    for split in ("train", "valid"):
        run([tool("fast-hubert-dump"), manifests / f"{split}.tsv", feats, *dump_args])
    run([tool("fast-hubert-learn-kmeans"), feats, "train", km, "--n-clusters", clusters, "--percent", "0.2",
         "--seed", "1"])
    for split in ("train", "valid"):
        run([tool("fast-hubert-apply-kmeans"), feats, split, km, labels, "--label-rate", label_rate])
    run([tool("fast-hubert-cluster-report"), labels / "valid.km", report_dir, "--label-rate", label_rate,
         "--dict", labels / "dict.km.txt"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech-dir", type=Path,
                   help=f"folder of 16 kHz audio (default: ${SPEECH_ENV}, else ../shared/speech beside the repo, "
                        "else Mini LibriSpeech, downloaded)")
    p.add_argument("--cache-dir", type=Path, help="where Mini LibriSpeech is downloaded "
                   "(default: $FAST_HUBERT_CACHE or ~/.cache/fast-hubert)")
    p.add_argument("--corpus-url", help="Mini LibriSpeech mirror (default: $FAST_HUBERT_MINI_LIBRISPEECH_URL or OpenSLR)")
    p.add_argument("--transcripts", type=Path, default=os.environ.get("FAST_HUBERT_TRANSCRIPTS"),
                   help="TSV with 'path' (relative to --speech-dir) and 'text' columns, for fine-tuning")
    p.add_argument("--work-dir", type=Path, default=REPO / "demo_output", help="everything is written here")
    p.add_argument("--clusters", type=int, default=100, help="k-means units of both iterations")
    p.add_argument("--pretrain-updates", type=int, default=600)
    p.add_argument("--finetune-updates", type=int, default=1000)
    p.add_argument("--iteration2-layer", type=int, default=3, help="1-based block of the tiny model to cluster")
    p.add_argument("--stop-after", choices=["iteration1"], help="only prepare data and iteration-1 labels")
    args = p.parse_args(argv)

    try:
        speech = resolve_speech_dir(args.speech_dir, cache_dir=args.cache_dir, base_url=args.corpus_url)
        pretrain_rows, train_rows, dev_rows = load_corpus(speech, args.transcripts)
    except (DownloadError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if not train_rows:
        print("no transcripts: pretraining and clustering only (no fine-tuning, no WER)")
    work = args.work_dir.resolve()
    data, feats, labels, reports = work / "data", work / "features", work / "labels", work / "report"
    for d in (data, feats, labels, reports):
        d.mkdir(parents=True, exist_ok=True)
    timings, summary = {}, {}
    t0 = time.time()
    finetune = bool(train_rows)
    random.Random(0).shuffle(pretrain_rows)
    n_valid = max(16, len(pretrain_rows) // 50)

    with Stage(work, "prepare", "1/8 manifests (fairseq format) and letter targets", timings) as s:
        if not s.skip:
            write_table(work / "pretrain_train.tsv", pretrain_rows[n_valid:])
            write_table(work / "pretrain_valid.tsv", pretrain_rows[:n_valid])
            run([tool("fast-hubert-prepare-ctc"), work / "pretrain_train.tsv", "--split", "train", "--no-text",
                 "--output-dir", data / "pretrain"])
            run([tool("fast-hubert-prepare-ctc"), work / "pretrain_valid.tsv", "--split", "valid", "--no-text",
                 "--output-dir", data / "pretrain"])
            if finetune:
                write_table(work / "ctc_train.tsv", train_rows)
                write_table(work / "ctc_dev.tsv", dev_rows)
                run([tool("fast-hubert-prepare-ctc"), work / "ctc_train.tsv", "--split", "train", "--write-dict",
                     "--output-dir", data / "ctc"])
                run([tool("fast-hubert-prepare-ctc"), work / "ctc_dev.tsv", "--split", "valid",
                     "--output-dir", data / "ctc"])

    with Stage(work, "cmvn", "2/8 global CMVN statistics of the pretraining audio", timings) as s:
        if not s.skip:
            run([tool("fast-hubert-cmvn"), data / "pretrain" / "train.tsv", "--output", data / "pretrain" / "cmvn.npz",
                 "--workers", "2"])

    it1 = labels / "it1"
    with Stage(work, "iteration1", f"3/8 MFCC features -> FAISS k-means ({args.clusters} units) -> 50 Hz labels",
               timings) as s:
        if not s.skip:
            cluster(data / "pretrain", feats / "mfcc", ["--feature", "mfcc"], work / "km_mfcc.npy", it1, 50,
                    args.clusters, reports)

    if args.stop_after == "iteration1":
        return work
    pre_dir = work / "pretrain_run"
    pre_ckpt = pre_dir / "checkpoints" / "checkpoint_last.pt"
    with Stage(work, "pretrain", f"4/8 pretrain a tiny fast_hubert ({args.pretrain_updates} updates)", timings) as s:
        if not s.skip:
            train(REPO / "config" / "pretraining", "fast_hubert_tiny_cpu", pre_dir,
                  [f"task.data={data / 'pretrain'}", f"task.label_dir={it1}", "model.label_rate=50",
                   f"optimization.max_update={args.pretrain_updates}", "dataset.validate_interval=1000",
                   f"dataset.validate_interval_updates={args.pretrain_updates // 3}",
                   f"checkpoint.save_interval_updates={args.pretrain_updates}"],
                  args.pretrain_updates, "pretrain")

    it2 = labels / "it2"
    layer = args.iteration2_layer
    with Stage(work, "iteration2", f"5/8 iteration 2: k-means on block {layer} of the pretrained model (25 Hz)",
               timings) as s:
        if not s.skip:
            cluster(data / "pretrain", feats / f"layer{layer}",
                    ["--feature", "layer", "--checkpoint", pre_ckpt, "--layer", layer, "--device", "cpu"],
                    work / "km_layer.npy", it2, 25, args.clusters, reports / "it2")

    ft_dir = work / "finetune_run"
    ft_ckpt = ft_dir / "checkpoints" / "checkpoint_last.pt"
    if finetune:
        with Stage(work, "finetune", f"6/8 fine-tune letter CTC ({args.finetune_updates} updates, hubert_ctc)",
                   timings) as s:
            if not s.skip:
                train(REPO / "config" / "finetuning", "tiny_cpu", ft_dir,
                      [f"task.data={data / 'ctc'}", f"task.label_dir={data / 'ctc'}", f"model.w2v_path={pre_ckpt}",
                       f"optimization.max_update={args.finetune_updates}", *FINETUNE_FAST_START,
                       "dataset.validate_interval=1000",
                       f"dataset.validate_interval_updates={args.finetune_updates // 4}",
                       f"checkpoint.save_interval_updates={args.finetune_updates}"],
                      args.finetune_updates, "fine-tune")
        with Stage(work, "decode", "7/8 Viterbi decoding of the dev set", timings) as s:
            if not s.skip:
                run([tool("fast-hubert-decode"), ft_ckpt, "--data", data / "ctc", "--split", "valid",
                     "--results-dir", work / "decode"])
        summary["scores"] = json.loads((work / "decode" / "scores.json").read_text())

    print("\n== 8/8 report", flush=True)
    pre_recs = log_records(pre_dir / "train.log", "train_inner")
    pre_valid = log_records(pre_dir / "train.log", "valid")
    plot_curves(pre_dir / "train.log", ft_dir / "train.log" if finetune else None, reports / "training_curves.png")
    it1_rep = json.loads((reports / "valid_km_report.json").read_text())
    it2_rep = json.loads((reports / "it2" / "valid_km_report.json").read_text())
    lines = [
        "# fast-hubert demo report", "",
        f"Data: {speech} ({len(pretrain_rows)} utterances for pretraining"
        + (f", {len(train_rows)} for CTC fine-tuning, {len(dev_rows)} dev)" if finetune else ")"),
        "", "| stage | seconds |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in timings.items()],
        f"| total (this run) | {round(time.time() - t0)} |", "",
        "## Pretraining (tiny fast_hubert, 4 x 256, 40 ms frames, ILS on blocks 2 and 4)", "",
        f"- updates: {pre_recs[-1]['num_updates']}; masked CE: {pre_recs[0]['loss']} -> {pre_recs[-1]['loss']} bits",
        *[f"- masked-unit accuracy, block {k[6:]}: {pre_recs[-1][k]}" for k in sorted(pre_recs[-1]) if k.startswith("acc_m_")],
        *([f"- valid masked CE: {pre_valid[-1]['valid_loss']} bits"] if pre_valid else []),
        "", "## Clustering", "",
        f"- iteration 1 (MFCC, 50 Hz): {it1_rep.get('used_units')} of {it1_rep.get('n_units')} units used, "
        f"perplexity {it1_rep.get('perplexity', 0):.1f}",
        f"- iteration 2 (block {layer}, 25 Hz): {it2_rep.get('used_units')} of {it2_rep.get('n_units')} units used, "
        f"perplexity {it2_rep.get('perplexity', 0):.1f}",
        "", "![training curves](training_curves.png)", "", "![iteration-1 unit usage](valid_km_usage.png)", "",
    ]
    if finetune:
        sc = summary["scores"]
        lines += ["## Fine-tuning and decoding (letter CTC, Viterbi, no LM)", "",
                  f"- dev: **CER {sc['cer']:.2f} %, WER {sc['wer']:.2f} %** ({sc.get('utterances', len(dev_rows))} utterances)",
                  f"- hypotheses: {work / 'decode' / 'hypo.word'}", ""]
    (reports / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines[lines.index("## Pretraining (tiny fast_hubert, 4 x 256, 40 ms frames, ILS on blocks 2 and 4)"):]))
    print(f"\nreport: {reports / 'summary.md'}")


if __name__ == "__main__":
    main()
