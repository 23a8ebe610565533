"""The configs declare every plugin key, and the README's `fairseq-hydra-train` commands compose
as written (Hydra refuses an override of a key that no YAML declares unless it has a leading +)."""

import dataclasses
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fairseq.dataclass.initialize import hydra_init
from fairseq.models.hubert.hubert import HubertConfig
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import fast_hubert_plugin  # noqa: F401  (registers the task and model)
from fast_hubert_plugin.config import KINDS, config_dir
from fast_hubert_plugin.models.fast_hubert import FastHubertConfig
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig

from conftest import REPO

CONFIGS = sorted(p for kind in KINDS for p in config_dir(kind).glob("*.yaml"))
# Substitutes for the README's shell variables and placeholders.
SHELL_VARS = {
    "PWD": str(REPO),
    "DATA": "/data/librispeech",
    "LABELS": "/data/labels",
    "FT": "/data/ft",
    "FEATS": "/data/fbank",
    "MASTER": "localhost",
    "R": "0",
    "NODE_RANK": "1",
}


def plugin_keys(ours, fairseq_base):
    return {f.name for f in dataclasses.fields(ours)} - {f.name for f in dataclasses.fields(fairseq_base)}


def readme_hydra_commands(readme: Path):
    """(config folder, config_name, overrides) of every fairseq-hydra-train (or fast-hubert-hydra-train,
    the same with the plugin registered first) command in a bash block."""
    text = readme.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\(which (fairseq|fast-hubert)-hydra-train\)", "fairseq-hydra-train", line)
            line = line.replace("fast-hubert-hydra-train", "fairseq-hydra-train")
            if "fairseq-hydra-train" not in line:
                continue
            line = re.sub(r"#.*$", "", line)
            # the package's config folders, as the shell would print them
            line = re.sub(r"\$\(python -m fast_hubert_plugin\.config (\w+)\)", lambda m: str(config_dir(m[1])), line)
            line = re.sub(r"\$(\w+)", lambda m: SHELL_VARS[m[1]], line)
            words = shlex.split(line)
            words = words[words.index("fairseq-hydra-train") + 1 :]
            folder = words[words.index("--config-dir") + 1]
            config_name = words[words.index("--config-name") + 1]
            overrides = [w for w in words if "=" in w and not w.startswith("-")]
            commands.append((folder, config_name, overrides))
    return commands


def compose_like_fairseq(folder: Path, config_name: str, overrides):
    """What fairseq-hydra-train composes: fairseq's schema stored under the config's name, then the YAML."""
    hydra_init(config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(folder), version_base="1.1"):
        return compose(config_name=config_name, overrides=list(overrides))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_plugin_key_is_declared(path):
    cfg = OmegaConf.load(path)
    ours = plugin_keys(FastHubertPretrainingConfig, HubertPretrainingConfig)
    if cfg.task._name == "hubert_pretraining":  # stock HuBERT: fairseq's task would refuse our keys
        assert not ours & set(cfg.task), f"{path.name}: {sorted(ours & set(cfg.task))}"
        assert cfg.model._name in ("hubert", "hubert_ctc")
        return
    missing = ours - set(cfg.task)
    assert not missing, f"{path.name}: task keys users cannot override without '+': {sorted(missing)}"
    if cfg.model._name == "fast_hubert":
        missing = plugin_keys(FastHubertConfig, HubertConfig) - set(cfg.model)
        assert not missing, f"{path.name}: model keys users cannot override without '+': {sorted(missing)}"


# The docs with fairseq-hydra-train commands; each names its configs by the package's folders.
DOCS = ("README.md", "fast_hubert_plugin/clustering/README.md", "fast_hubert_plugin/finetuning/README.md")


def test_readme_names_the_base_configs():
    commands = readme_hydra_commands(REPO / "README.md")
    names = {name for _, name, _ in commands}
    assert {"fast_hubert_base_librispeech", "fast_hubert_base_librispeech_1gpu", "base_10h"} <= names, names
    assert any("task.feature_dir=/data/fbank" in o for *_, o in commands)


