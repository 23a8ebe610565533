"""``python -m fast_hubert_plugin.config KIND`` prints the folder of the package's KIND configs."""

import argparse

from . import KINDS, config_dir


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fast_hubert_plugin.config",
        description="Print the folder of the package's Hydra configs (for fairseq-hydra-train --config-dir).",
    )
    p.add_argument("kind", choices=KINDS)
    print(config_dir(p.parse_args(argv).kind))


if __name__ == "__main__":
    main()
