"""HuBERT's two-iteration recipe, end to end, for any of the three model types.

    prepare manifests -> CMVN -> iteration-1 units (MFCC k-means, 50 Hz)
      -> pretrain (iteration 1) -> iteration-2 units (k-means of a block of that model)
      -> pretrain a new model from scratch on them (iteration 2) -> fine-tune letter CTC -> decode

The shared stages (data, CMVN, iteration-1 units) live in ``Workspace``; a ``Recipe`` is one model
type (``SYSTEMS``: fast_hubert, fast_hubert + ILS, stock fairseq ``hubert``) with one seed and its
updates per iteration, writing below ``workspace/runs/NAME``. Every stage is resumable: it is
skipped when its marker exists, and a training run that was killed resumes from its last
checkpoint when the stage is run again. The examples' demo and the benchmarks both run this module.

All three model types share the tiny Transformer (4 x 256) of the package's
``config/pretraining/fast_hubert_tiny_cpu.yaml`` and its optimiser; stock HuBERT keeps its own
waveform CNN (50 Hz), projection and cosine-similarity loss, through fairseq's own ``hubert``
model, task and criterion, configured by ``hubert_tiny_cpu.yaml`` (pretraining and fine-tuning).
"""

import csv
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..config import config_dir
from .corpus import Corpus
from .runner import Stage, Usage, log_records, run_cli, run_training, tool

PLUGIN = Path(__file__).resolve().parents[1]  # the package folder: fairseq's common.user_dir
PRETRAINING_CONFIGS = config_dir("pretraining")
FINETUNING_CONFIGS = config_dir("finetuning")
ITERATION1_LABEL_RATE = 50  # HuBERT's MFCC units at 50 Hz; fast_hubert uses every second one (25 Hz frames)


@dataclass(frozen=True)
class System:
    """A model type of the recipe: its tiny configs (pretraining and fine-tuning) and overrides of
    them, its frame rate (Hz), and what its sizes count per second of audio."""

    name: str
    title: str
    frame_rate: int
    pretraining_config: str = "fast_hubert_tiny_cpu"
    finetuning_config: str = "tiny_cpu"
    size_rate: int = 100  # max_tokens per second of audio: fbank frames (fast_hubert), 16 kHz samples (hubert)
    pretraining_overrides: Sequence[str] = ()


SYSTEMS: Dict[str, System] = {
    "fast_hubert": System("fast_hubert", "fast_hubert", 25, pretraining_overrides=('model.supervised_layers="[]"',)),
    "fast_hubert_ils": System(
        "fast_hubert_ils",
        "fast_hubert + ILS (blocks 2, 4)",
        25,
        pretraining_overrides=('model.supervised_layers="[2]"',),
    ),
    # fairseq's own hubert_pretraining task, hubert model and criterion, sized as the tiny fast_hubert
    "hubert": System(
        "hubert",
        "stock HuBERT (waveform CNN, cosine loss)",
        50,
        pretraining_config="hubert_tiny_cpu",
        finetuning_config="hubert_tiny_cpu",
        size_rate=16000,
    ),
}


def finetune_fast_start(system: System) -> List[str]:
    """A few minutes of CTC on a tiny model: train the Transformer from the first update (front-end
    frozen, as fairseq's recipes), at a higher peak rate, in small batches (20 s of audio), without
    masking/SpecAugment."""
    return [
        "optimization.lr=[0.001]",
        "model.freeze_finetune_updates=0",
        f"dataset.max_tokens={20 * system.size_rate}",
        "model.apply_mask=false",
    ]


