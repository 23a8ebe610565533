"""Model ``fasthubert``: the official Fast-HuBERT code's name and keys, so its YAMLs run here.

``ils: true`` with ``predict_layers`` (0-based blocks, default [3,11]) maps to our 1-based
``supervised_layers``; ``freq_mask_*`` / ``time_mask_*`` map to fine-tuning SpecAugment.
"""

import logging
from dataclasses import dataclass, field

from fairseq.models import register_model

from .fast_hubert import FastHubertConfig, FastHubertModel, parse_int_list

logger = logging.getLogger(__name__)


@dataclass
class OfficialFastHubertConfig(FastHubertConfig):
    input_channels: int = field(default=1, metadata={"help": "official key: input channels (only 1 is supported)"})
    ils: bool = field(default=True, metadata={"help": "official key: supervise predict_layers too"})
    predict_layers: str = field(default="[3,11]", metadata={"help": "official key: 0-based supervised blocks"})
    freq_mask_F: int = field(default=30, metadata={"help": "official key: frequency masks are < F bins"})
    freq_mask_N: int = field(default=2, metadata={"help": "official key: number of frequency masks"})
    time_mask_N: int = field(default=2, metadata={"help": "official key: number of time masks"})
    time_mask_T: int = field(default=40, metadata={"help": "official key: time masks are < T frames"})
    time_mask_p: float = field(default=1.0, metadata={"help": "official key: only 1.0 is supported"})
    time_wrap_W: int = field(default=0, metadata={"help": "official key: time warping (not supported, keep 0)"})


@register_model("fasthubert", dataclass=OfficialFastHubertConfig)
class OfficialFastHubertModel(FastHubertModel):
    def __init__(self, cfg: OfficialFastHubertConfig, dictionaries):
        if cfg.input_channels != 1 or cfg.time_mask_p != 1.0 or cfg.time_wrap_W != 0:
            raise ValueError(
                "fasthubert: input_channels must be 1, time_mask_p 1.0 and time_wrap_W 0 "
                "(the official code could not enable time warping either)"
            )
        if cfg.ils:
            cfg.supervised_layers = str([p + 1 for p in parse_int_list(cfg.predict_layers, "predict_layers")])
        cfg.spec_aug_freq_masks, cfg.spec_aug_freq_width = cfg.freq_mask_N, cfg.freq_mask_F
        cfg.spec_aug_time_masks, cfg.spec_aug_time_width = cfg.time_mask_N, cfg.time_mask_T
        super().__init__(cfg, dictionaries)
