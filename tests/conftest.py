"""Shared fixtures: the real speech committed under tests/data/speech (see tests/data/README.md),
turned into fairseq manifests in a temporary folder. A skipped test fails the run: every test has
its data in the repository, so a skip can only hide a test that did not run (tests/skip_guard.py)."""

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

sys.path.insert(0, str(REPO / "benchmarks"))
# The pretraining data and run of the suite, whose margins over the controls its record measures
# (benchmarks/results/learning_controls_cpu.md).
import learning_controls  # noqa: E402

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
    return learning_controls.corpus_rows(SPEECH_DIR, name)


write_manifest = learning_controls.write_manifest  # fairseq manifest: root line, then path<TAB>num_samples


@pytest.fixture(scope="session")
def speech_root() -> Path:
    return SPEECH_DIR


@pytest.fixture(scope="session")
def small_manifests(speech_root, tmp_path_factory):
    """train: 48 so762 + 8 LibriSpeech utterances; valid: 16 so762 dev utterances."""
    return learning_controls.write_manifests(tmp_path_factory.mktemp("manifests"), speech_root)


def run_hydra_train(folder: Path, config_name: str, run_dir: Path, overrides, timeout=1800):
    """Run the real `fairseq-hydra-train` CLI with the plugin; returns the completed process.

    The timeout only stops a hung run: the longest training here takes about 1.5 minutes on 2 idle cores
    and more than 10 times that on a shared machine."""

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
    return learning_controls.write_pretraining_data(small_manifests)


@pytest.fixture(scope="session")
def pretrained_tiny(pretraining_data, tmp_path_factory):
    """The tiny CPU config trained for learning_controls.UPDATES (150) updates on real speech, validated
    half-way and at the end: (run_dir, train log text). The run benchmarks/learning_controls.py repeats."""
    run_dir = tmp_path_factory.mktemp("pretrain") / "run"
    return run_dir, pretrain_like_the_benchmark(run_dir, pretraining_data, pretraining_data)


def pretrain_like_the_benchmark(run_dir: Path, data: Path, labels: Path) -> str:
    """The suite's pretraining run (learning_controls.run_overrides) on ``labels``: its log text."""
    run_dir.mkdir(parents=True)
    overrides = [f"task.data={data}", f"task.label_dir={labels}", *learning_controls.run_overrides()]
    proc = run_hydra_train(config_dir("pretraining"), "fast_hubert_tiny_cpu", run_dir, overrides)
    return proc.stdout + proc.stderr


BIN = Path(sys.executable).parent  # the venv's console scripts
# the console scripts setup.py declares (tests check each one is installed and behaves)
CONSOLE_SCRIPTS = re.findall(r'"(fast-hubert-[\w-]+)=', (REPO / "setup.py").read_text(encoding="utf-8"))


def cli(name, *args, check=True):
    proc = subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


write_input_tsv = learning_controls.write_input_tsv  # a transcribed TSV, fast-hubert-prepare-ctc's input

# The fine-tuned fixture's training-set CER (fast-hubert-decode of the utterances it learnt) stays below
# this, and so many of the 20 sentences come out right: benchmarks/results/learning_controls_cpu.md measured
# CER 2.6-6.7 % and 4-12 sentences over seeds 1-3, against 88.9 % for the best transcript that ignores the
# audio (random letters, after 2 updates: 82 %).
FINETUNE_UPDATES = learning_controls.FINETUNE_UPDATES
FINETUNED_TRAIN_CER_BELOW = 30.0
FINETUNED_EXACT_AT_LEAST = 2


@pytest.fixture(scope="session")
def pretrained(pretrained_tiny):
    """A real fast_hubert checkpoint: pretrained_tiny's last (read only; copy it to change it)."""
    return pretrained_tiny[0] / "checkpoints" / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def finetuned(pretrained, tmp_path_factory):
    """20 so762 utterances' letters (fast-hubert-prepare-ctc), the tiny pretrained model fine-tuned on them
    with the real CLI until it transcribes them (FINETUNE_UPDATES; benchmarks/learning_controls.py).

    The pretrained checkpoint is a copy deleted after training: decoding must not need it."""
    import torch

    work = tmp_path_factory.mktemp("finetune")
    ft = learning_controls.write_finetuning_data(work, SPEECH_DIR)
    pre = work / "pretrained.pt"
    shutil.copy(pretrained, pre)
    run_dir = work / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("finetuning"),
        "tiny_cpu",
        run_dir,
        [
            f"task.data={ft['data']}",
            f"task.label_dir={ft['data']}",
            f"model.w2v_path={pre}",
            "dataset.validate_interval=1000",  # validated and saved at the end only
            "checkpoint.save_interval=1000",
            *learning_controls.finetune_overrides(),
        ],
    )
    pretrained_state = torch.load(pre, map_location="cpu")["model"]
    pre.unlink()
    return dict(
        ft,
        run=run_dir,
        ckpt=run_dir / "checkpoints" / "checkpoint_last.pt",
        log=proc.stdout + proc.stderr,
        pretrained_state=pretrained_state,
    )


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
