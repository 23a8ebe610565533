"""Optimizers registered with fairseq (importing the plugin registers them)."""

from .torch_adamw import TorchAdamW, TorchAdamWConfig  # noqa: F401
