"""A fairseq user dir for the distributed and resume tests: the fast_hubert plugin plus a task that
records what each rank computes, under ``task.probe_dir``:

- ``losses_rank{R}.jsonl``: one line per micro-batch, {"update", "micro", "loss", "sample_size"},
  the unrounded loss (fairseq's logs round it to 3 decimals);
- ``rank{R}.pt``: the parameters when update ``task.probe_update`` + 1 begins (after that many
  updates). Only rank 0 writes checkpoints, so this is how the other ranks are seen.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.models import BaseFairseqModel
from fairseq.tasks import register_task

from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask


@dataclass
class RankProbeConfig(FastHubertPretrainingConfig):
    probe_dir: Optional[str] = field(default=None, metadata={"help": "folder for the records"})
    probe_update: int = field(default=-1, metadata={"help": "save the parameters after this many updates"})


@register_task("fast_hubert_pretraining_rank_probe", dataclass=RankProbeConfig)
class RankProbeTask(FastHubertPretrainingTask):
    _last_update = None
    _micro = 0

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self._micro = self._micro + 1 if update_num == self._last_update else 0
        self._last_update = update_num
        if update_num == self.cfg.probe_update and self._micro == 0:
            inner = model
            while not isinstance(inner, BaseFairseqModel):  # fairseq's DDP wrappers
                inner = inner.module
            state = {k: v.detach().clone() for k, v in inner.state_dict().items()}
            torch.save(state, os.path.join(self.cfg.probe_dir, f"rank{rank}.pt"))
        loss, sample_size, log = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        if self.cfg.probe_dir:
            with open(os.path.join(self.cfg.probe_dir, f"losses_rank{rank}.jsonl"), "a") as f:
                f.write(
                    json.dumps(
                        {
                            "update": update_num + 1,
                            "micro": self._micro,
                            "loss": float(loss),
                            "sample_size": int(sample_size),
                        }
                    )
                    + "\n"
                )
        return loss, sample_size, log
