"""What a record (benchmark or demo) says about the machine it ran on."""

import os


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo, "unknown" where there is none."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return "unknown"


def describe(device: str) -> str:
    """The accelerator (for "cuda") or the CPU with its core count, and torch's version."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__}"
