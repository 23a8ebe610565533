"""What a benchmark record says about the CPU it ran on (a helper of the benchmarks, not one)."""

import os


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo, "unknown" where there is none."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return "unknown"