def write_table(path: Path, rows: Sequence[dict]):
    """The (path, text) TSV that fast-hubert-prepare-ctc reads."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "text"])
        for r in rows:
            w.writerow([r["path"], r["text"]])


def cluster(
    manifests: Path,
    feats: Path,
    dump_args: Sequence,
    km: Path,
    labels: Path,
    label_rate: int,
    clusters: int,
    report_dir: Path,
    logs: Path,
    threads: Optional[int] = None,
) -> Usage:
    """dump -> FAISS k-means on 20 % of the training frames -> labels of both splits -> usage report."""
    usages = []
    for split in ("train", "valid"):
        usages.append(
            run_cli(
                [tool("fast-hubert-dump"), manifests / f"{split}.tsv", feats, *dump_args],
                logs / f"dump_{split}.log",
                threads,
            )
        )
    usages.append(
        run_cli(
            [
                tool("fast-hubert-learn-kmeans"),
                feats,
                "train",
                km,
                "--n-clusters",
                clusters,
                "--percent",
                "0.2",
                "--seed",
                "1",
            ],
            logs / "learn_kmeans.log",
            threads,
        )
    )
    for split in ("train", "valid"):
        usages.append(
            run_cli(
                [tool("fast-hubert-apply-kmeans"), feats, split, km, labels, "--label-rate", label_rate],
                logs / f"apply_{split}.log",
                threads,
            )
        )
    usages.append(
        run_cli(
            [
                tool("fast-hubert-cluster-report"),
                labels / "valid.km",
                report_dir,
                "--label-rate",
                label_rate,
                "--dict",
                labels / "dict.km.txt",
            ],
            logs / "report.log",
            threads,
        )
    )
    return Usage(round(sum(u.wall_s for u in usages), 1), round(sum(u.cpu_s for u in usages), 1))


class Workspace:
    """The stages every system shares: manifests, CMVN and the iteration-1 (MFCC) units."""

    def __init__(
        self,
        work: Path,
        corpus: Corpus,
        clusters: int = 100,
        threads: Optional[int] = None,
        quiet: bool = False,
        device: Optional[str] = None,
    ):
        self.work = Path(work).resolve()
        self.corpus, self.clusters, self.threads, self.quiet = corpus, clusters, threads, quiet
        # "cpu" or "cuda" for every training, probe, dump and decode; None leaves each tool its own
        # choice (CUDA when present)
        self.device = device
        self.pretrain_data = self.work / "data" / "pretrain"
        self.ctc_data = self.work / "data" / "ctc"
        self.iteration1_labels = self.work / "labels" / "it1"
        self.reports = self.work / "report"
        self.logs = self.work / "logs"
        self.timings: Dict[str, float] = {}

    @property
    def transcribed(self) -> bool:
        return bool(self.corpus.train)

    def stage(self, name: str, title: str, **params) -> Stage:
        return Stage(self.work, name, title, quiet=self.quiet, params=params)

    def prepare(self):
        """fairseq manifests of the pretraining audio (2 % held out, at least 16) and of the CTC splits."""
        rows = list(self.corpus.pretrain)
        random.Random(0).shuffle(rows)
        n_valid = max(16, len(rows) // 50)
        with self.stage("prepare", "manifests (fairseq format) and letter targets") as s:
            if not s.done:
                self.work.mkdir(parents=True, exist_ok=True)
                prep = tool("fast-hubert-prepare-ctc")
                write_table(self.work / "pretrain_train.tsv", rows[n_valid:])
                write_table(self.work / "pretrain_valid.tsv", rows[:n_valid])
                for split in ("train", "valid"):
                    run_cli(
                        [
                            prep,
                            self.work / f"pretrain_{split}.tsv",
                            "--split",
                            split,
                            "--no-text",
                            "--output-dir",
                            self.pretrain_data,
                        ],
                        self.logs / f"prepare_pretrain_{split}.log",
                    )
                if self.transcribed:
                    write_table(self.work / "ctc_train.tsv", self.corpus.train)
                    write_table(self.work / "ctc_dev.tsv", self.corpus.dev)
                    run_cli(
                        [
                            prep,
                            self.work / "ctc_train.tsv",
                            "--split",
                            "train",
                            "--write-dict",
                            "--output-dir",
                            self.ctc_data,
                        ],
                        self.logs / "prepare_ctc_train.log",
                    )
                    run_cli(
                        [prep, self.work / "ctc_dev.tsv", "--split", "valid", "--output-dir", self.ctc_data],
                        self.logs / "prepare_ctc_valid.log",
                    )
        self.timings["prepare"] = s.seconds
        with self.stage("cmvn", "global CMVN statistics of the pretraining audio") as s:
            if not s.done:
                run_cli(
                    [
                        tool("fast-hubert-cmvn"),
                        self.pretrain_data / "train.tsv",
                        "--output",
                        self.pretrain_data / "cmvn.npz",
                        "--workers",
                        str(self.threads or 2),
                    ],
                    self.logs / "cmvn.log",
                )
        self.timings["cmvn"] = s.seconds
        return self

    def iteration1_units(self):
        """MFCC (39-dim) -> FAISS k-means -> 50 Hz labels of the pretraining splits."""
        with self.stage(
            "iteration1_units",
            f"iteration-1 units: MFCC -> FAISS k-means ({self.clusters}) -> {ITERATION1_LABEL_RATE} Hz labels",
            clusters=self.clusters,
        ) as s:
            if not s.done:
                usage = cluster(
                    self.pretrain_data,
                    self.work / "features" / "mfcc",
                    ["--feature", "mfcc"],
                    self.work / "km_mfcc.npy",
                    self.iteration1_labels,
                    ITERATION1_LABEL_RATE,
                    self.clusters,
                    self.reports / "it1",
                    self.logs / "it1",
                    self.threads,
                )
                s.result = usage._asdict()
        self.timings["iteration1_units"] = s.seconds
        return self

    def ctc_subset(self, max_rows: int, name: str = "probe_train") -> str:
        """A split of at most ``max_rows`` of the CTC training split, every k-th row so that every
        speaker stays in (a cheaper probe for the demo); returns the split's name."""
        with self.stage(name, f"{name}: at most {max_rows} rows of the CTC training split", max_rows=max_rows) as s:
            if not s.done:
                lines = {
                    ext: (self.ctc_data / f"train.{ext}").read_text(encoding="utf-8").splitlines(keepends=True)
                    for ext in ("tsv", "ltr", "wrd")
                }
                rows = len(lines["ltr"])
                step = max(1, -(-rows // max_rows))
                keep = range(0, rows, step)
                (self.ctc_data / f"{name}.tsv").write_text(
                    lines["tsv"][0] + "".join(lines["tsv"][1 + i] for i in keep), encoding="utf-8"
                )
                for ext in ("ltr", "wrd"):
                    (self.ctc_data / f"{name}.{ext}").write_text("".join(lines[ext][i] for i in keep), encoding="utf-8")
                s.result = {"rows": len(keep), "of": rows}
        return name


@dataclass
class PretrainingRun:
    """One finished pretraining run: its checkpoint, updates, cost and last logged accuracies."""

    checkpoint: str
    updates: int
    wall_s: float
    cpu_s: float
    log: str
    masked_accuracy: Dict[str, float] = field(default_factory=dict)


def masked_accuracy(record: dict) -> Dict[str, float]:
    """Masked-unit accuracy per supervised layer: ours logs ``acc_m_L<layer>``, fairseq's ``hubert``
    criterion ``correct_m_<i>`` already divided by ``count_m_<i>``."""
    out = {}
    for key, value in record.items():
        key = key[len("train_") :] if key.startswith("train_") else key  # end-of-epoch records
        if key.startswith(("acc_m_", "correct_m_")):
            out[key] = float(value)
    return out


def last_update(record: dict) -> int:
    return int(record.get("num_updates", record.get("train_num_updates", 0)))


def logged_progress(log: Path, planned: int) -> Dict:
    """Updates trained and the last masked accuracy, from fairseq's log: the end-of-epoch record has
    the final update (train_inner is logged every log_interval updates), train_inner the accuracy of
    the last updates rather than an epoch's mean."""
    inner, epochs = log_records(log, "train_inner"), log_records(log, "train")
    last = (inner or epochs)[-1:]
    return dict(
        updates=max((last_update(r) for r in inner[-1:] + epochs[-1:]), default=planned),
        masked_accuracy=masked_accuracy(last[0]) if last else {},
    )


def pretrain(
    work: Path,
    name: str,
    system: System,
    data: Path,
    labels: Path,
    label_rate: int,
    updates: int,
    seed: int = 1,
    extra: Sequence[str] = (),
    threads: Optional[int] = None,
    progress: bool = True,
    quiet: bool = False,
    device: Optional[str] = None,
) -> PretrainingRun:
    """Pretrain ``system`` for ``updates`` in ``work/name`` (resumed from its last checkpoint if killed)."""
    run_dir = Path(work) / name
    params = dict(system=system.name, labels=str(labels), updates=updates, seed=seed, extra=list(extra))
    with Stage(
        work, name, f"pretrain {system.title} ({updates} updates, seed {seed})", quiet=quiet, params=params
    ) as s:
        if not s.done:
            run_dir.mkdir(parents=True, exist_ok=True)
            interval = max(50, updates // 4)
            cmd = [
                tool("fairseq-hydra-train"),
                "--config-dir",
                PRETRAINING_CONFIGS,
                "--config-name",
                system.pretraining_config,
                f"common.user_dir={PLUGIN}",
                f"hydra.run.dir={run_dir}",
                f"task.data={data}",
                f"task.label_dir={labels}",
                f"model.label_rate={label_rate}",
                f"common.seed={seed}",
                f"optimization.max_update={updates}",
                "dataset.validate_interval=100000",
                f"dataset.validate_interval_updates={updates}",
                f"checkpoint.save_interval_updates={interval}",
                *system.pretraining_overrides,
                *extra,
                *device_overrides(device),
            ]
            usage = run_training(cmd, run_dir / "train.log", updates, name, threads, progress)
            # A killed attempt leaves no marker, so a resumed run's CPU is that of its last attempt only;
            # the budget itself is held by the updates (set from the calibrated cost), not by this figure.
            s.result = dict(
                checkpoint=str(run_dir / "checkpoints" / "checkpoint_last.pt"),
                wall_s=usage.wall_s,
                cpu_s=round(usage.cpu_s, 2),
                log=str(run_dir / "train.log"),
                **logged_progress(run_dir / "train.log", updates),
            )
    return PretrainingRun(**s.result)


def untrained(
    work: Path,
    name: str,
    system: System,
    data: Path,
    labels: Path,
    label_rate: int,
    quiet: bool = False,
    threads: Optional[int] = None,
    device: Optional[str] = None,
    extra: Sequence[str] = (),
) -> PretrainingRun:
    """The never-pretrained floor: the model's initial weights (``extra``: overrides such as its size),
    saved after one update at lr ~0."""
    return pretrain(
        work,
        name,
        system,
        data,
        labels,
        label_rate,
        1,
        extra=(*extra, "optimization.lr=[1e-30]"),
        threads=threads,
        progress=False,
        quiet=quiet,
        device=device,
    )


def iteration2_units(
    workspace: Workspace,
    name: str,
    run: PretrainingRun,
    system: System,
    layer: int,
    clusters: int,
    threads: Optional[int] = None,
) -> Dict:
    """k-means of block ``layer`` of an iteration-1 model -> labels at the model's frame rate."""
    labels = workspace.work / "labels" / name
    with workspace.stage(
        f"{name}_units",
        f"iteration-2 units: block {layer} of {Path(run.log).parent.name} -> k-means ({clusters})",
        checkpoint=run.checkpoint,
        layer=layer,
        clusters=clusters,
    ) as s:
        if not s.done:
            feats = workspace.work / "features" / name
            usage = cluster(
                workspace.pretrain_data,
                feats,
                [
                    "--feature",
                    "layer",
                    "--checkpoint",
                    run.checkpoint,
                    "--layer",
                    layer,
                    "--device",
                    workspace.device or "cpu",
                ],
                workspace.work / f"km_{name}.npy",
                labels,
                system.frame_rate,
                clusters,
                workspace.reports / name,
                workspace.logs / name,
                threads,
            )
            shutil.rmtree(feats, ignore_errors=True)  # the labels are what is kept; features are large
            s.result = dict(labels=str(labels), label_rate=system.frame_rate, layer=layer, **usage._asdict())
    return s.result


@dataclass
class Recipe:
    """One model type through both iterations (and, with transcripts, fine-tuning and decoding)."""

    workspace: Workspace
    system: System
    updates: Sequence[int] = (600, 600)  # pretraining updates of iteration 1 and iteration 2
    seed: int = 1
    iteration2_layer: int = 3
    iteration2_clusters: int = 100
    threads: Optional[int] = None
    tag: str = ""
    progress: bool = True
    overrides: Sequence[str] = ()  # fairseq-hydra-train overrides of both iterations (a tuned recipe)
    iteration2_tag: str = ""  # names iteration 2 apart from ``tag`` (iteration-2 variants of one iteration 1)

    @property
    def name(self) -> str:
        return self.tag or f"{self.system.name}_{self.updates[0]}_{self.updates[1]}_s{self.seed}"

    @property
    def iteration2_name(self) -> str:
        return f"{self.iteration2_tag or self.name}_it2"

    @property
    def runs(self) -> Path:
        return self.workspace.work / "runs"

    def iteration1(self) -> PretrainingRun:
        ws = self.workspace
        return pretrain(
            self.runs,
            f"{self.name}_it1",
            self.system,
            ws.pretrain_data,
            ws.iteration1_labels,
            ITERATION1_LABEL_RATE,
            self.updates[0],
            self.seed,
            self.overrides,
            threads=self.threads,
            progress=self.progress,
            quiet=ws.quiet,
            device=ws.device,
        )

    def iteration2(self, it1: PretrainingRun) -> PretrainingRun:
        units = iteration2_units(
            self.workspace,
            self.iteration2_name,
            it1,
            self.system,
            self.iteration2_layer,
            self.iteration2_clusters,
            self.threads,
        )
        return pretrain(
            self.runs,
            self.iteration2_name,
            self.system,
            self.workspace.pretrain_data,
            Path(units["labels"]),
            units["label_rate"],
            self.updates[1],
            self.seed,
            self.overrides,
            threads=self.threads,
            progress=self.progress,
            quiet=self.workspace.quiet,
            device=self.workspace.device,
        )

    def pretrain_both(self) -> List[PretrainingRun]:
        it1 = self.iteration1()
        return [it1, self.iteration2(it1)]


def device_overrides(device: Optional[str]) -> List[str]:
    """fairseq-hydra-train overrides that put a training on ``device`` (None: fairseq's choice)."""
    return ["common.cpu=true"] if device == "cpu" else []


def finetune(
    workspace: Workspace,
    name: str,
    pretrained: PretrainingRun,
    system: System,
    updates: int,
    threads: Optional[int] = None,
    progress: bool = True,
    seed: int = 1,
) -> Dict:
    """Letter CTC on the transcribed split through fairseq's hubert_ctc; fairseq's dev CER/WER.

    ``seed`` (fairseq's common.seed) draws the CTC head's initial weights, the batch order and dropout:
    the same seed from two upstreams is the same fine-tuning, and two seeds from one upstream its noise."""
    ws = workspace
    run_dir = ws.work / "runs" / name
    with ws.stage(
        name,
        f"fine-tune letter CTC from {Path(pretrained.log).parent.name} ({updates} updates, seed {seed})",
        checkpoint=pretrained.checkpoint,
        updates=updates,
        seed=seed,
    ) as s:
        if not s.done:
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd = [
                tool("fairseq-hydra-train"),
                "--config-dir",
                FINETUNING_CONFIGS,
                "--config-name",
                system.finetuning_config,
                f"common.user_dir={PLUGIN}",
                f"hydra.run.dir={run_dir}",
                f"task.data={ws.ctc_data}",
                f"task.label_dir={ws.ctc_data}",
                f"model.w2v_path={pretrained.checkpoint}",
                f"optimization.max_update={updates}",
                f"common.seed={seed}",
                *finetune_fast_start(system),
                "dataset.validate_interval=100000",
                f"dataset.validate_interval_updates={max(1, updates // 4)}",
                f"checkpoint.save_interval_updates={updates}",
                *device_overrides(ws.device),
            ]
            usage = run_training(cmd, run_dir / "train.log", updates, name, threads, progress)
            valid = log_records(run_dir / "train.log", "valid")
            s.result = dict(
                checkpoint=str(run_dir / "checkpoints" / "checkpoint_last.pt"),
                log=str(run_dir / "train.log"),
                valid_uer=float(valid[-1]["valid_uer"]) if valid else None,
                valid_wer=float(valid[-1]["valid_wer"]) if valid else None,
                **usage._asdict(),
            )
    return s.result


def decode(workspace: Workspace, name: str, finetuned: Dict) -> Dict:
    """Viterbi decoding of the dev split with fast-hubert-decode: its scores.json."""
    out = workspace.work / name
    title = f"Viterbi decoding of the dev set with {Path(finetuned['checkpoint']).parents[1].name}"
    with workspace.stage(name, title, checkpoint=finetuned["checkpoint"]) as s:
        if not s.done:
            run_cli(
                [
                    tool("fast-hubert-decode"),
                    finetuned["checkpoint"],
                    "--data",
                    workspace.ctc_data,
                    "--split",
                    "valid",
                    "--results-dir",
                    out,
                    *(["--device", workspace.device] if workspace.device else []),
                ],
                workspace.logs / f"{name}.log",
            )
            s.result = json.loads((out / "scores.json").read_text())
    return s.result


def recognizer(
    workspace: Workspace,
    tag: str,
    upstream: PretrainingRun,
    system: System,
    updates: int,
    seed: int = 1,
    threads: Optional[int] = None,
    progress: bool = True,
) -> Dict:
    """Fine-tune ``upstream`` (stage ``TAG_finetune``) and Viterbi-decode the dev set (``TAG_decode``):
    the fine-tuning's result with the decoding's ``scores`` (cer, wer, utterances, empty_hypotheses)."""
    ft = finetune(workspace, f"{tag}_finetune", upstream, system, updates, threads, progress, seed)
    return dict(ft, scores=decode(workspace, f"{tag}_decode", ft))


def probe(
    workspace: Workspace,
    name: str,
    upstream: str,
    updates: int = 1000,
    seed: int = 1,
    threads: Optional[int] = None,
    train_split: str = "train",
) -> Dict:
    """fast-hubert-probe of an upstream (checkpoint path, 'fbank' or 'mfcc') on the CTC splits."""
    out = workspace.work / "probes" / name
    with workspace.stage(
        f"probe_{name}",
        f"probe {name} ({updates} updates)",
        upstream=upstream,
        updates=updates,
        seed=seed,
        train_split=train_split,
    ) as s:
        if not s.done:
            usage = run_cli(
                [
                    tool("fast-hubert-probe"),
                    "--upstream",
                    upstream,
                    "--data",
                    workspace.ctc_data,
                    "--output-dir",
                    out,
                    "--updates",
                    updates,
                    "--seed",
                    seed,
                    "--train-split",
                    train_split,
                    "--quiet",
                    *(["--device", workspace.device] if workspace.device else []),
                ],
                workspace.logs / f"probe_{name}.log",
                threads,
            )
            result = json.loads((out / "probe.json").read_text())
            s.result = dict(
                cer=result["dev"]["cer"],
                wer=result["dev"]["wer"],
                layer_weights=result["layer_weights"],
                config=result["config"],
                **usage._asdict(),
            )
    return s.result
