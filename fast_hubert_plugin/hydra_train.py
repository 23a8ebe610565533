"""``fast-hubert-hydra-train``: fairseq's ``fairseq-hydra-train`` with the plugin registered first.

fairseq-hydra-train reads the launcher's environment (torchrun's, SLURM's) before it imports
``common.user_dir``, so the plugin's patches to that step (``fairseq_patches/torchrun_on_cpu.py``:
torchrun on machines without GPUs) apply only when the plugin is registered before fairseq's own entry
point runs. This is that entry point, after ``register()``: the same arguments, the same training.
"""

import sys
from pathlib import Path
from typing import List, Optional

from .utils.cli import console_script
from .utils.errors import DataError

USAGE = """usage: fast-hubert-hydra-train --config-dir DIR --config-name NAME [KEY=VALUE ...]

fairseq-hydra-train with the fast_hubert plugin registered before fairseq reads torchrun's or SLURM's
environment (needed under torchrun on machines without GPUs; the same training everywhere else).
Arguments and overrides are fairseq-hydra-train's: `fairseq-hydra-train --help` lists the config.
"""


def option(argv: List[str], names) -> Optional[str]:
    """The value of a Hydra command-line option (``--config-dir DIR`` or ``--config-dir=DIR``)."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def check_config(argv: List[str]) -> None:
    """A missing config folder or file stops here with the path and the fix, before Hydra's traceback."""
    folder = option(argv, ("--config-dir", "-cd"))
    name = option(argv, ("--config-name", "-cn"))
    if folder is None or name is None:
        raise SystemExit("give --config-dir DIR and --config-name NAME (see --help)")
    path = Path(folder) / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        raise DataError(
            path,
            "config not found",
            "pass the folder of the YAML files (python -m fast_hubert_plugin.config pretraining) and a file name in it",
        )


@console_script("fast-hubert-hydra-train")
def run(argv: List[str]) -> None:
    check_config(argv)
    from .registration import register

    register()
    from fairseq_cli.hydra_train import cli_main

    sys.argv = [sys.argv[0], *argv]
    cli_main()


def main() -> None:
    argv = sys.argv[1:]
    if {"-h", "--help"} & set(argv):
        print(USAGE, end="")
        return
    run(argv)


if __name__ == "__main__":
    main()
