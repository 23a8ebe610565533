"""Upstreams for the probe: every hidden layer of a frozen model, or plain input features.

Each upstream turns one 16 kHz waveform into ``(num_layers + 1, frames, dim)`` float32 hidden
states, layer 0 first: a frame-feature source of :mod:`~..models.frame_features` (``fbank``,
``mfcc``, a fast_hubert or stock fairseq hubert checkpoint), run one utterance at a time so no
padding enters any frame. Here: which ``--upstream`` names which source, and its one-line errors.
"""

import os
from typing import Dict

from ..models.frame_features import INPUT_FEATURES, InputFeatures, load_model_features
from ..utils.errors import DataError

FEATURE_UPSTREAMS = INPUT_FEATURES


def build_upstream(spec: str, device: str = "cpu"):
    """``fbank``, ``mfcc``, or the path of a fast_hubert / hubert_ctc / stock hubert checkpoint."""
    if spec in FEATURE_UPSTREAMS:
        return InputFeatures(spec)
    if not os.path.isfile(spec):
        raise DataError(
            spec,
            "unknown upstream: neither a feature name nor a checkpoint file",
            f"pass --upstream {' or --upstream '.join(FEATURE_UPSTREAMS)}, or the path of a "
            "fast_hubert (pretrained or fine-tuned) or stock fairseq hubert checkpoint",
        )
    try:
        return load_model_features(spec, device)
    except DataError:  # a file fairseq cannot load: already one line
        raise
    except ValueError as e:  # a model of another family
        raise DataError(
            spec,
            f"cannot probe this model: {e}",
            "pass a fast_hubert (pretrained or fine-tuned) or stock fairseq hubert checkpoint",
        ) from None


def describe(upstream) -> Dict:
    return {
        "kind": upstream.kind,
        "source": upstream.source,
        "num_layers": upstream.num_layers,
        "dim": upstream.dim,
        "frame_rate": upstream.frame_rate,
    }
