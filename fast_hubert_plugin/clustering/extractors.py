"""Frame-level features to cluster: MFCC, fbank, or the output of one Transformer layer.

The features themselves come from :mod:`~..models.frame_features`; an extractor adds what a dump
needs: ``name``, ``dim``, ``frame_rate``, ``num_frames(n)`` (frames for an utterance of ``n``
samples, known before extraction so that shards can be preallocated), ``describe()`` (what goes
into the shard's ``.json``) and either ``compute(wav)`` (input features, one row at a time, in
worker processes) or ``extract(wavs)`` (one layer of a model, batched) -> ``(frames, dim)`` float32.
"""

import logging
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..features.cmvn import GlobalCMVN
from ..models.frame_features import InputFeatures, load_model_features
from ..utils.errors import DataError

logger = logging.getLogger("fast_hubert.clustering")


class InputExtractor:
    """39-dim MFCC + deltas (HuBERT iteration 1) or 80-dim log-Mel fbank, both at 100 Hz; fbank
    optionally normalised with global CMVN stats."""

    def __init__(self, name: str, cmvn_path: Optional[str] = None):
        self.features = InputFeatures(name)
        self.name, self.dim, self.frame_rate = name, self.features.dim, self.features.frame_rate
        self.cmvn_path = str(cmvn_path) if cmvn_path else None
        self.cmvn = GlobalCMVN.load(cmvn_path, expected_dim=self.dim) if cmvn_path else None

    def num_frames(self, num_samples: int) -> int:
        return self.features.num_frames(num_samples)

    def describe(self) -> Dict:
        meta = {"feature": self.name, "dim": self.dim, "frame_rate": self.frame_rate}
        return dict(meta, cmvn=self.cmvn_path) if self.name == "fbank" else meta

    def compute(self, wav: np.ndarray) -> np.ndarray:
        feats = self.features.compute(wav)
        return self.cmvn(feats) if self.cmvn is not None else feats


class LayerExtractor:
    """Hidden state ``layer`` of a fast_hubert (pretrained or fine-tuned) or stock fairseq hubert
    checkpoint: layers 0..N of fast_hubert (0: the Transformer input), 1..N of hubert, at the
    model's own frame rate (25 Hz for the 40 ms fast_hubert model, 50 Hz for hubert)."""

    name = "layer"

    def __init__(self, checkpoint: str, layer: int, device: str = "cpu"):
        self.checkpoint, self.layer, self.device = str(checkpoint), int(layer), device
        self.features = load_model_features(self.checkpoint, device)
        self.family, self.model = self.features.kind, self.features.model
        self.dim, self.frame_rate = self.features.dim, self.features.frame_rate
        lowest, n_layers = self.features.first_layer, self.features.num_layers
        if not lowest <= self.layer <= n_layers:
            raise DataError(
                self.checkpoint,
                f"layer {self.layer} does not exist: this {self.family} model has {n_layers} Transformer layers",
                f"use --layer between {lowest} and {n_layers}",
            )

    def num_frames(self, num_samples: int) -> int:
        return self.features.num_frames(num_samples)

    def describe(self) -> Dict:
        return {
            "feature": self.name,
            "dim": self.dim,
            "frame_rate": self.frame_rate,
            "checkpoint": self.checkpoint,
            "layer": self.layer,
            "model": self.family,
        }

    def extract(self, wavs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Features of a batch of waveforms: list of (num_frames(len(wav)), dim) float32."""
        return self.features.layer_batch(wavs, self.layer)


def build_extractor(
    feature: str,
    cmvn: Optional[str] = None,
    checkpoint: Optional[str] = None,
    layer: Optional[int] = None,
    device: str = "cpu",
):
    if feature in ("mfcc", "fbank"):
        return InputExtractor(feature, cmvn if feature == "fbank" else None)
    if feature == "layer":
        if checkpoint is None or layer is None:
            raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
        return LayerExtractor(checkpoint, layer, device)
    raise SystemExit(f"unknown --feature {feature!r}: choose mfcc, fbank or layer")
