"""Shared fixtures: the real speech committed under tests/data/speech (see tests/data/README.md),
turned into fairseq manifests in a temporary folder. A skipped test fails the run: every test has
its data in the repository, so a skip can only hide a test that did not run (tests/skip_guard.py)."""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from skip_guard import pytest_sessionfinish  # noqa: F401  (a skipped test fails the run)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from fast_hubert_plugin.config import config_dir  # noqa: E402  (this checkout's package, its shipped configs)

SPEECH_DIR = REPO / "tests" / "data" / "speech"

# The end-to-end tier (`make test` runs everything, `make test-fast` leaves these out): tests that train
# with fairseq-hydra-train, through one of these fixtures or in these modules.
TRAINING_FIXTURES = {"pretrained_tiny", "pretrained", "finetuned"}
END_TO_END_MODULES = {
    "test_benchmarks",
    "test_recipe",
    "test_interruptions",
    "test_distributed",
    "test_clustering_e2e",
    "test_resampling_e2e",
    "test_export",
    "test_pretraining_cli",
    "test_corpus_download",
    "test_speed_benchmarks",  # runs the benchmark scripts, fairseq-hydra-train included
}


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: trains or runs the CLIs end to end (left out by make test-fast)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in END_TO_END_MODULES or TRAINING_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.e2e)


def read_corpus_tsv(name: str):
    with open(SPEECH_DIR / name, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_manifest(path: Path, rows, root: Path) -> Path:
    """fairseq manifest: root line, then path<TAB>num_samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{root}\n")
        for r in rows:
            f.write(f"{r['path']}\t{r['num_samples']}\n")
    return path


@pytest.fixture(scope="session")
def speech_root() -> Path:
    return SPEECH_DIR


@pytest.fixture(scope="session")
def small_manifests(speech_root, tmp_path_factory):
    """train: 48 so762 + 8 LibriSpeech utterances; valid: 16 so762 dev utterances."""
    out = tmp_path_factory.mktemp("manifests")
    train = read_corpus_tsv("so762_train.tsv")[:48] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:8]
    valid = read_corpus_tsv("so762_dev.tsv")[:16]
    write_manifest(out / "train.tsv", train, speech_root)
    write_manifest(out / "valid.tsv", valid, speech_root)
    return out


def run_hydra_train(folder: Path, config_name: str, run_dir: Path, overrides, timeout=900):
    """Run the real `fairseq-hydra-train` CLI with the plugin; returns the completed process."""

    cmd = [
        str(Path(sys.executable).parent / "fairseq-hydra-train"),
        "--config-dir",
        str(folder),
        "--config-name",
        config_name,
        f"common.user_dir={REPO / 'fast_hubert_plugin'}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=run_dir.parent)
    if proc.returncode != 0:
        raise AssertionError(
            f"fairseq-hydra-train failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def train_log_records(text: str, tag: str = "train_inner"):
    """The JSON records fairseq logs under [tag] (log_format: json)."""
    from fast_hubert_plugin.recipes.runner import parse_log_records

    return parse_log_records(text, tag)


@pytest.fixture(scope="session")
def pretraining_data(small_manifests):
    """Manifests + CMVN stats + 50 Hz k-means labels (fbank, K=50) for the tiny pretraining runs."""
    import faiss
    import numpy as np

    from fast_hubert_plugin.data.cmvn_stats import compute_cmvn
    from fast_hubert_plugin.data.manifest import read_manifest
    from fast_hubert_plugin.features import compute_fbank, read_audio

    d = small_manifests
    cmvn = compute_cmvn(d / "train.tsv", progress=False)
    cmvn.save(d / "cmvn.npz")
    feats = {}
    for split in ("train", "valid"):
        m = read_manifest(d / f"{split}.tsv")
        feats[split] = [cmvn(compute_fbank(read_audio(m.audio_path(i)))) for i in range(len(m))]
    km = faiss.Kmeans(80, 50, niter=20, seed=1)
    km.train(np.concatenate(feats["train"]).astype(np.float32))
    for split, rows in feats.items():
        with open(d / f"{split}.km", "w") as f:
            for x in rows:  # 100 Hz frames -> 50 Hz labels: every second frame
                _, ids = km.index.search(np.ascontiguousarray(x[::2], dtype=np.float32), 1)
                f.write(" ".join(map(str, ids[:, 0])) + "\n")
    with open(d / "dict.km.txt", "w") as f:
        f.writelines(f"{i} 1\n" for i in range(50))
    return d


@pytest.fixture(scope="session")
def pretrained_tiny(pretraining_data, tmp_path_factory):
    """The tiny CPU config trained for 60 updates on real speech: (run_dir, train log text)."""
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [
            f"task.data={pretraining_data}",
            f"task.label_dir={pretraining_data}",
            "model.label_rate=50",
            "optimization.max_update=60",
            "common.log_interval=5",
            "checkpoint.save_interval_updates=30",
            "dataset.validate_interval_updates=30",
            "dataset.validate_interval=1000",
        ],
    )
    return run_dir, proc.stdout + proc.stderr


BIN = Path(sys.executable).parent  # the venv's console scripts
# the console scripts setup.py declares (tests check each one is installed and behaves)
CONSOLE_SCRIPTS = re.findall(r'"(fast-hubert-[\w-]+)=', (REPO / "setup.py").read_text(encoding="utf-8"))


def cli(name, *args, check=True):
    proc = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_input_tsv(path: Path, rows, speech_root: Path, relative=True, columns=("id", "path", "num_samples", "text")):
    """A transcribed TSV like the shared corpus ones, paths relative to the TSV's folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(columns) + "\n")
        for r in rows:
            audio = speech_root / r["path"]
            r = dict(r, path=os.path.relpath(audio, path.parent) if relative else str(audio))
            f.write("\t".join(str(r[c]) for c in columns) + "\n")
    return path


AT_END_ONLY = ["dataset.validate_interval=1000", "checkpoint.save_interval=1000"]


@pytest.fixture(scope="session")
def pretrained(pretraining_data, tmp_path_factory):
    """The tiny CPU pretraining config run for 4 updates: a real fast_hubert checkpoint, quickly."""
    run_dir = tmp_path_factory.mktemp("pretrain_ft") / "run"
    run_dir.mkdir()
    run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [
            f"task.data={pretraining_data}",
            f"task.label_dir={pretraining_data}",
            "model.label_rate=50",
            "optimization.max_update=4",
            *AT_END_ONLY,
        ],
    )
    return run_dir / "checkpoints" / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def finetuned(pretrained, speech_root, tmp_path_factory):
    """Prepare so762 letters, fine-tune the tiny pretrained model 6 updates with the real CLI.

    The pretrained checkpoint is a copy deleted after training: decoding must not need it."""
    work = tmp_path_factory.mktemp("finetune")
    train = read_corpus_tsv("so762_train.tsv")[:20]
    dev = read_corpus_tsv("so762_dev.tsv")[:8]
    data = work / "data"
    cli(
        "fast-hubert-prepare-ctc",
        write_input_tsv(work / "in" / "train.tsv", train, speech_root),
        "--split",
        "train",
        "--output-dir",
        data,
        "--quiet",
    )
    from fast_hubert_plugin.finetuning import prepare

    prepare.main(
        [
            str(write_input_tsv(work / "in" / "valid.tsv", dev, speech_root)),
            "--split",
            "valid",
            "--output-dir",
            str(data),
            "--quiet",
        ]
    )
    pre = work / "pretrained.pt"
    shutil.copy(pretrained, pre)
    run_dir = work / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("finetuning"),
        "tiny_cpu",
        run_dir,
        [
            f"task.data={data}",
            f"task.label_dir={data}",
            f"model.w2v_path={pre}",
            "optimization.max_update=6",
            "model.freeze_finetune_updates=3",
            "common.log_interval=1",
            *AT_END_ONLY,
        ],
    )
    import torch

    pretrained_state = torch.load(pre, map_location="cpu")["model"]
    pre.unlink()
    return {
        "data": data,
        "run": run_dir,
        "ckpt": run_dir / "checkpoints" / "checkpoint_last.pt",
        "log": proc.stdout + proc.stderr,
        "pretrained_state": pretrained_state,
        "dev": dev,
    }


