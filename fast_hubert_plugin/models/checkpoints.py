"""Load a fairseq checkpoint for inference: pretrained ``fast_hubert`` (under either name), fine-tuned
``hubert_ctc`` around it, or fairseq's stock ``hubert``. The one checkpoint loader of the package.

Importing any module of ``fast_hubert_plugin`` first runs the package's ``__init__``, which registers
the task, models and criterions and allowlists fairseq's checkpoint types for ``torch.load``.
"""

import os
from typing import Dict, Optional, Tuple

import torch

from ..utils.errors import DataError


def load_checkpoint(
    path: str, device: str = "cpu", arg_overrides: Optional[Dict] = None
) -> Tuple[torch.nn.Module, object, object]:
    """(model in eval mode on ``device``, config, task) of a fairseq checkpoint.

    ``arg_overrides`` replace config keys wherever they occur (fairseq's ``overwrite_args_by_name``),
    e.g. ``{"data": DIR, "label_dir": DIR}`` to point the task at the split being decoded.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, "checkpoint not found", "pass the checkpoint_best.pt of a fast-hubert training run")
    from fairseq import checkpoint_utils

    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=arg_overrides)
    except FileNotFoundError as e:
        raise DataError(
            path,
            f"loading it needs a file that is missing: {e.filename or e}",
            "a fine-tuned checkpoint saved without the pretrained config (w2v_args) reloads "
            "model.w2v_path: pass --w2v-path PRETRAINED.pt",
        ) from None
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            path,
            f"cannot load the checkpoint ({type(e).__name__}: {e})",
            "pass a fairseq checkpoint of a fast_hubert, hubert_ctc or stock hubert run",
        ) from e
    model = models[0].to(device).eval()
    return model, cfg, task
