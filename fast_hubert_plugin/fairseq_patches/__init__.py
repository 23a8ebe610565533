"""What the plugin changes in fairseq when it registers (``registration.py``): atomic copies onto
``checkpoint_last.pt`` (``checkpoint_copy``) and the allowlist that lets torch >= 2.6 load fairseq's
checkpoints (``checkpoint_safety``)."""

import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)
