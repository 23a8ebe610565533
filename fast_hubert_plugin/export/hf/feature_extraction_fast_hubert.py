"""Feature extractor of an exported Fast-HuBERT model: 16 kHz waveforms -> normalised Kaldi fbank.

The fbank of training (``kaldi_fbank.py``, computed here in float64), CPU or GPU: 25 ms povey window,
10 ms shift, DC removal, pre-emphasis 0.97, no dither, snip_edges, 512-point power spectrum,
80 Kaldi mel bins over 20 Hz..Nyquist, log with a float-epsilon floor, the waveform scaled to
the int16 range. A waveform of N samples gives 1 + (N - 400) // 160 frames. Then the global CMVN
of the training set, (x - mean) * (1 / std), and padding as in training: shorter utterances are
padded with zero frames and ``attention_mask`` is 0 there.
"""

from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from transformers import BatchFeature, SequenceFeatureExtractor

# The training fbank, copied into the folder by the exporter (inside the plugin: features/kaldi_fbank.py).
from .kaldi_fbank import SAMPLE_RATE, check_at_least_one_frame, kaldi_fbank, num_fbank_frames


class FastHubertFeatureExtractor(SequenceFeatureExtractor):
    r"""Waveforms (16 kHz, mono, float in [-1, 1]) -> ``input_features`` (B, T, 80) and ``attention_mask`` (B, T).

    cmvn_mean, cmvn_inv_std (`list[float]`): the training set's per-bin fbank mean and 1 / std, copied
        from the checkpoint (the values the model was trained with).
    """

    model_input_names = ["input_features", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 80,
        sampling_rate: int = SAMPLE_RATE,
        padding_value: float = 0.0,
        cmvn_mean: Optional[Sequence[float]] = None,
        cmvn_inv_std: Optional[Sequence[float]] = None,
        return_attention_mask: bool = True,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if sampling_rate != SAMPLE_RATE:
            raise ValueError(f"Fast-HuBERT fbank is defined at {SAMPLE_RATE} Hz, got sampling_rate={sampling_rate}")
        self.cmvn_mean = [float(v) for v in cmvn_mean] if cmvn_mean is not None else [0.0] * feature_size
        self.cmvn_inv_std = [float(v) for v in cmvn_inv_std] if cmvn_inv_std is not None else [1.0] * feature_size
        if len(self.cmvn_mean) != feature_size or len(self.cmvn_inv_std) != feature_size:
            raise ValueError(f"cmvn_mean and cmvn_inv_std need {feature_size} values each")

    def fbank(self, waveforms: Sequence[torch.Tensor], device: Union[str, torch.device] = "cpu"):
        """Raw log-Mel fbank (no CMVN) of each waveform, batched: (B, T, bins) float32 and (B,) frame counts."""
        for w in waveforms:
            check_at_least_one_frame(len(w))
        lengths = torch.tensor([len(w) for w in waveforms])
        frames = num_fbank_frames(lengths)
        batch = torch.zeros(len(waveforms), int(lengths.max()), dtype=torch.float64, device=device)
        for b, w in enumerate(waveforms):
            batch[b, : len(w)] = w.to(device=device, dtype=torch.float64)
        feats = kaldi_fbank(batch, self.feature_size, dtype=torch.float64)
        feats = feats[:, : int(frames.max())].to(torch.float32)
        return feats, frames.to(device)

    def __call__(
        self,
        raw_speech: Union[np.ndarray, torch.Tensor, List[float], List[np.ndarray], List[torch.Tensor]],
        sampling_rate: Optional[int] = None,
        padding: Union[bool, str] = True,
        return_tensors: Optional[str] = None,
        return_attention_mask: Optional[bool] = None,
        device: Union[str, torch.device] = "cpu",
        **kwargs,
    ) -> BatchFeature:
        """One waveform or a list of them. Always pads to the longest (fbank frames are padded, as in
        training); ``device`` may be "cuda". Returns ``input_features`` (B, T, 80) float32 and
        ``attention_mask`` (B, T) int (1 on real frames)."""
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(
                f"expected {self.sampling_rate} Hz audio, got sampling_rate={sampling_rate}: resample first"
            )
        if isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 1:
            batch = [raw_speech]
        elif isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 2:
            batch = list(raw_speech)
        elif isinstance(raw_speech, (list, tuple)) and raw_speech and np.isscalar(raw_speech[0]):
            batch = [np.asarray(raw_speech, dtype=np.float32)]
        else:
            batch = list(raw_speech)
        waves = []
        for w in batch:
            w = torch.as_tensor(np.asarray(w, dtype=np.float32)) if not isinstance(w, torch.Tensor) else w.detach()
            if w.ndim != 1:
                raise ValueError(f"expected mono waveforms (samples,), got shape {tuple(w.shape)}")
            waves.append(w)
        feats, frames = self.fbank(waves, device)
        mean = torch.tensor(self.cmvn_mean, dtype=torch.float32, device=feats.device)
        inv_std = torch.tensor(self.cmvn_inv_std, dtype=torch.float32, device=feats.device)
        feats = (feats - mean) * inv_std
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < frames[:, None]
        feats = feats.masked_fill(~mask[..., None], self.padding_value)
        data = {"input_features": feats}
        if return_attention_mask if return_attention_mask is not None else self.return_attention_mask:
            data["attention_mask"] = mask.to(torch.int32)
        if return_tensors in (None, "np"):
            data = {k: v.cpu().numpy() for k, v in data.items()}
            return BatchFeature(data, tensor_type=return_tensors)
        if return_tensors != "pt":
            raise ValueError(f"return_tensors={return_tensors!r}: use 'pt' or 'np'")
        return BatchFeature(data)
