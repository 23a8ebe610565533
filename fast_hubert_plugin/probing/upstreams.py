"""Upstreams for the probe: every hidden layer of a frozen model, or plain input features.

Each upstream turns one 16 kHz waveform into ``(num_layers + 1, frames, dim)`` float32 hidden
states, layer 0 first:

- ``fbank``: 80-dim Kaldi log-Mel fbank, 100 Hz; one layer (layer 0 = the features).
- ``mfcc``: 39-dim MFCC + delta + delta-delta of the clustering stage, 100 Hz; one layer.
- a ``fast_hubert`` checkpoint (pretrained, or fine-tuned inside ``hubert_ctc``): layer 0 is the
  Transformer input (subsampler, LayerNorm, projection; before the positional convolution), layer
  L the output of block L, as :class:`~..models.layer_features.FeatureExtractor` defines them;
  25 Hz for the 40 ms model. Raw fbank in: the model holds its own CMVN.
- a stock fairseq ``hubert`` checkpoint: layer 0 is the Transformer input (waveform CNN,
  LayerNorm, projection; before the positional convolution), layer L the output of block L;
  50 Hz. The waveform is layer-normalised first when the checkpoint's task has ``normalize``.

The model runs in eval mode under ``torch.inference_mode`` with ``requires_grad`` off on every
parameter: nothing of it is trained, and no gradient can reach it. One utterance at a time, so
no padding enters any frame (stock HuBERT's first conv block group-normalises over time).
"""

import os
from typing import Dict, List, Optional

import numpy as np
import torch

from ..clustering.extractors import hubert_conv_strides
from ..clustering.mfcc import MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc
from ..features.kaldi_fbank import FBANK_FRAME_RATE, NUM_MEL_BINS, SAMPLE_RATE, compute_fbank
from ..models.checkpoints import load_checkpoint
from ..models.family import FAST_HUBERT, model_family
from ..models.layer_features import FeatureExtractor
from ..utils.errors import DataError

FEATURE_UPSTREAMS = ("fbank", "mfcc")


class FeatureUpstream:
    """Plain input features as a one-layer upstream (the no-pretraining baselines)."""

    model: Optional[torch.nn.Module] = None
    num_layers = 0

    def __init__(self, kind: str):
        self.kind = self.source = kind
        if kind == "fbank":
            self.dim, self.frame_rate, self._compute = NUM_MEL_BINS, FBANK_FRAME_RATE, compute_fbank
        else:
            self.dim, self.frame_rate, self._compute = MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc

    def layers(self, wav: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._compute(wav), dtype=np.float32))[None]


class FastHubertUpstream:
    """All layers of a fast_hubert checkpoint (see the module docstring)."""

    def __init__(self, path: str, model: torch.nn.Module, device: str = "cpu"):
        self.kind, self.source = "fast_hubert", path
        self.extractor = FeatureExtractor(model, device, checkpoint=path)
        self.model = freeze(self.extractor.model)
        self.num_layers, self.dim, self.frame_rate = (
            self.extractor.num_layers,
            self.extractor.dim,
            self.extractor.frame_rate,
        )

    def layers(self, wav: np.ndarray) -> torch.Tensor:
        out = self.extractor.extract(wav, layers="all")
        return torch.stack([out[layer] for layer in range(self.num_layers + 1)])


class HubertUpstream:
    """All layers of a stock fairseq hubert checkpoint (see the module docstring)."""

    def __init__(self, path: str, model: torch.nn.Module, cfg, device: str = "cpu"):
        self.kind, self.source, self.device = "hubert", path, torch.device(device)
        self.model = freeze(model.to(device))
        self.normalize = bool(getattr(cfg.task, "normalize", False))
        self.num_layers = len(model.encoder.layers)
        self.dim = int(model.encoder.embedding_dim)
        self.frame_rate = SAMPLE_RATE / float(np.prod([s for _, s in hubert_conv_strides(model)]))

    @torch.inference_mode()
    def layers(self, wav: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(wav, dtype=np.float32)).view(1, -1).to(self.device)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape)
        captured: Dict[int, torch.Tensor] = {}

        def keep_input(module, args):
            captured[0] = args[0][0]  # encoder input x: (B, T, C)

        def keep_output(index):
            def hook(module, args, output):
                captured[index] = output[0][:, 0]  # block output x: (T, B, C)

            return hook

        hooks = [self.model.encoder.register_forward_pre_hook(keep_input)]
        hooks += [layer.register_forward_hook(keep_output(i + 1)) for i, layer in enumerate(self.model.encoder.layers)]
        try:
            self.model.extract_features(source=x, padding_mask=None, mask=False, output_layer=None)
        finally:
            for h in hooks:
                h.remove()
        frames = captured[0].shape[0]  # blocks see x padded to the encoder's required_seq_len_multiple
        return torch.stack([captured[i][:frames].float().cpu() for i in range(self.num_layers + 1)])


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def build_upstream(spec: str, device: str = "cpu"):
    """``fbank``, ``mfcc``, or the path of a fast_hubert / hubert_ctc / stock hubert checkpoint."""
    if spec in FEATURE_UPSTREAMS:
        return FeatureUpstream(spec)
    if not os.path.isfile(spec):
        raise DataError(
            spec,
            "unknown upstream: neither a feature name nor a checkpoint file",
            f"pass --upstream {' or --upstream '.join(FEATURE_UPSTREAMS)}, or the path of a "
            "fast_hubert (pretrained or fine-tuned) or stock fairseq hubert checkpoint",
        )
    model, cfg, _ = load_checkpoint(spec, device="cpu")
    try:
        family = model_family(model)
    except ValueError as e:
        raise DataError(
            spec,
            f"cannot probe this model: {e}",
            "pass a fast_hubert (pretrained or fine-tuned) or stock fairseq hubert checkpoint",
        ) from None
    if family == FAST_HUBERT:
        return FastHubertUpstream(spec, model, device)
    return HubertUpstream(spec, model, cfg, device)


def describe(upstream) -> Dict:
    return {
        "kind": upstream.kind,
        "source": upstream.source,
        "num_layers": upstream.num_layers,
        "dim": upstream.dim,
        "frame_rate": upstream.frame_rate,
    }


def upstream_parameters(upstream) -> List[torch.nn.Parameter]:
    return [] if upstream.model is None else list(upstream.model.parameters())
