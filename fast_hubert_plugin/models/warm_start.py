"""Continued pretraining: a new fast_hubert model whose encoder starts from a pretrained checkpoint.

``task.init_from_checkpoint=PRETRAINED.pt`` (the task calls :func:`init_from_checkpoint` when it builds
a new model, as fairseq's ``hubert_ctc`` reads ``w2v_path``): every tensor but the label heads (the
fbank subsampler, the CMVN buffers, the input LayerNorm and projection, the mask embedding, the
Transformer) is copied from the checkpoint's model; the heads are the new model's own, freshly
initialised for the new dictionaries whatever their size. The checkpoint's optimizer state, learning
rate schedule, update count, data-iterator position and meters are not read: for fairseq this is a new
run. A restarted run resumes from its own ``checkpoint_last.pt``, which fairseq loads over these
weights, so the pretrained file is only read, never trusted over the run's own progress.

The checkpoint may be ours or use the official names (model ``fasthubert``): both hold the same tensor
names. Its encoder must have the new model's shapes (the same architecture config).
"""

import logging
import os
from typing import Dict

import torch

from ..utils.errors import DataError
from .family import FAST_HUBERT, HUBERT_CTC, model_family

logger = logging.getLogger(__name__)

HEADS = "label_heads."  # the state-dict prefix of the per-dictionary heads, left as built
SAME_ARCHITECTURE = (
    "train with the model config the checkpoint was trained with (its config name and model.* sizes: "
    "encoder_layers, encoder_embed_dim, conv_kernel_sizes, conv_channels, fbank_encoder_dim...); the "
    "label dictionaries and supervised_layers may differ"
)


def encoder_state(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a pretrained fast_hubert checkpoint's model, less its label heads."""
    from fairseq import checkpoint_utils

    if not os.path.isfile(path):
        raise DataError(path, "checkpoint not found", "check task.init_from_checkpoint")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as e:
        raise DataError(path, f"cannot load the checkpoint ({type(e).__name__}: {e})", SAME_ARCHITECTURE) from None
    model_cfg = (state.get("cfg") or {}).get("model") or {}
    name = model_cfg.get("_name")
    fix = "pass a pretraining checkpoint of a fast_hubert (or official fasthubert) run"
    if name == HUBERT_CTC:
        fix = "pass the pretrained checkpoint it was fine-tuned from (its model.w2v_path)"
    try:
        family = model_family(model_cfg)
    except ValueError:
        family = None
    if family != FAST_HUBERT or name == HUBERT_CTC:
        raise DataError(path, f"holds a {name} model, not a pretrained fast_hubert", fix)
    return {k: v for k, v in state["model"].items() if not k.startswith(HEADS)}


def init_from_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Copy the encoder of checkpoint ``path`` into ``model`` (a new FastHubertModel); its label
    heads stay as built. Errors name the checkpoint and the first tensor that does not fit."""
    path = str(path)
    encoder = encoder_state(path)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HEADS)}
    missing, unexpected = sorted(set(own) - set(encoder)), sorted(set(encoder) - set(own))
    if missing or unexpected:
        raise DataError(
            path,
            f"its model does not fit this one: missing {missing[:3]}, unexpected {unexpected[:3]}",
            SAME_ARCHITECTURE,
        )
    for key, tensor in own.items():
        if encoder[key].shape != tensor.shape:
            raise DataError(
                path,
                f"{key} is {tuple(encoder[key].shape)} there, {tuple(tensor.shape)} in this model",
                SAME_ARCHITECTURE,
            )
    result = model.load_state_dict(encoder, strict=False)
    assert not result.unexpected_keys and all(k.startswith(HEADS) for k in result.missing_keys)
    heads = getattr(model, "label_heads", None)
    shapes = sorted({tuple(h.weight.shape) for h in heads}) if heads is not None else []
    logger.info(
        f"continued pretraining: {len(own)} encoder tensors (CMVN included) from {path}; label heads new "
        f"for the task's dictionaries, (units, dim) {shapes}"
    )
