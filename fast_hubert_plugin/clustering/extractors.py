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

from ..data.manifest import AudioManifest
from ..features.audio import read_audio
from ..features.cmvn import GlobalCMVN
from ..features.fbank import FBANK_FRAME_RATE, NUM_MEL_BINS, SAMPLE_RATE, compute_fbank, num_fbank_frames
from ..utils.errors import DataError
from .mfcc import MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc

logger = logging.getLogger("fast_hubert.clustering")


def read_row_audio(manifest: AudioManifest, i: int) -> np.ndarray:
    """Waveform of manifest row ``i``; its length must be the manifest's ``num_samples``."""
    path = manifest.audio_path(i)
    wav = read_audio(path, where=manifest.where(i))
    if len(wav) != manifest.num_samples[i]:
        raise DataError(
            path, f"has {len(wav)} samples but {manifest.where(i)} says {manifest.num_samples[i]}",
            "regenerate the manifest from the audio (labels are checked against these counts)",
        )
    return wav


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
    """Output of Transformer block ``layer`` (1-based) of a pretrained checkpoint.

    Two model families are recognised:
    - ``fast_hubert`` (this plugin): raw 80-dim fbank in (the model holds its CMVN), batched with
      a padding mask; frames at 100 Hz / subsampling factor (25 Hz for the 40 ms model).
    - fairseq's stock ``hubert``: waveform in (layer-normed when the checkpoint's task has
      ``normalize: true``), 50 Hz out. Run one utterance at a time, as fairseq's
      ``dump_hubert_feature.py`` does: its first conv block group-normalises over time, so zero
      padding would change every frame of the shorter utterances of a batch.
    """
    name = "layer"

    def __init__(self, checkpoint: str, layer: int, device: str = "cpu"):
        import torch

        self.torch = torch
        self.checkpoint, self.layer, self.device = str(checkpoint), int(layer), device
        self.model, self.normalize = load_checkpoint_model(self.checkpoint, device)
        self.family = model_family(self.model)
        n_layers = len(self.model.encoder.layers)
        if not 1 <= self.layer <= n_layers:
            raise DataError(
                self.checkpoint, f"layer {self.layer} does not exist: this {self.family} model has "
                f"{n_layers} Transformer layers", f"use --layer between 1 and {n_layers}",
            )
        self.dim = int(getattr(self.model.encoder, "embedding_dim", None) or self.model.cfg.encoder_embed_dim)
        if self.family == "hubert":
            self.strides = hubert_conv_strides(self.model)
            self.frame_rate = SAMPLE_RATE / math.prod(s for _, s in self.strides)
        else:
            self.subsampling = self._probe_subsampling()
            self.frame_rate = FBANK_FRAME_RATE / self.subsampling

    def _probe_subsampling(self) -> int:
        """Fbank frames per output frame, measured on a 400-frame input (4 for the 40 ms model)."""
        probe = 400
        feats = self._forward(self.torch.zeros(1, probe, NUM_MEL_BINS), None)[0]
        factor = probe / feats.shape[1]
        if factor != int(factor):
            raise DataError(self.checkpoint, f"{probe} fbank frames gave {feats.shape[1]} model frames",
                            "only integer subsampling factors are supported")
        return int(factor)

    def num_frames(self, num_samples: int) -> int:
        if self.family == "hubert":
            n = num_samples
            for kernel, stride in self.strides:
                n = (n - kernel) // stride + 1 if n >= kernel else 0
            return n
        return -(-num_fbank_frames(num_samples) // self.subsampling)  # ceil: the conv subsampler pads

    def describe(self) -> Dict:
        return {"feature": self.name, "dim": self.dim, "frame_rate": self.frame_rate, "checkpoint": self.checkpoint,
                "layer": self.layer, "model": self.family}

    def _forward(self, source, padding_mask):
        torch = self.torch
        with torch.inference_mode():
            source = source.to(self.device)
            if padding_mask is not None:
                padding_mask = padding_mask.to(self.device)
            feats, out_mask = self.model.extract_features(
                source=source, padding_mask=padding_mask, mask=False, output_layer=self.layer)
        return feats.float().cpu(), (None if out_mask is None else out_mask.cpu())

    def extract(self, wavs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Features of a batch of waveforms: list of (num_frames(len(wav)), dim) float32."""
        torch = self.torch
        want = [self.num_frames(len(w)) for w in wavs]
        if self.family == "hubert":
            out = []
            for wav in wavs:
                x = torch.from_numpy(wav).float().view(1, -1)
                if self.normalize:
                    x = torch.nn.functional.layer_norm(x, x.shape)
                out.append(self._forward(x, None)[0][0].numpy())
        else:
            fbanks = [compute_fbank(w) for w in wavs]
            lengths = torch.tensor([f.shape[0] for f in fbanks])
            source = torch.zeros(len(fbanks), int(lengths.max()), NUM_MEL_BINS)
            for b, f in enumerate(fbanks):
                source[b, :f.shape[0]] = torch.from_numpy(f)
            padding_mask = torch.arange(source.shape[1])[None, :] >= lengths[:, None]
            feats, out_mask = self._forward(source, padding_mask if len(wavs) > 1 else None)
            if out_mask is not None:
                valid = (~out_mask).sum(1).tolist()
                if valid != want:
                    raise RuntimeError(f"{self.checkpoint}: model padding mask gives {valid} frames, expected {want}")
            out = [feats[b, :want[b]].numpy() for b in range(len(wavs))]
        for n, f in zip(want, out):
            if f.shape[0] != n:
                raise RuntimeError(f"{self.checkpoint}: model gave {f.shape[0]} frames where {n} were expected")
        return out


def model_family(model) -> str:
    """'fast_hubert' for our model under any registered name (``fast_hubert``, the official
    ``fasthubert``, subclasses), 'hubert' for fairseq's stock waveform HuBERT.

    Decided by what the model is (its class), never by its config name: FastHubertModel is a
    HubertModel subclass without the waveform CNN, so it must be tested first."""
    from fairseq.models.hubert.hubert import HubertModel

    from ..models.fast_hubert import FastHubertModel

    if isinstance(model, FastHubertModel):
        return "fast_hubert"
    if isinstance(model, HubertModel):
        return "hubert"
    name = getattr(getattr(model, "cfg", None), "_name", None)
    raise ValueError(f"unsupported model {type(model).__name__} ({name}): expected fast_hubert or hubert")


def hubert_conv_strides(model) -> List[tuple]:
    """(kernel, stride) of each conv of a stock HuBERT waveform feature extractor."""
    strides = []
    for block in model.feature_extractor.conv_layers:
        conv = block[0]
        strides.append((conv.kernel_size[0], conv.stride[0]))
    return strides


def load_checkpoint_model(checkpoint: str, device: str):
    """(model in eval mode on ``device``, whether to layer-norm the waveform) of a fairseq checkpoint."""
    import os

    fix = "pass a fairseq checkpoint of a fast_hubert or stock hubert pretraining run (checkpoint_best.pt)"
    if not os.path.isfile(checkpoint):
        raise DataError(checkpoint, "checkpoint not found", fix)
    try:
        import fast_hubert_plugin  # noqa: F401  registers our task/model, allowlists checkpoint types
    except ImportError:
        pass
    from fairseq import checkpoint_utils

    try:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint])
    except Exception as e:
        raise DataError(checkpoint, f"cannot load the checkpoint ({type(e).__name__}: {e})", fix) from e
    model = models[0].eval().to(device)
    normalize = bool(getattr(cfg.task, "normalize", False)) if model_family(model) == "hubert" else False
    return model, normalize


def build_extractor(feature: str, cmvn: Optional[str] = None, checkpoint: Optional[str] = None,
                    layer: Optional[int] = None, device: str = "cpu"):
    if feature == "mfcc":
        return MfccExtractor()
    if feature == "fbank":
        return FbankExtractor(cmvn)
    if feature == "layer":
        if checkpoint is None or layer is None:
            raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
        return LayerExtractor(checkpoint, layer, device)
    raise SystemExit(f"unknown --feature {feature!r}: choose mfcc, fbank or layer")
