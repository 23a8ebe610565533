"""Make fairseq's ``hubert_ctc`` (fine-tuning) work on top of ``fast_hubert`` with fairseq-fixed 0.12.3.1.

Registered with the models (importing ``fast_hubert_plugin.models`` fixes the config), so that the
task never patches fairseq's registry itself. Four gaps, each closed without copying fairseq code:

1. ``HubertEncoder.__init__`` reads ``cfg.autoregressive``, a key ``HubertCtcConfig`` lacks
   (only ``HubertSeq2SeqConfig`` has it): building ``hubert_ctc`` fails with
   ``Key 'autoregressive' not in 'HubertCtcConfig'``. :func:`fix_hubert_ctc_config` registers a
   subclass of the config with ``autoregressive: false`` (CTC never is) for ``hubert_ctc``.
2. ``HubertEncoder`` stores the pretrained checkpoint's config in ``cfg.w2v_args``, but on a copy
   of the model config (``merge_with_parent``), so fine-tuned checkpoints are saved with
   ``w2v_args: null`` and loading them needs the pretrained checkpoint (``w2v_path``) again.
   :func:`keep_pretrained_config` writes it into the config that the trainer saves.
3. fairseq overrides only its own keys on the pretrained model: the fine-tuning SpecAugment
   settings (``task.spec_aug_*``) are set by :func:`set_spec_augment`.
4. With ``no_pretrained_weights: true`` ``HubertEncoder`` builds the pretrained model as restored
   from ``w2v_path`` but loads none of its tensors, the CMVN buffers included, which would leave the
   fbank unnormalised: :func:`set_pretrained_cmvn` sets them.
"""

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Dict, Optional

from fairseq.models import MODEL_DATACLASS_REGISTRY
from fairseq.models.hubert import hubert_asr
from omegaconf import DictConfig, open_dict

from .cmvn import read_cmvn
from .family import FAST_HUBERT, fast_hubert_of, model_family, wrapped_model

logger = logging.getLogger(__name__)


@dataclass
class HubertCtcConfig(hubert_asr.HubertCtcConfig):
    autoregressive: bool = field(
        default=False, metadata={"help": "always false for CTC (read by fairseq's HubertEncoder)"}
    )


def fix_hubert_ctc_config() -> None:
    """Idempotent; a no-op on fairseq versions whose HubertCtcConfig has the key."""
    current = MODEL_DATACLASS_REGISTRY.get("hubert_ctc")
    if current is not None and "autoregressive" not in current.__dataclass_fields__:
        MODEL_DATACLASS_REGISTRY["hubert_ctc"] = HubertCtcConfig


def _writable(cfg):
    return open_dict(cfg) if isinstance(cfg, DictConfig) else contextlib.nullcontext()


def keep_pretrained_config(model_cfg, model) -> None:
    """Copy the pretrained config that ``HubertEncoder`` loaded into ``model_cfg.w2v_args``."""
    encoder_cfg = getattr(model, "cfg", None)
    w2v_args = getattr(encoder_cfg, "w2v_args", None)
    if w2v_args is None or model_cfg is encoder_cfg or getattr(model_cfg, "w2v_args", None) is not None:
        return
    with _writable(model_cfg):
        model_cfg.w2v_args = w2v_args


def set_spec_augment(model, values: Dict[str, int]) -> None:
    """Set ``spec_aug_*`` values on the fast_hubert model wrapped by ``model``."""
    inner = wrapped_model(model)
    if inner is None or not values:
        return
    try:
        fast_hubert_of(model)
    except ValueError:
        raise ValueError(
            f"task.spec_aug_* is set but the fine-tuned model is {type(inner).__name__}, "
            "not fast_hubert: unset task.spec_aug_*"
        ) from None
    with _writable(inner.cfg):
        for k, v in values.items():
            setattr(inner.cfg, k, v)
    logger.info("fine-tuning SpecAugment on the fbank: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def set_pretrained_cmvn(model, model_cfg, stats_path: Optional[str]) -> None:
    """CMVN buffers for the fast_hubert model inside a ``hubert_ctc`` built with ``no_pretrained_weights``:
    from ``stats_path`` (the fine-tuning ``task.cmvn_stats_path``) when set, else those of the pretrained
    checkpoint ``model_cfg.w2v_path``. Read by :func:`~.cmvn.read_cmvn`, as a new model's are."""
    if model_family(model) != FAST_HUBERT:
        return
    state = None
    if not stats_path:
        from fairseq import checkpoint_utils

        state = checkpoint_utils.load_checkpoint_to_cpu(model_cfg.w2v_path)["model"]
    inner = fast_hubert_of(model)
    inner.set_cmvn(read_cmvn(stats_path, state, dim=inner.cfg.input_feat_per_channel, source=model_cfg.w2v_path))
