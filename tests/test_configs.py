"""The configs declare every plugin key, and the README's `fairseq-hydra-train` commands compose
as written (Hydra refuses an override of a key that no YAML declares unless it has a leading +)."""

import dataclasses
import re
import shlex
from pathlib import Path

import pytest
from fairseq.dataclass.initialize import hydra_init
from fairseq.models.hubert.hubert import HubertConfig
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import fast_hubert_plugin  # noqa: F401  (registers the task and model)
from fast_hubert_plugin.models.fast_hubert import FastHubertConfig
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig

from conftest import REPO

CONFIGS = sorted((REPO / "config").glob("*/*.yaml"))
# Substitutes for the README's shell variables and placeholders.
SHELL_VARS = {
    "PWD": str(REPO),
    "DATA": "/data/librispeech",
    "LABELS": "/data/labels",
    "FT": "/data/ft",
    "FEATS": "/data/fbank",
    "MASTER": "localhost",
    "R": "0",
}


def plugin_keys(ours, fairseq_base):
    return {f.name for f in dataclasses.fields(ours)} - {f.name for f in dataclasses.fields(fairseq_base)}


def readme_hydra_commands(readme: Path):
    """(config_dir, config_name, overrides) of every fairseq-hydra-train command in a bash block."""
    text = readme.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "fairseq-hydra-train" not in line:
                continue
            line = re.sub(r"#.*$", "", line)
            line = line.replace("$(which fairseq-hydra-train)", "fairseq-hydra-train")
            line = re.sub(r"\$(\w+)", lambda m: SHELL_VARS[m[1]], line)
            words = shlex.split(line)
            words = words[words.index("fairseq-hydra-train") + 1 :]
            config_dir = words[words.index("--config-dir") + 1]
            config_name = words[words.index("--config-name") + 1]
            overrides = [w for w in words if "=" in w and not w.startswith("-")]
            commands.append((config_dir, config_name, overrides))
    return commands


def compose_like_fairseq(config_dir: Path, config_name: str, overrides):
    """What fairseq-hydra-train composes: fairseq's schema stored under the config's name, then the YAML."""
    hydra_init(config_name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.1"):
        return compose(config_name=config_name, overrides=list(overrides))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_plugin_key_is_declared(path):
    cfg = OmegaConf.load(path)
    missing = plugin_keys(FastHubertPretrainingConfig, HubertPretrainingConfig) - set(cfg.task)
    assert not missing, f"{path.name}: task keys users cannot override without '+': {sorted(missing)}"
    if cfg.model._name == "fast_hubert":
        missing = plugin_keys(FastHubertConfig, HubertConfig) - set(cfg.model)
        assert not missing, f"{path.name}: model keys users cannot override without '+': {sorted(missing)}"


def test_readme_commands_compose_as_written():
    commands = readme_hydra_commands(REPO / "README.md")
    names = {name for _, name, _ in commands}
    assert {"fast_hubert_base_librispeech", "base_10h"} <= names, names
    assert any("task.feature_dir=/data/fbank" in o for *_, o in commands)
    for config_dir, config_name, overrides in commands:
        cfg = compose_like_fairseq(REPO / config_dir, config_name, overrides)
        for override in overrides:
            key, value = override.split("=", 1)
            if key.startswith(("task.", "model.")) and not value.startswith(("[", "'")):
                assert str(OmegaConf.select(cfg, key)) == value, override


def test_an_undeclared_key_is_refused_like_on_the_command_line():
    """The check above can fail: Hydra refuses a key absent from the YAML, as fairseq-hydra-train does."""
    with pytest.raises(Exception, match="not_a_key"):
        compose_like_fairseq(REPO / "config" / "pretraining", "fast_hubert_tiny_cpu", ["task.not_a_key=1"])


def quoted_numbers(text: str):
    """Speed-ups (6.65x, 12x), seconds (6.14 s, 41.6-46.3 s) and percentages quoted in a text."""
    ranges = re.findall(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\s*(?:x|s)\b", text)
    return set(re.findall(r"(\d+(?:\.\d+)?)\s*(?:x|%|s)\b", text)) | {v for pair in ranges for v in pair}


@pytest.mark.parametrize(
    "doc,section,end,record",
    [
        ("README.md", "## Results", "GPU numbers", "benchmarks/results/train_step_cpu.md"),
        ("fast_hubert_plugin/clustering/README.md", "k-means with FAISS", "\n- ", "benchmarks/results/kmeans_cpu.md"),
    ],
)
def test_documented_numbers_are_the_recorded_ones(doc, section, end, record):
    """Every number the docs quote next to a benchmark is printed in a record (rounded to what is quoted)."""
    text = (REPO / doc).read_text(encoding="utf-8")
    start = text.index(section)
    quoted = quoted_numbers(text[start : text.index(end, start)])
    records = "".join(
        (REPO / "benchmarks/results" / name).read_text(encoding="utf-8")
        for name in (
            "train_step_cpu.md",
            "kmeans_cpu.md",
            "quality_vs_compute_cpu.md",
            "label_alignment_cpu.md",
            "recipe_sweep_cpu.md",
            "recipe_sweep_budget15_cpu.md",
            "stock_control_cpu.md",
        )
    )
    recorded = set(re.findall(r"\d+(?:\.\d+)?", records))
    decimals = [v for v in recorded if "." in v]
    rounded = recorded | {f"{float(v):.1f}" for v in decimals} | {f"{float(v):.2f}" for v in decimals}
    assert (REPO / record).is_file()
    assert quoted and not quoted - rounded, f"{doc}: {sorted(quoted - rounded)} appear in no record"
