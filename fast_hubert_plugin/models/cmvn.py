"""The CMVN of a model: its buffers ``cmvn_mean`` and ``cmvn_inv_std``, the one representation.

A fast_hubert model normalises its fbank as ``(x - cmvn_mean) * cmvn_inv_std`` with these two
buffers, so every checkpoint carries the statistics it was trained with. :func:`read_cmvn` is the
one reader that fills them: from a stats file (``fast-hubert-cmvn``) when a new model is built, or
copied from a saved model's state dict (fine-tuning with ``no_pretrained_weights``, the export).
A model restored from a checkpoint gets them from fairseq's ``load_state_dict`` like any tensor.
"""

import copy
from collections.abc import Mapping
from typing import Dict, Optional

import torch
from omegaconf import DictConfig, open_dict

from ..features.cmvn import GlobalCMVN
from ..utils.errors import DataError

CMVN_BUFFERS = ("cmvn_mean", "cmvn_inv_std")
STATS_FIX = "pass task.cmvn_stats_path=STATS.npz (from `fast-hubert-cmvn TRAIN_MANIFEST --output STATS.npz`)"


def read_cmvn(
    stats_path: Optional[str] = None,
    state_dict: Optional[Mapping[str, torch.Tensor]] = None,
    prefix: str = "",
    dim: Optional[int] = None,
    source: str = "the checkpoint",
) -> Dict[str, torch.Tensor]:
    """{"cmvn_mean": (F,), "cmvn_inv_std": (F,)} float32 tensors, as the model holds them.

    From the stats file ``stats_path`` when given (fast-hubert-cmvn's ``.npz`` or the official
    ``global_cmvn.npy``; ``dim`` checks the number of bins), else copied from ``state_dict``, a
    saved model's tensors (``prefix`` before the buffer names; ``source`` names it in the error)."""
    if stats_path:
        stats = GlobalCMVN.load(stats_path, expected_dim=dim)
        return {"cmvn_mean": torch.from_numpy(stats.mean), "cmvn_inv_std": torch.from_numpy(stats.inv_std)}
    missing = [prefix + name for name in CMVN_BUFFERS if state_dict is None or prefix + name not in state_dict]
    if missing:
        raise DataError(source, f"holds no CMVN statistics ({', '.join(missing)})", STATS_FIX)
    return {name: state_dict[prefix + name].detach().float().clone() for name in CMVN_BUFFERS}


def configured_stats_path(model_cfg) -> Optional[str]:
    """The stats file a fast_hubert model config names (``cmvn_stats_path``; None when it has no such key)."""
    if isinstance(model_cfg, Mapping):  # a dict or an omegaconf DictConfig
        return model_cfg.get("cmvn_stats_path")
    return getattr(model_cfg, "cmvn_stats_path", None)


def with_stats_path(model_cfg, stats_path: Optional[str]):
    """A copy of a fast_hubert model config whose ``cmvn_stats_path`` is ``stats_path``; an omegaconf
    copy keeps its parent, so interpolations such as ``${task.label_rate}`` still resolve."""
    model_cfg = copy.deepcopy(model_cfg)
    if isinstance(model_cfg, DictConfig):
        with open_dict(model_cfg):  # configs saved before the key existed lack it
            model_cfg.cmvn_stats_path = stats_path
    else:
        model_cfg.cmvn_stats_path = stats_path
    return model_cfg
