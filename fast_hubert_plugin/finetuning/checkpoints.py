"""Load a pretrained (``fast_hubert``) or fine-tuned (``hubert_ctc``) checkpoint for inference."""
import os
from typing import Dict, Optional, Tuple

import torch

from ..utils.errors import DataError
from .hubert_ctc_compat import wrapped_model


def load_checkpoint(path: str, device: str = "cpu", arg_overrides: Optional[Dict] = None) -> Tuple[torch.nn.Module, object, object]:
    """(model in eval mode on ``device``, config, task) of a fairseq checkpoint of this plugin.

    ``arg_overrides`` replace config keys wherever they occur (fairseq's ``overwrite_args_by_name``),
    e.g. ``{"data": DIR, "label_dir": DIR}`` to point the task at the split being decoded.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, "checkpoint not found", "pass the checkpoint_best.pt of a fast-hubert training run")
    import fast_hubert_plugin  # noqa: F401  registers the task/model, allowlists checkpoint types
    from fairseq import checkpoint_utils

    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=arg_overrides)
    except FileNotFoundError as e:
        raise DataError(path, f"loading it needs a file that is missing: {e.filename or e}",
                        "a fine-tuned checkpoint saved without the pretrained config (w2v_args) reloads "
                        "model.w2v_path: pass --w2v-path PRETRAINED.pt") from None
    model = models[0].to(device).eval()
    return model, cfg, task


def fast_hubert_of(model: torch.nn.Module) -> torch.nn.Module:
    """The fast_hubert model itself: ``model`` or the one inside a ``hubert_ctc`` model."""
    inner = wrapped_model(model)
    inner = model if inner is None else inner
    if not hasattr(inner, "subsampler"):
        raise ValueError(f"{type(inner).__name__} is not a fast_hubert model (no fbank subsampler)")
    return inner
