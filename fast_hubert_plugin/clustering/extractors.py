"""Frame-level features to cluster: MFCC, fbank, or the output of a Transformer layer.

Every extractor has ``name``, ``dim``, ``frame_rate`` (frames per second), ``num_frames(n)``
(frames for an utterance of ``n`` samples, known before extraction so that shards can be
preallocated), ``describe()`` (what goes into the shard's ``.json``) and
``extract(rows) -> list of (num_frames, dim) float32 arrays`` for a batch of manifest rows.
"""

import logging
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..features.cmvn import GlobalCMVN
from ..features.kaldi_fbank import FBANK_FRAME_RATE, NUM_MEL_BINS, SAMPLE_RATE, compute_fbank, num_fbank_frames
from ..models.checkpoints import load_checkpoint
from ..models.family import FAST_HUBERT, HUBERT, model_family
from ..models.layer_features import FeatureExtractor
from ..utils.errors import DataError
from .mfcc import MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc

logger = logging.getLogger("fast_hubert.clustering")


class MfccExtractor:
    """39-dim MFCC + deltas at 100 Hz (HuBERT iteration 1)."""

    name, dim, frame_rate = "mfcc", MFCC_DIM, MFCC_FRAME_RATE

    def num_frames(self, num_samples: int) -> int:
        return num_fbank_frames(num_samples)

    def describe(self) -> Dict:
        return {"feature": self.name, "dim": self.dim, "frame_rate": self.frame_rate}

    def compute(self, wav: np.ndarray) -> np.ndarray:
        return compute_mfcc(wav)


class FbankExtractor:
    """80-dim Kaldi log-Mel fbank at 100 Hz, optionally normalised with global CMVN stats."""

    name, dim, frame_rate = "fbank", NUM_MEL_BINS, FBANK_FRAME_RATE

    def __init__(self, cmvn_path: Optional[str] = None):
        self.cmvn_path = str(cmvn_path) if cmvn_path else None
        self.cmvn = GlobalCMVN.load(cmvn_path, expected_dim=NUM_MEL_BINS) if cmvn_path else None

    def num_frames(self, num_samples: int) -> int:
        return num_fbank_frames(num_samples)

    def describe(self) -> Dict:
        return {"feature": self.name, "dim": self.dim, "frame_rate": self.frame_rate, "cmvn": self.cmvn_path}

    def compute(self, wav: np.ndarray) -> np.ndarray:
        feats = compute_fbank(wav)
        return self.cmvn(feats) if self.cmvn is not None else feats


class LayerExtractor:
    """Hidden state ``layer`` of a checkpoint's Transformer.

    Two model families are recognised by their class:
    - ``fast_hubert`` (this plugin, under either registered name; pretrained, or fine-tuned inside
      ``hubert_ctc``): raw 80-dim fbank in (the model holds its CMVN), batched with a padding mask;
      layer 0 is the Transformer input, L the output of block L; frames at 100 Hz / subsampling
      factor (25 Hz for the 40 ms model). Computed by :class:`~..models.layer_features.FeatureExtractor`.
    - fairseq's stock ``hubert``: waveform in (layer-normed when the checkpoint's task has
      ``normalize: true``), layers 1..N, 50 Hz out. Run one utterance at a time, as fairseq's
      ``dump_hubert_feature.py`` does: its first conv block group-normalises over time, so zero
      padding would change every frame of the shorter utterances of a batch.
    """

    name = "layer"

    def __init__(self, checkpoint: str, layer: int, device: str = "cpu"):
        self.checkpoint, self.layer, self.device = str(checkpoint), int(layer), device
        model, cfg, _ = load_checkpoint(self.checkpoint, device)
        self.family = model_family(model)
        if self.family == HUBERT:
            self.model = model
            self.normalize = bool(getattr(cfg.task, "normalize", False))
            lowest, n_layers = 1, len(model.encoder.layers)
            self.dim = int(model.encoder.embedding_dim)
            self.strides = hubert_conv_strides(model)
            self.frame_rate = SAMPLE_RATE / math.prod(s for _, s in self.strides)
        else:
            self.features = FeatureExtractor(model, device, checkpoint=self.checkpoint)
            lowest, n_layers = 0, self.features.num_layers
            self.dim, self.frame_rate = self.features.dim, self.features.frame_rate
        if not lowest <= self.layer <= n_layers:
            raise DataError(
                self.checkpoint,
                f"layer {self.layer} does not exist: this {self.family} model has {n_layers} Transformer layers",
                f"use --layer between {lowest} and {n_layers}",
            )

    def num_frames(self, num_samples: int) -> int:
        if self.family == HUBERT:
            n = num_samples
            for kernel, stride in self.strides:
                n = (n - kernel) // stride + 1 if n >= kernel else 0
            return n
        return self.features.num_frames(num_fbank_frames(num_samples))

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
        import torch

        if self.family == FAST_HUBERT:
            fbanks = [torch.from_numpy(compute_fbank(w)) for w in wavs]
            return [f[self.layer].numpy() for f in self.features.extract_batch(fbanks, [self.layer])]
        out = []
        for wav in wavs:
            x = torch.from_numpy(wav).float().view(1, -1).to(self.device)
            if self.normalize:
                x = torch.nn.functional.layer_norm(x, x.shape)
            with torch.inference_mode():
                feats, _ = self.model.extract_features(source=x, padding_mask=None, mask=False, output_layer=self.layer)
            out.append(feats[0].float().cpu().numpy())
        return out


def hubert_conv_strides(model) -> List[tuple]:
    """(kernel, stride) of each conv of a stock HuBERT waveform feature extractor."""
    strides = []
    for block in model.feature_extractor.conv_layers:
        conv = block[0]
        strides.append((conv.kernel_size[0], conv.stride[0]))
    return strides


def build_extractor(
    feature: str,
    cmvn: Optional[str] = None,
    checkpoint: Optional[str] = None,
    layer: Optional[int] = None,
    device: str = "cpu",
):
    if feature == "mfcc":
        return MfccExtractor()
    if feature == "fbank":
        return FbankExtractor(cmvn)
    if feature == "layer":
        if checkpoint is None or layer is None:
            raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
        return LayerExtractor(checkpoint, layer, device)
    raise SystemExit(f"unknown --feature {feature!r}: choose mfcc, fbank or layer")
