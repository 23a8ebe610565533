"""Layer features of a Fast-HuBERT checkpoint (pretrained or fine-tuned), as a Python API.

Layer convention (the same for every checkpoint):

- layer 0: the Transformer's input, i.e. the subsampler output after LayerNorm and the
  projection to ``encoder_embed_dim`` (before the positional convolution);
- layer L (1..N): the output of Transformer block L, exactly what
  ``model.extract_features(source, padding_mask, mask=False, output_layer=L)`` returns.

Frames come at 100 Hz / subsampling factor: 25 Hz (one every 40 ms) for the default model,
50 Hz / 12.5 Hz for the 20 / 80 ms variants. An utterance of T fbank frames (16 kHz audio:
T = 1 + (samples - 400) // 160) gives ceil(T / factor) frames, padded or not.

    >>> fx = FeatureExtractor.from_checkpoint("checkpoint_best.pt", device="cpu")
    >>> feats = fx.extract("utt.flac", layers=[6])      # {6: (frames, 768) tensor}
    >>> everything = fx.extract(waveform, layers="all")  # {0: ..., 1: ..., ..., N: ...}
"""

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..data.batching import pad_features
from ..features.audio import read_audio
from ..features.kaldi_fbank import FBANK_FRAME_RATE, SAMPLE_RATE, check_at_least_one_frame, compute_fbank
from ..utils.masks import subsampled_lengths
from .checkpoints import load_checkpoint
from .family import fast_hubert_of

Layers = Union[int, str, Iterable[int]]
Audio = Union[str, Path, np.ndarray, torch.Tensor]


class FeatureExtractor:
    """Runs the fast_hubert encoder of a checkpoint in eval mode and returns chosen layers."""

    def __init__(
        self, model: torch.nn.Module, device: Union[str, torch.device] = "cpu", checkpoint: Optional[str] = None
    ):
        self.model = fast_hubert_of(model).to(device).eval()
        self.device = torch.device(device)
        self.checkpoint = checkpoint

    @classmethod
    def from_checkpoint(cls, path: str, device: Union[str, torch.device] = "cpu") -> "FeatureExtractor":
        """A ``fast_hubert`` pretraining checkpoint or a ``hubert_ctc`` fine-tuned one."""
        model, _, _ = load_checkpoint(path, device="cpu")
        return cls(model, device, checkpoint=str(path))

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.layers)

    @property
    def dim(self) -> int:
        return int(self.model.cfg.encoder_embed_dim)

    @property
    def subsampling(self) -> int:
        return self.model.subsampler.downsample_factor

    @property
    def frame_rate(self) -> float:
        """Output frames per second (25.0 for the 40 ms model)."""
        return FBANK_FRAME_RATE / self.subsampling

    def num_frames(self, fbank_frames: int) -> int:
        return int(subsampled_lengths(torch.tensor([fbank_frames]), self.model.subsampler.n_layers)[0])

    def resolve_layers(self, layers: Layers) -> List[int]:
        if isinstance(layers, str):
            if layers != "all":
                raise ValueError(f"layers must be 'all', an int or a list of ints, got {layers!r}")
            return list(range(self.num_layers + 1))
        wanted = [layers] if isinstance(layers, int) else list(layers)
        bad = [layer for layer in wanted if not 0 <= int(layer) <= self.num_layers]
        if bad or not wanted:
            raise ValueError(
                f"layers {bad or wanted} outside 0..{self.num_layers} "
                f"(0: Transformer input, 1..{self.num_layers}: block outputs)"
            )
        return sorted(set(int(layer) for layer in wanted))

    @torch.inference_mode()
    def forward_layers(
        self, source: torch.Tensor, padding_mask: Optional[torch.Tensor], layers: Layers
    ) -> Tuple[Dict[int, torch.Tensor], Optional[torch.Tensor]]:
        """source: (B, T, 80) raw fbank; padding_mask: (B, T) bool (True on padding) or None.

        Returns {layer: (B, T', dim)} and the output padding mask (B, T') (None: nothing padded).
        Runs the Transformer only up to the highest layer asked for.
        """
        wanted = self.resolve_layers(layers)
        source = source.to(self.device)
        padding_mask = None if padding_mask is None else padding_mask.to(self.device)
        return self.model.layer_outputs(source, padding_mask, wanted)

    def fbank(self, audio: Audio) -> torch.Tensor:
        """(T, 80) raw fbank of an audio file or a 16 kHz mono waveform in [-1, 1]."""
        if isinstance(audio, (str, Path)):
            wav = read_audio(audio, SAMPLE_RATE)
        elif isinstance(audio, torch.Tensor):
            wav = audio.detach().float().cpu().numpy()
        else:
            wav = np.asarray(audio, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"expected a mono waveform (samples,), got shape {wav.shape}")
        check_at_least_one_frame(len(wav))
        return torch.from_numpy(compute_fbank(wav, SAMPLE_RATE))

    def extract(self, audio: Audio, layers: Layers = "all") -> Dict[int, torch.Tensor]:
        """Features of one utterance: {layer: (frames, dim) float tensor on the CPU}."""
        out, _ = self.forward_layers(self.fbank(audio)[None], None, layers)
        return {layer: x[0].float().cpu() for layer, x in out.items()}

    def extract_batch(self, fbanks: Sequence[torch.Tensor], layers: Layers = "all") -> List[Dict[int, torch.Tensor]]:
        """Features of several utterances ((T_i, 80) raw fbank each), batched with padding;
        each result is trimmed to its own ceil(T_i / factor) frames."""
        source, padding_mask = pad_features(fbanks)
        out, _ = self.forward_layers(source, padding_mask if len(fbanks) > 1 else None, layers)
        frames = [self.num_frames(f.shape[0]) for f in fbanks]
        return [{layer: x[b, : frames[b]].float().cpu() for layer, x in out.items()} for b in range(len(fbanks))]
