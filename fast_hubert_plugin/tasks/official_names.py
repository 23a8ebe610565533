"""Task ``fasthubert_pretraining``: the official Fast-HuBERT name, with its ``stats_npz_path``."""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from .fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask


@dataclass
class OfficialFastHubertPretrainingConfig(FastHubertPretrainingConfig):
    stats_npz_path: Optional[str] = field(
        default=None, metadata={"help": "official key for cmvn_stats_path (npz with mean and std)"}
    )


@register_task("fasthubert_pretraining", dataclass=OfficialFastHubertPretrainingConfig)
class OfficialFastHubertPretrainingTask(FastHubertPretrainingTask):
    def __init__(self, cfg: OfficialFastHubertPretrainingConfig) -> None:
        if cfg.cmvn_stats_path is None:
            cfg.cmvn_stats_path = cfg.stats_npz_path
        super().__init__(cfg)