@pytest.mark.parametrize("doc", DOCS)
def test_readme_commands_compose_as_written(doc):
    commands = readme_hydra_commands(REPO / doc)
    assert commands and all(Path(folder).parent == config_dir("pretraining").parent for folder, *_ in commands)
    for folder, config_name, overrides in commands:
        cfg = compose_like_fairseq(REPO / folder, config_name, overrides)
        for override in overrides:
            key, value = override.split("=", 1)
            if key.startswith(("task.", "model.")) and not value.startswith(("[", "'")):
                assert str(OmegaConf.select(cfg, key)) == value, override


def test_a_checkout_reads_the_repositorys_config_folders(tmp_path):
    """The repository's config/ is the one copy of the YAML files: the package holds none, and from a
    checkout (editable install, or the checkout on PYTHONPATH) config_dir and python -m
    fast_hubert_plugin.config name the repository's folders, from any working directory."""
    assert not list((REPO / "fast_hubert_plugin").rglob("*.yaml"))
    assert {kind: config_dir(kind) for kind in KINDS} == {kind: REPO / "config" / kind for kind in KINDS}
    assert {p.parent.parent for p in CONFIGS} == {REPO / "config"} and len(CONFIGS) >= 10
    for env in ({}, {"PYTHONPATH": str(REPO)}):
        printed = subprocess.run(
            [sys.executable, "-m", "fast_hubert_plugin.config", "finetuning"],
            cwd=tmp_path,
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert printed == f"{REPO / 'config' / 'finetuning'}\n"
    with pytest.raises(ValueError, match="'training'"):
        config_dir("training")


def test_an_installed_wheel_carries_the_configs_the_docs_name(tmp_path):
    """A non-editable install stands alone: the wheel built from this checkout holds every YAML of the
    repository's config/ inside the package, and the package unpacked from it, with no repository on
    the path, finds them inside itself (in Python and with python -m fast_hubert_plugin.config)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, src)
    for name in ("fast_hubert_plugin", "config"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*build, "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("fast_hubert-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        shipped = {n for n in z.namelist() if n.endswith(".yaml")}
        z.extractall(site)
    assert shipped == {f"fast_hubert_plugin/config/{p.parent.name}/{p.name}" for p in CONFIGS}

    def run(*args):
        env = dict(os.environ, PYTHONPATH=str(site))  # the unpacked wheel, not this checkout
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()

    package, *folders = run(
        "-c", "import fast_hubert_plugin as p; print(p.__file__); [print(p.config_dir(k)) for k in p.config.KINDS]"
    )
    assert Path(package).parent == site / "fast_hubert_plugin"
    installed = dict(zip(KINDS, map(Path, folders)))
    assert installed == {kind: site / "fast_hubert_plugin" / "config" / kind for kind in KINDS}
    assert run("-m", "fast_hubert_plugin.config", "pretraining") == [str(installed["pretraining"])]
    assert run("-m", "fast_hubert_plugin.config", "user-dir") == [str(Path(package).parent)]
    for doc in DOCS:
        for folder, name, _ in readme_hydra_commands(REPO / doc):
            assert (installed[Path(folder).name] / f"{name}.yaml").is_file(), (doc, name)


def test_an_undeclared_key_is_refused_like_on_the_command_line():
    """The check above can fail: Hydra refuses a key absent from the YAML, as fairseq-hydra-train does."""
    with pytest.raises(Exception, match="not_a_key"):
        compose_like_fairseq(config_dir("pretraining"), "fast_hubert_tiny_cpu", ["task.not_a_key=1"])


CLUSTERING_README = "fast_hubert_plugin/clustering/README.md"


def quoted_numbers(text: str):
    """Speed-ups (6.65x, 12x), seconds and minutes (6.14 s, 41.6-46.3 s, 14.7 min) and percentages
    (58.8 %) quoted in a text."""
    ranges = re.findall(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s*(?:x\b|s\b|min\b|%)", text)
    single = re.findall(r"(\d+(?:\.\d+)?)\s*(?:x\b|%|s\b|min\b)", text)
    return set(single) | {v for pair in ranges for v in pair}


def recorded_numbers(records) -> set:
    """Every number printed in these records, with its roundings to 1 and 2 decimals."""
    text = "".join((REPO / "benchmarks/results" / name).read_text(encoding="utf-8") for name in records)
    recorded = set(re.findall(r"\d+(?:\.\d+)?", text))
    decimals = [v for v in recorded if "." in v]
    return recorded | {f"{float(v):.1f}" for v in decimals} | {f"{float(v):.2f}" for v in decimals}


def unrecorded_numbers(section: str, default_record: str) -> dict:
    """{cited records: quoted numbers absent from them} for each table row and paragraph of a section.
    A row or paragraph is checked against the records it names (``results/NAME.md``), else the section's
    ``default_record``: a number must be in the record that claims it, not anywhere in the results."""
    missing = {}
    for chunk in re.split(r"\n\s*\n|\n(?=\|)", section):
        quoted = quoted_numbers(chunk)
        cited = tuple(re.findall(r"results/(\w+\.md)", chunk)) or (default_record,)
        if quoted - recorded_numbers(cited):
            missing[cited] = sorted(quoted - recorded_numbers(cited))
    return missing


@pytest.mark.parametrize(
    "doc,section,end,record",
    [
        ("README.md", "## Results", "GPU numbers", "train_step_cpu.md"),
        ("fast_hubert_plugin/clustering/README.md", "k-means with FAISS", "\n- ", "kmeans_cpu.md"),
        ("README.md", "**What the demo runs.**", "Every stage shows", "demo_time_cpu.md"),
        ("README.md", "What the demo shows:", "## Layout", "demo_time_cpu.md"),
        ("README.md", "## Clustering", "## Fine-tuning and decoding", "labels_at_scale_cpu.md"),
        (CLUSTERING_README, "### Large corpora", "### Iteration 1", "labels_at_scale_cpu.md"),
        (CLUSTERING_README, "### Long recordings", "### Files", "long_recording_cpu.md"),
    ],
)
def test_documented_numbers_are_the_recorded_ones(doc, section, end, record):
    """Every number the docs quote next to a benchmark is printed in the record that row or paragraph
    cites (rounded to what is quoted)."""
    text = (REPO / doc).read_text(encoding="utf-8")
    start = text.index(section)
    body = text[start : text.index(end, start)]
    assert quoted_numbers(body) and (REPO / "benchmarks/results" / record).is_file()
    missing = unrecorded_numbers(body, record)
    assert not missing, f"{doc}: numbers absent from the record they cite: {missing}"


def test_a_number_from_another_record_is_refused():
    """The check above can fail: a row quoting train_step_cpu.md's speed-up but citing the k-means record."""
    assert "6.65" in recorded_numbers(["train_step_cpu.md"]) and "6.65" not in recorded_numbers(["kmeans_cpu.md"])
    row = "| k-means | 10.3x faster, 6.65x less | `results/kmeans_cpu.md` |"
    assert unrecorded_numbers(row, "train_step_cpu.md") == {("kmeans_cpu.md",): ["6.65"]}
    assert unrecorded_numbers("10.3x faster", "kmeans_cpu.md") == {}


def composed(folder: Path, name: str, overrides) -> dict:
    """The resolved config fairseq-hydra-train would run (compose leaves Hydra's own section out)."""
    return OmegaConf.to_container(compose_like_fairseq(folder, name, overrides), resolve=True)


def test_stock_hubert_tiny_is_fairseqs_hubert_sized_as_the_tiny_fast_hubert():
    """pretraining/hubert_tiny_cpu.yaml: fairseq's own task, model and criterion with the Transformer,
    masking and optimisation of fast_hubert_tiny_cpu.yaml, its sizes in samples (x 160 fbank frames)."""
    ours = OmegaConf.load(config_dir("pretraining") / "fast_hubert_tiny_cpu.yaml")
    stock = OmegaConf.load(config_dir("pretraining") / "hubert_tiny_cpu.yaml")
    assert (stock.task._name, stock.model._name, stock.criterion._name) == ("hubert_pretraining", "hubert", "hubert")
    shared = ["encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads"]
    shared += ["conv_pos", "conv_pos_groups", "mask_prob", "logit_temp", "encoder_layerdrop"]
    shared += ["dropout_input", "dropout", "attention_dropout"]
    assert {k: stock.model[k] for k in shared} == {k: ours.model[k] for k in shared}
    assert stock.model.mask_length * 20 == ours.model.mask_length * 40  # the same masked span (ms)
    assert [stock.task.max_sample_size, stock.task.min_sample_size, stock.dataset.max_tokens] == [
        160 * n for n in (ours.task.max_sample_size, ours.task.min_sample_size, ours.dataset.max_tokens)
    ]
    for section in ("common", "checkpoint", "optimization", "optimizer", "lr_scheduler"):
        assert stock[section] == ours[section], section
    # HuBERT's own: a 256-dim projection, the CNN's gradient scaled by 0.1, the feature penalty at 10
    assert (stock.model.final_dim, stock.model.feature_grad_mult, list(stock.criterion.loss_weights)) == (
        256,
        0.1,
        [10],
    )


def test_stock_hubert_fine_tuning_is_the_tiny_recipe_on_fairseqs_task():
    ours, stock = (
        OmegaConf.to_container(OmegaConf.load(config_dir("finetuning") / f"{name}.yaml"))
        for name in ("tiny_cpu", "hubert_tiny_cpu")
    )
    assert stock["task"]["_name"] == "hubert_pretraining"
    assert stock["dataset"]["max_tokens"] == 160 * ours["dataset"]["max_tokens"]  # samples, not fbank frames
    assert {k: v for k, v in stock["task"].items() if k != "_name"} == {
        k: ours["task"][k] for k in stock["task"] if k != "_name"
    }
    for section in ("common", "checkpoint", "criterion", "optimization", "optimizer", "lr_scheduler", "model"):
        assert stock[section] == ours[section], section


def test_every_recipe_system_composes():
    """The recipes' configs and overrides of each model type compose, pretraining and fine-tuning."""
    from fast_hubert_plugin.recipes.two_iterations import SYSTEMS, finetune_fast_start

    for system in SYSTEMS.values():
        run = ["task.data=/data", "task.label_dir=/labels", f"model.label_rate={system.frame_rate}"]
        cfg = composed(config_dir("pretraining"), system.pretraining_config, [*system.pretraining_overrides, *run])
        assert cfg["model"]["_name"] == ("hubert" if system.name == "hubert" else "fast_hubert"), system.name
        ft = ["task.data=/ft", "task.label_dir=/ft", "model.w2v_path=/ckpt.pt", *finetune_fast_start(system)]
        cfg = composed(config_dir("finetuning"), system.finetuning_config, ft)
        assert cfg["dataset"]["max_tokens"] == 20 * system.size_rate  # 20 s of audio per batch for each


def test_shipped_pretraining_configs_keep_utterances_long_enough_to_mask():
    from omegaconf import OmegaConf

    from fast_hubert_plugin.data.span_masks import fewest_maskable_frames

    checked = []
    for path in sorted(config_dir("pretraining").glob("fast_hubert_*.yaml")):
        cfg = OmegaConf.load(path)
        factor = 2 ** len(str(cfg.model.conv_kernel_sizes).split(","))
        shortest = math.ceil(cfg.task.min_sample_size / factor)  # model frames of the shortest kept utterance
        assert shortest >= fewest_maskable_frames(cfg.model.mask_prob, cfg.model.mask_length), path.name
        checked.append(path.stem)
    assert {"fast_hubert_base_librispeech", "fast_hubert_base_librispeech_1gpu", "fast_hubert_base_ils"} <= set(checked)


# Seconds of audio per update of every shipped config (a new config must be listed here): HuBERT-Base's
# 2,800 s for the Base family, on 32 GPUs (stock's recipe), 8 GPUs or 1 GPU.
SECONDS_PER_UPDATE = {
    "pretraining/fast_hubert_base_librispeech": 2800,
    "pretraining/fast_hubert_base_ils": 2800,
    "pretraining/fast_hubert_base_librispeech_1gpu": 2800,
    "pretraining/hubert_base_librispeech": 2800,
    "pretraining/hubert_base_librispeech_1gpu": 2800,
    "pretraining/fast_hubert_tiny_cpu": 36,
    "pretraining/hubert_tiny_cpu": 36,
    "finetuning/base_1h": 200,
    "finetuning/base_10h": 200,
    "finetuning/base_100h": 200,
    "finetuning/tiny_cpu": 40,
    "finetuning/hubert_tiny_cpu": 40,
}
GPUS = {"fast_hubert_base_librispeech": 8, "fast_hubert_base_ils": 8, "hubert_base_librispeech": 32}
GPUS_8 = "fast_hubert_base_librispeech"  # the multi-GPU config the README and examples/slurm/pretrain.sh launch


def composed_as_shipped(path: Path) -> dict:
    """The config fairseq-hydra-train composes from ``path`` with placeholders for its ??? keys."""
    raw = OmegaConf.load(path)
    placeholders = {"task.labels": '["km"]', "model.label_rate": "50"}
    missing = [f"{s}.{k}" for s in ("task", "model") for k in raw[s] if OmegaConf.is_missing(raw[s], k)]
    return composed(path.parent, path.stem, [f"{k}={placeholders.get(k, '/data')}" for k in missing])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_total_batch_per_update(path):
    """dataset.max_tokens x distributed_world_size x update_freq, as fairseq-hydra-train composes it, in fbank
    frames (100 per second) or, for fairseq's own task, 16 kHz samples. The world size is written in every
    YAML: fairseq's default is the number of GPUs of the machine, which would change the batch."""
    cfg = composed_as_shipped(path)
    per_second = 16000 if cfg["task"]["_name"] == "hubert_pretraining" else 100
    world = cfg["distributed_training"]["distributed_world_size"]
    (update_freq,) = cfg["optimization"]["update_freq"]
    seconds = cfg["dataset"]["max_tokens"] * world * update_freq / per_second
    assert seconds == SECONDS_PER_UPDATE[f"{path.parent.name}/{path.stem}"], (world, update_freq, seconds)
    assert "distributed_world_size" in OmegaConf.load(path).distributed_training
    assert world == (
        1 if path.stem.endswith(("_1gpu", "_cpu")) or path.parent.name == "finetuning" else GPUS[path.stem]
    )
    if path.parent.name == "pretraining":  # a micro-batch holds at least one longest crop
        assert cfg["dataset"]["max_tokens"] >= cfg["task"]["max_sample_size"]


def flat(cfg, prefix="") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(name_a: str, name_b: str) -> dict:
    a, b = (
        flat(OmegaConf.to_container(OmegaConf.load(config_dir("pretraining") / f"{n}.yaml"))) for n in (name_a, name_b)
    )
    return {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_one_gpu_configs_are_the_base_configs_but_batch_precision_and_loader():
    """The 1-GPU configs change only what one GPU needs: the batch split (same total), the world size,
    bf16 (the largest-batch record's dtype, the same for both systems compared), fast_hubert's loader."""
    batch = {"dataset.max_tokens", "optimization.update_freq", "distributed_training.distributed_world_size"}
    batch |= {"distributed_training.nprocs_per_node", "common.fp16", "common.bf16"}
    ours = differences("fast_hubert_base_librispeech", "fast_hubert_base_librispeech_1gpu")
    assert set(ours) == batch | {"dataset.num_workers"}, ours
    stock = differences("hubert_base_librispeech", "hubert_base_librispeech_1gpu")
    assert set(stock) == batch | {"distributed_training.distributed_port"}, stock
    assert ours["common.bf16"] == stock["common.bf16"] == (None, True)
    assert ours["common.fp16"] == stock["common.fp16"] == (True, False)
    assert differences("fast_hubert_base_librispeech", "fast_hubert_base_ils") == {
        "model.supervised_layers": ("[]", "[4]")
    }


def test_slurm_example_starts_one_torchrun_per_node(tmp_path):
    """examples/slurm/pretrain.sh under a stand-in SLURM (srun runs its command once per node, scontrol
    lists the nodes) with a torchrun that records its arguments: each node's torchrun gets its node rank,
    the first node as master and the GPUs per node, and starts a command that composes with the 8-GPU
    config's 2,800 s per update over the job's 2 x 4 GPUs, the user's overrides last."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    scripts = {
        "scontrol": 'printf "gpu-a\\ngpu-b\\n"\n',
        "srun": 'while [[ $1 == --* ]]; do shift; done\nfor n in 0 1; do SLURM_NODEID=$n "$@" & pids+=($!); done\n'
        'for p in "${pids[@]}"; do wait "$p" || exit 1; done\n',
        "torchrun": 'printf "%s\\n" "$@" > "$RECORDS/node$SLURM_NODEID.txt"\n',
    }
    for name, body in scripts.items():
        (stubs / name).write_text("#!/usr/bin/env bash\n" + body)
        (stubs / name).chmod(0o755)
    (tmp_path / "data").mkdir()
    env = dict(
        os.environ,
        PATH=f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        RECORDS=str(tmp_path),
        SLURM_JOB_NODELIST="gpu-[a-b]",
        SLURM_NNODES="2",
        SLURM_GPUS_ON_NODE="4",
    )
    script = REPO / "examples" / "slurm" / "pretrain.sh"
    proc = subprocess.run(
        ["bash", str(script), "data", "data", "model.label_rate=100"], cwd=tmp_path, env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    for node in (0, 1):
        args = (tmp_path / f"node{node}.txt").read_text().splitlines()
        launcher = ["--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "4"]
        assert args[:10] == launcher + ["--master_addr", "gpu-a", "--master_port", "29500"], args
        assert Path(args[10]).name == "fast-hubert-hydra-train"
        words = args[11:]
        folder, name = Path(words[1]), words[3]
        assert (words[0], words[2], folder, name) == (
            "--config-dir",
            "--config-name",
            config_dir("pretraining"),
            GPUS_8,
        )
        overrides = words[4:]
        assert f"hydra.run.dir={tmp_path / 'outputs' / GPUS_8}" in overrides
        cfg = composed(folder, name, [o for o in overrides if not o.startswith("hydra.")])
        assert cfg["task"]["data"] == str(tmp_path / "data") and cfg["model"]["label_rate"] == 100
        frames = 2 * 4 * cfg["dataset"]["max_tokens"] * cfg["optimization"]["update_freq"][0]
        assert frames == 100 * SECONDS_PER_UPDATE[f"pretraining/{GPUS_8}"]


MISBEHAVES_RECORDS = (
    "loss_ranges_cpu.md",
    "recipe_sweep_cpu.md",
    "recipe_sweep_budget15_cpu.md",
    "e2e_throughput_gpu.md",
)


def figures(text: str):
    """The numbers of a text that are quantities: issue numbers (fairseq#5534), names with digits (fp16,
    log2, acc_m_L2) and file names are left out."""
    body = re.sub(r"#\d+|\b[\w.]*[A-Za-z_][\w.]*\d[\w.]*\b|\b\w+\.md\b", " ", text)
    return set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:e-\d+)?", body))


def misbehaves_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## When training misbehaves")
    return text[start : text.index("\n## ", start + 1)]


def test_when_training_misbehaves_quotes_only_recorded_or_computed_numbers():
    """Every number in the README's "When training misbehaves" (losses, accuracies, settings, CERs) is printed
    in one of the records it cites, or computed here from the code the tests check (the masking minimum,
    chance levels). Issue numbers, names with digits (fp16, log2, acc_m_L2) and file names do not count."""
    from fast_hubert_plugin.data.span_masks import fewest_maskable_frames

    section = misbehaves_section()
    for record in MISBEHAVES_RECORDS:
        assert f"benchmarks/results/{record}" in section, record
    quoted = figures(section)
    records = "".join((REPO / "benchmarks/results" / name).read_text(encoding="utf-8") for name in MISBEHAVES_RECORDS)
    recorded = set(re.findall(r"\d+(?:\.\d+)?(?:e-\d+)?", records))
    decimals = [v for v in recorded if "." in v and "e" not in v]
    recorded |= {f"{float(v):.1f}" for v in decimals} | {f"{float(v):.2f}" for v in decimals}  # rounded as quoted
    frames = fewest_maskable_frames(0.8, 10)  # Fast-HuBERT's masking: p 0.8, spans of 10 model frames
    computed = {str(frames), str(4 * frames), f"{4 * frames / 100:.2f}", f"{math.log2(500):.2f}", "500"}
    assert quoted and not quoted - recorded - computed, sorted(quoted - recorded - computed)


def test_the_misbehaves_check_sees_an_unrecorded_number():
    """figures() itself (not a copy of its patterns) keeps quantities and drops issue numbers, names with
    digits and file names."""
    text = "loss 7.123 bits, fp16, fairseq#5534, acc_m_L4 0.5, lr 5e-4 in loss_ranges_cpu.md"
    assert figures(text) == {"7.123", "0.5", "5e-4"}
