"""``fast-hubert-hydra-train``: fairseq's ``fairseq-hydra-train`` with the plugin registered first.

fairseq-hydra-train reads the launcher's environment (torchrun's, SLURM's) before it imports
``common.user_dir``, so the plugin's patches to that step (``fairseq_patches/torchrun_on_cpu.py``:
torchrun on machines without GPUs) apply only when the plugin is registered before fairseq's own entry
point runs. This is that entry point, after ``register()``: the same arguments, the same training.
"""

import sys

USAGE = """usage: fast-hubert-hydra-train --config-dir DIR --config-name NAME [KEY=VALUE ...]

fairseq-hydra-train with the fast_hubert plugin registered before fairseq reads torchrun's or SLURM's
environment (needed under torchrun on machines without GPUs; the same training everywhere else).
Arguments and overrides are fairseq-hydra-train's: `fairseq-hydra-train --help` lists the config.
"""


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(USAGE, end="")
        return
    from .registration import register

    register()
    from fairseq_cli.hydra_train import cli_main

    cli_main()


if __name__ == "__main__":
    main()
