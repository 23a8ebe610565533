"""Frame features of a 16 kHz waveform, from input features or a frozen model: the one adapter for
the clustering dump (one layer, for k-means) and the probe (every layer, for learned weights).

Sources, with their layers (layer 0 first):

- ``fbank``: 80-dim Kaldi log-Mel fbank, 100 Hz; one layer (layer 0 = the features).
- ``mfcc``: 39-dim MFCC + delta + delta-delta, 100 Hz; one layer.
- a ``fast_hubert`` checkpoint (pretrained, or fine-tuned inside ``hubert_ctc``): raw fbank in (the
  model holds its CMVN); layer 0 is the Transformer input (subsampler, LayerNorm, projection;
  before the positional convolution), layer L the output of block L, as
  :class:`~.layer_features.FeatureExtractor` defines them; 25 Hz for the 40 ms model. Batched with
  a padding mask.
- a stock fairseq ``hubert`` checkpoint: waveform in (layer-normalised when the checkpoint's task
  has ``normalize: true``); layer 0 is the Transformer input (waveform CNN, LayerNorm, projection;
  before the positional convolution), layer L the output of block L; 50 Hz. One utterance at a
  time, as fairseq's ``dump_hubert_feature.py`` does: its first conv block group-normalises over
  time, so zero padding would change every frame of the shorter utterances of a batch.

Every source has ``kind``, ``source``, ``dim``, ``frame_rate`` (frames per second),
``num_layers``, ``first_layer`` (the lowest layer :meth:`layer_batch` gives), ``model`` (None for
input features), ``num_frames(num_samples)`` (known before extraction, so that stores can be
preallocated), ``layer_batch(wavs, layer)`` (a list of ``(frames, dim)`` float32 arrays) and
``layers(wav)`` (``(num_layers + 1, frames, dim)`` float32 tensor). A model runs in eval mode under
``torch.inference_mode`` with ``requires_grad`` off on every parameter: nothing of it is trained.

Long recordings: ``layer_batch`` runs an utterance longer than ``Chunking.seconds`` in pieces
(:class:`Chunking`), as fairseq's ``dump_hubert_feature.py`` does with ``max_chunk``, so memory and the
attention's quadratic cost stay those of one piece. The input features of a piece are exactly those of
the whole (the fbank is computed whole, the waveform pieces overlap by the CNN's receptive field);
what changes is the model's context: a frame near a piece's edge sees ``context_seconds`` of audio
beyond it instead of the whole recording.
"""

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..features.kaldi_fbank import FBANK_FRAME_RATE, NUM_MEL_BINS, SAMPLE_RATE, compute_fbank, num_fbank_frames
from ..features.mfcc import MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc
from .checkpoints import load_checkpoint
from .family import FAST_HUBERT, HUBERT, model_family
from .layer_features import FeatureExtractor

INPUT_FEATURES = ("fbank", "mfcc")


@dataclass(frozen=True)
class Chunking:
    """How a model runs an utterance longer than ``seconds``: in pieces whose ``seconds`` of core frames
    are kept, each run with up to ``context_seconds`` more on either side (computed, then dropped).
    fairseq's ``dump_hubert_feature.py``: 100 s pieces (``max_chunk`` 1,600,000 samples), no context."""

    seconds: float = 100.0
    context_seconds: float = 5.0

    def windows(self, total: int, frame_rate: float) -> Iterator[Tuple[int, int, int, int]]:
        """(first, n, left, right) in model frames: frames first..first+n-1 are kept from a piece that
        starts ``left`` frames before them and ends ``right`` frames after; (0, total, 0, 0) if it fits."""
        core = max(1, int(self.seconds * frame_rate))
        context = max(0, int(round(self.context_seconds * frame_rate)))
        if total <= core:
            yield 0, total, 0, 0
            return
        for first in range(0, total, core):
            n = min(core, total - first)
            yield first, n, min(context, first), min(context, total - first - n)


class InputFeatures:
    """Plain input features: one layer, no model."""

    model = None
    num_layers = first_layer = 0

    def __init__(self, kind: str):
        if kind not in INPUT_FEATURES:
            raise ValueError(f"unknown input features {kind!r}: choose {' or '.join(INPUT_FEATURES)}")
        self.kind = self.source = kind
        if kind == "fbank":
            self.dim, self.frame_rate, self._compute = NUM_MEL_BINS, FBANK_FRAME_RATE, compute_fbank
        else:
            self.dim, self.frame_rate, self._compute = MFCC_DIM, MFCC_FRAME_RATE, compute_mfcc

    def num_frames(self, num_samples: int) -> int:
        return num_fbank_frames(num_samples)

    def compute(self, wav: np.ndarray) -> np.ndarray:
        """(frames, dim) float32 features of one waveform."""
        return self._compute(wav)

    def layer_batch(self, wavs: Sequence[np.ndarray], layer: int = 0, chunking: Optional[Chunking] = None):
        """The features of each waveform (no model: nothing to chunk; the fbank bounds its own memory)."""
        return [self.compute(wav) for wav in wavs]

    def layers(self, wav: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.compute(wav), dtype=np.float32))[None]


