"""Where the Hydra configs are, for ``fairseq-hydra-train --config-dir``.

The repository's top-level ``config/pretraining/`` and ``config/finetuning/`` hold the one copy of the
YAML files. A built package (a wheel, a non-editable install) carries them as this folder's
``pretraining/`` and ``finetuning/`` (setup.py maps them in); a checkout, an editable install or a
checkout on ``PYTHONPATH`` has none here and reads the repository's ``config/`` beside the package.
``config_dir("pretraining")`` is whichever of the two exists, and on the command line

    fairseq-hydra-train --config-dir $(python -m fast_hubert_plugin.config pretraining) \
        common.user_dir=$(python -m fast_hubert_plugin.config user-dir) ...

This module imports nothing of the plugin: the recipes and the tests ask it for paths.
"""

from pathlib import Path

KINDS = ("pretraining", "finetuning")

PACKAGE_CONFIGS = Path(__file__).resolve().parent  # a built package's copy: {pretraining,finetuning}/
# A source tree's configs: config/ beside the package folder (the only path that leaves the package).
CHECKOUT_CONFIGS = Path(__file__).resolve().parents[2] / "config"


def config_dir(kind: str) -> Path:
    """The folder of the ``kind`` configs (``"pretraining"`` or ``"finetuning"``): the package's own
    copy when it was built with one, else the checkout's ``config/KIND``."""
    if kind not in KINDS:
        raise ValueError(f"no {kind!r} configs: the package has {', '.join(KINDS)}")
    for folder in (PACKAGE_CONFIGS / kind, CHECKOUT_CONFIGS / kind):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"no {kind} configs in {PACKAGE_CONFIGS / kind} (a built package) nor {CHECKOUT_CONFIGS / kind} "
        "(a checkout): reinstall the package (pip install .), or run from a checkout that has config/"
    )


def user_dir() -> Path:
    """The plugin's folder, for fairseq's ``common.user_dir`` (wherever the package is installed)."""
    return Path(__file__).resolve().parents[1]
