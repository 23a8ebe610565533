"""Strided Conv1d + GLU front-end that takes 100 Hz fbank to the Transformer's frame rate.

Built on fairseq's speech_to_text ``Conv1dSubsampler`` (same parameters and names), with a
length-aware forward: frames past each utterance's end are zeroed between layers, so a padded
utterance gives exactly the outputs it gives alone.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.models.speech_to_text.modules.convolution import Conv1dSubsampler

from ..utils.masks import lengths_to_padding_mask, subsampled_lengths


class FbankSubsampler(Conv1dSubsampler):
    """(batch, frames, in_dim) fbank -> (batch, ceil(frames / 2^n), out_dim).

    Each of the n layers: Conv1d(kernel k, stride 2, padding k//2) then GLU (halves channels).
    One layer gives 20 ms frames, two 40 ms (Fast-HuBERT), three 80 ms.
    """

    def __init__(self, in_dim: int, mid_channels: int, out_dim: int, kernel_sizes: List[int]):
        for k in kernel_sizes:
            if k % 2 == 0:
                raise ValueError(f"conv_kernel_sizes must be odd (got {k}): even kernels shift the frame grid")
        super().__init__(in_dim, mid_channels, out_dim, kernel_sizes)

    @property
    def downsample_factor(self) -> int:
        return 2**self.n_layers

    def forward(
        self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """feats: (B, T, C); lengths: (B,) valid frames or None (no padding).
        Returns (B, T', out_dim) and (B,) output lengths (None if lengths is None)."""
        x = feats.transpose(1, 2)  # B x C x T
        for conv in self.conv_layers:
            x = F.glu(conv(x), dim=1)
            if lengths is not None:
                lengths = subsampled_lengths(lengths, 1)
                x = x.masked_fill(lengths_to_padding_mask(lengths, x.size(2))[:, None, :], 0.0)
        return x.transpose(1, 2), lengths
