"""Model ``fasthubert``: the official Fast-HuBERT code's name, keys and parameter names.

``ils: true`` with ``predict_layers`` (0-based blocks, default [3,11]) maps to our 1-based
``supervised_layers``; ``freq_mask_*`` / ``time_mask_*`` map to fine-tuning SpecAugment.
:func:`to_official_names` / :func:`from_official_names` rename a state dict between our model and the
official ``FastHubertModel`` (benchmarks/official_equivalence.py loads the same weights into both).
"""

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, Mapping

import torch
from fairseq.models import register_model

from ..utils.config_values import parse_int_list
from .cmvn import CMVN_BUFFERS
from .fast_hubert import FastHubertConfig, FastHubertModel

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


# The official model subclasses fairseq's HubertModel: its subsampler is ``subsample``, its heads
# ``final_proj`` (one Linear, or with ILS a Sequential with one Linear per predict_layers entry), and it
# keeps HubertModel's ``label_embs_concat``, which its CE loss never reads. Everything else (layer_norm,
# post_extract_proj, mask_emb, encoder.*) has the same name in both. Its CMVN is applied by its dataset.
OFFICIAL_UNUSED = ("label_embs_concat",)
_RENAMES = (("subsampler.", "subsample."),)


def _official_head_prefix(index: int, ils: bool) -> str:
    return f"final_proj.{index}." if ils else "final_proj."


def _check_heads(model_cfg) -> bool:
    """Whether the official model has ILS heads; refuses configs whose heads do not map one to one."""
    ils = bool(getattr(model_cfg, "ils", False))
    if ils:
        layers = parse_int_list(model_cfg.predict_layers, "predict_layers")
        if layers != sorted(set(layers)) or layers[-1] != model_cfg.encoder_layers - 1:
            raise ValueError(
                f"predict_layers={model_cfg.predict_layers}: only ascending 0-based blocks ending with the last "
                f"({model_cfg.encoder_layers - 1}) map to our heads (the last block is always supervised here)"
            )
    return ils


def to_official_names(state_dict: Mapping[str, torch.Tensor], model_cfg) -> Dict[str, torch.Tensor]:
    """Our model's state dict (one label set) under the official model's parameter names, for the
    official config ``model_cfg`` (its ``ils``, ``predict_layers``, ``encoder_layers``); the CMVN
    buffers, which the official model does not hold, are left out."""
    ils = _check_heads(model_cfg)
    out = {}
    for name, value in state_dict.items():
        if name in CMVN_BUFFERS:
            continue
        head = re.match(r"label_heads\.(\d+)\.", name)
        if head:
            name = _official_head_prefix(int(head.group(1)), ils) + name[head.end() :]
        for ours, official in _RENAMES:
            if name.startswith(ours):
                name = official + name[len(ours) :]
        out[name] = value
    return out


def from_official_names(state_dict: Mapping[str, torch.Tensor], model_cfg) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`to_official_names`: an official model's state dict under our names, without
    ``label_embs_concat`` (HubertModel's, unused by the CE loss) and without CMVN buffers (add them
    with ``set_cmvn``: the official statistics live in its ``global_cmvn.npy``)."""
    ils = _check_heads(model_cfg)
    out = {}
    for name, value in state_dict.items():
        if name in OFFICIAL_UNUSED:
            continue
        head = re.match(r"final_proj\.(\d+)\." if ils else r"final_proj\.", name)
        if head:
            name = f"label_heads.{head.group(1) if ils else 0}." + name[head.end() :]
        for ours, official in _RENAMES:
            if name.startswith(official):
                name = ours + name[len(official) :]
        out[name] = value
    return out
