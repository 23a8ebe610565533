"""``python -m fast_hubert_plugin.config KIND`` prints the folder of the package's KIND configs;
``user-dir`` prints the plugin's folder, for ``common.user_dir``."""

import argparse

from . import KINDS, config_dir, user_dir


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fast_hubert_plugin.config",
        description="Print the folder of the package's Hydra configs (for fairseq-hydra-train --config-dir), "
        "or with user-dir the plugin's folder (for common.user_dir).",
    )
    p.add_argument("kind", choices=(*KINDS, "user-dir"))
    kind = p.parse_args(argv).kind
    print(user_dir() if kind == "user-dir" else config_dir(kind))


if __name__ == "__main__":
    main()