class FastHubertFeatures:
    """Layers of a fast_hubert checkpoint (see the module docstring)."""

    kind, first_layer = FAST_HUBERT, 0

    def __init__(self, model: torch.nn.Module, device: str = "cpu", checkpoint: Optional[str] = None):
        self.source = checkpoint
        self.extractor = FeatureExtractor(model, device, checkpoint=checkpoint)
        self.model = freeze(self.extractor.model)
        self.num_layers, self.dim = self.extractor.num_layers, self.extractor.dim
        self.frame_rate = self.extractor.frame_rate

    def num_frames(self, num_samples: int) -> int:
        return self.extractor.num_frames(num_fbank_frames(num_samples))

    def layer_batch(self, wavs: Sequence[np.ndarray], layer: int, chunking: Chunking = Chunking()) -> List[np.ndarray]:
        """Utterances that fit one piece run as one padded batch; longer ones piece by piece."""
        fbanks = [torch.from_numpy(compute_fbank(w)) for w in wavs]
        pieces = [list(chunking.windows(self.extractor.num_frames(f.shape[0]), self.frame_rate)) for f in fbanks]
        whole = [i for i, p in enumerate(pieces) if len(p) == 1]
        out: List[Optional[np.ndarray]] = [None] * len(wavs)
        if whole:
            for i, f in zip(whole, self.extractor.extract_batch([fbanks[i] for i in whole], [layer])):
                out[i] = f[layer].numpy()
        step = self.extractor.subsampling  # fbank frames per model frame
        for i in (i for i, p in enumerate(pieces) if len(p) > 1):
            parts = []
            for first, n, left, right in pieces[i]:
                piece = fbanks[i][(first - left) * step : (first + n + right) * step]
                parts.append(self.extractor.extract_batch([piece], [layer])[0][layer][left : left + n].numpy())
            out[i] = np.concatenate(parts)
        return out

    def layers(self, wav: np.ndarray) -> torch.Tensor:
        out = self.extractor.extract(wav, layers="all")
        return torch.stack([out[layer] for layer in range(self.num_layers + 1)])


class HubertFeatures:
    """Layers of a stock fairseq hubert checkpoint (see the module docstring). ``layer_batch`` gives
    layers 1..N, as fairseq's ``extract_features(output_layer=L)`` returns them."""

    kind, first_layer = HUBERT, 1

    def __init__(self, model: torch.nn.Module, cfg, device: str = "cpu", checkpoint: Optional[str] = None):
        self.source, self.device = checkpoint, torch.device(device)
        self.model = freeze(model.to(device))
        self.normalize = bool(getattr(cfg.task, "normalize", False))
        self.num_layers = len(model.encoder.layers)
        self.dim = int(model.encoder.embedding_dim)
        self.strides = hubert_conv_strides(model)
        self.stride = math.prod(s for _, s in self.strides)  # samples per frame
        self.frame_rate = SAMPLE_RATE / self.stride
        # samples one frame sees: the first kernel, plus (kernel - 1) x the stride before each later conv
        self.receptive_field = self.strides[0][0] + sum(
            (k - 1) * math.prod(s for _, s in self.strides[:i]) for i, (k, _) in enumerate(self.strides) if i
        )

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for kernel, stride in self.strides:
            n = (n - kernel) // stride + 1 if n >= kernel else 0
        return n

    def waveform(self, wav: np.ndarray) -> torch.Tensor:
        """(1, samples) model input, layer-normalised when the checkpoint's task says so."""
        x = torch.from_numpy(np.asarray(wav, dtype=np.float32)).view(1, -1).to(self.device)
        return torch.nn.functional.layer_norm(x, x.shape) if self.normalize else x

    @torch.inference_mode()
    def layer_batch(self, wavs: Sequence[np.ndarray], layer: int, chunking: Chunking = Chunking()) -> List[np.ndarray]:
        """One utterance at a time; a long one in waveform pieces that overlap by the receptive field, as
        whole frames (fairseq's 1,600,000-sample pieces drop the frame that straddles each cut). The first
        conv block's group norm then sees one piece: a piece's frames differ from the whole's everywhere."""
        out = []
        for wav in wavs:
            x = self.waveform(wav)  # normalised whole, as fairseq does before cutting
            total, parts = self.num_frames(x.shape[1]), []
            for first, n, left, right in chunking.windows(total, self.frame_rate):
                last = first + n + right  # the piece's frames end before this one
                end = x.shape[1] if last == total else (last - 1) * self.stride + self.receptive_field
                piece = x[:, (first - left) * self.stride : end]
                feats, _ = self.model.extract_features(source=piece, padding_mask=None, mask=False, output_layer=layer)
                parts.append(feats[0, left : left + n].float().cpu().numpy())
            out.append(np.concatenate(parts))
        return out

    @torch.inference_mode()
    def layers(self, wav: np.ndarray) -> torch.Tensor:
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
            self.model.extract_features(source=self.waveform(wav), padding_mask=None, mask=False, output_layer=None)
        finally:
            for h in hooks:
                h.remove()
        frames = captured[0].shape[0]  # blocks see x padded to the encoder's required_seq_len_multiple
        return torch.stack([captured[i][:frames].float().cpu() for i in range(self.num_layers + 1)])


def hubert_conv_strides(model) -> List[tuple]:
    """(kernel, stride) of each conv of a stock HuBERT waveform feature extractor."""
    return [(block[0].kernel_size[0], block[0].stride[0]) for block in model.feature_extractor.conv_layers]


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_model_features(checkpoint: str, device: str = "cpu"):
    """The layers of a fast_hubert / hubert_ctc / stock hubert checkpoint; ValueError for another
    model (from :func:`~.family.model_family`)."""
    model, cfg, _ = load_checkpoint(checkpoint, device="cpu")
    if model_family(model) == FAST_HUBERT:
        return FastHubertFeatures(model, device, str(checkpoint))
    return HubertFeatures(model, cfg, device, str(checkpoint))
