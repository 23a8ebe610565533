"""Let fairseq's torchrun detection run on machines without GPUs.

Under torchrun (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` and ``RANK`` in the environment, and
``distributed_world_size`` above 1) fairseq's ``infer_init_method`` calls
``_infer_torch_distributed_launch_init``, which takes the world size and the rank from the environment and
sets ``device_id = rank % torch.cuda.device_count()``: without GPUs, a division by zero. On such a machine
the device id selects nothing (fairseq calls ``torch.cuda.set_device`` only with GPUs, or for an id above 0),
so it is 0 there; with GPUs fairseq's own function runs, unchanged.

fairseq-hydra-train imports ``common.user_dir`` only after it has read the launcher's environment, so this
takes effect for a run started through ``fast-hubert-hydra-train`` (``hydra_train.py``), which registers the
plugin first.
"""

import os

import torch
from fairseq.distributed import utils as distributed_utils

_fairseq_launch_init = distributed_utils._infer_torch_distributed_launch_init


def infer_torchrun_init(cfg) -> None:
    """fairseq's torchrun detection on ``cfg`` (its ``distributed_training`` section), device 0 without GPUs."""
    if torch.cuda.device_count() > 0:
        _fairseq_launch_init(cfg)
        return
    cfg.distributed_init_method = "env://"
    cfg.distributed_world_size = int(os.environ["WORLD_SIZE"])
    cfg.distributed_rank = int(os.environ["RANK"])
    cfg.device_id = 0  # no GPU to pick: the process computes on the CPU
    cfg.distributed_no_spawn = True  # torchrun started the processes


def allow_torchrun_on_cpu() -> None:
    distributed_utils._infer_torch_distributed_launch_init = infer_torchrun_init
