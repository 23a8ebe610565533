"""Optimizers registered with fairseq (importing the plugin registers them)."""

import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)

from .torch_adamw import TorchAdamW, TorchAdamWConfig  # noqa: F401
