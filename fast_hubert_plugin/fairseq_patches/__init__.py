"""What the plugin changes in fairseq when it registers (``registration.py``): atomic copies onto
``checkpoint_last.pt`` (``checkpoint_copy``), the allowlist that lets torch >= 2.6 load fairseq's
checkpoints (``checkpoint_safety``) and torchrun's launch on machines without GPUs (``torchrun_on_cpu``)."""

import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)
