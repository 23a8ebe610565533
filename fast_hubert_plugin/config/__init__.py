"""The Hydra configs shipped with the package, for ``fairseq-hydra-train --config-dir``.

``pretraining/`` and ``finetuning/`` hold the YAML files; ``config_dir("pretraining")`` is that
folder inside the installed package, and on the command line

    fairseq-hydra-train --config-dir $(python -m fast_hubert_plugin.config pretraining) \
        common.user_dir=$(python -m fast_hubert_plugin.config user-dir) ...

This module imports nothing of the plugin: the recipes and the tests ask it for paths.
"""

from pathlib import Path

KINDS = ("pretraining", "finetuning")


def config_dir(kind: str) -> Path:
    """The folder of the ``kind`` configs (``"pretraining"`` or ``"finetuning"``)."""
    if kind not in KINDS:
        raise ValueError(f"no {kind!r} configs: the package has {', '.join(KINDS)}")
    return Path(__file__).resolve().parent / kind


def user_dir() -> Path:
    """The plugin's folder, for fairseq's ``common.user_dir`` (wherever the package is installed)."""
    return Path(__file__).resolve().parents[1]
