"""Optimizer ``torch_adamw``: fairseq's ``adam`` settings run by ``torch.optim.AdamW``.

fairseq's ``adam`` is decoupled-weight-decay Adam (AdamW). Without apex it steps every parameter
in a Python loop (about ten kernel launches per tensor, ~200 tensors in Base); torch's AdamW runs
the same update as one fused CUDA kernel over all tensors on GPUs (``fused=True``) and as
multi-tensor ``foreach`` kernels on CPUs. The keys are fairseq's (``adam_betas``, ``adam_eps``,
``weight_decay``, ``optimization.lr``), so a config switches with ``optimizer._name: torch_adamw``.
fairseq adds ``adam_eps`` to sqrt(v) before the bias correction, torch after it: each step sets
torch's eps to adam_eps / sqrt(1 - beta2^t), which makes the two updates the same function
(``tests/test_optim.py``: equal to fp32 rounding, also for gradients far below eps).
"""

import math
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from fairseq.optim.adam import FairseqAdam
from omegaconf import II


@dataclass
class TorchAdamWConfig(FairseqDataclass):
    adam_betas: Any = field(default=(0.9, 0.999), metadata={"help": "betas for Adam optimizer"})
    adam_eps: float = field(default=1e-8, metadata={"help": "epsilon for Adam optimizer"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay (AdamW)"})
    lr: List[float] = II("optimization.lr")


@register_optimizer("torch_adamw", dataclass=TorchAdamWConfig)
class TorchAdamW(FairseqOptimizer):
    def __init__(self, cfg: TorchAdamWConfig, params):
        super().__init__(cfg)
        params = list(params)
        tensors = [p for group in params for p in group["params"]] if isinstance(params[0], dict) else params
        fused = all(p.is_cuda for p in tensors)
        self._optimizer = torch.optim.AdamW(params, **self.optimizer_config, fused=fused, foreach=not fused)
        self._steps = None  # updates taken, read from the optimizer state once (a restored run continues)

    def step(self, closure=None, scale=1.0, groups=None):
        if self._steps is None:
            states = [self.optimizer.state[p] for g in self.optimizer.param_groups for p in g["params"]]
            self._steps = max([int(st["step"]) for st in states if "step" in st], default=0)
        self._steps += 1
        for group in self.optimizer.param_groups:
            group["eps"] = self.cfg.adam_eps / math.sqrt(1.0 - group["betas"][1] ** self._steps)
        super().step(closure, scale, groups)

    # the same lr / betas / eps / weight_decay conversion as fairseq's adam (read back from checkpoints too)
    optimizer_config = FairseqAdam.optimizer_config

    @property
    def supports_flat_params(self):
        return True
