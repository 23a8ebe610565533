"""What a record (benchmark or demo) says about the machine it ran on."""

import os
from typing import Dict


def cpu_fields() -> Dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ("model name", "cpu family", ...), none where there is
    no such file."""
    fields: Dict[str, str] = {}
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():  # the end of the first processor's block
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model_name() -> str:
    """The CPU's model name, "unknown" where there is none."""
    return cpu_fields().get("model name", "unknown")


def describe(device: str) -> str:
    """The accelerator (for "cuda") or the CPU with its core count, and torch's version."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__}"