@pytest.fixture(scope="session")
def tiny_hubert_checkpoint(tmp_path_factory):
    """A randomly initialised 2-layer, 64-dim stock fairseq HuBERT saved as a fairseq checkpoint."""
    import torch
    from fairseq.data import Dictionary
    from fairseq.models.hubert.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig

    d = tmp_path_factory.mktemp("tiny_hubert")
    (d / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(10)))
    task_cfg = HubertPretrainingConfig(data=str(d), label_dir=str(d), labels=["km"], label_rate=50.0, normalize=True)
    model_cfg = HubertConfig(
        label_rate=50.0,
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=2,
        final_dim=32,
        conv_pos=16,
        conv_pos_groups=4,
        conv_feature_layers="[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
    )
    dictionary = Dictionary.load(str(d / "dict.km.txt"))
    torch.manual_seed(0)
    model = HubertModel(model_cfg, task_cfg, [dictionary])
    return save_fairseq_checkpoint(d / "checkpoint_tiny.pt", model, "hubert_pretraining", task_cfg, "hubert", model_cfg)


def save_fairseq_checkpoint(path, model, task_name, task_cfg, model_name, model_cfg):
    """Save ``model`` the way fairseq's trainer does, enough for ``load_model_ensemble_and_task``."""
    import torch
    from omegaconf import OmegaConf

    def section(cfg, name):
        return dict(OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True), _name=name)

    torch.save(
        {
            "cfg": {"task": section(task_cfg, task_name), "model": section(model_cfg, model_name)},
            "model": model.state_dict(),
            "args": None,
            "last_optimizer_state": None,
            "optimizer_history": [
                {
                    "criterion_name": model_name,
                    "optimizer_name": "FairseqAdam",
                    "lr_scheduler_state": {"best": None},
                    "num_updates": 0,
                }
            ],
            "extra_state": {"train_iterator": {"epoch": 1}},
        },
        path,
    )
    return path
