"""SpecAugment frequency and time masking on batched features, as tensors on any device."""

from typing import Optional

import torch


def _band_mask(batch: int, num_masks: int, max_width: int, limit: torch.Tensor, size: int, device) -> torch.Tensor:
    """(batch, size) bool: ``num_masks`` bands of width in [0, max_width) within [0, limit) per row."""
    if num_masks <= 0 or max_width <= 1:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    limit = limit.to(device).view(batch, 1).float()
    width = (torch.rand(batch, num_masks, device=device) * max_width).long()
    width = torch.minimum(width, limit.long())
    start = (torch.rand(batch, num_masks, device=device) * (limit - width).clamp(min=0)).long()
    pos = torch.arange(size, device=device).view(1, 1, size)
    bands = (pos >= start.unsqueeze(-1)) & (pos < (start + width).unsqueeze(-1))
    return bands.any(dim=1)


def spec_augment(
    feats: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    freq_masks: int = 2,
    freq_width: int = 30,
    time_masks: int = 2,
    time_width: int = 40,
    value: float = 0.0,
) -> torch.Tensor:
    """feats: (batch, frames, bins); lengths: (batch,) valid frames (None: all).

    Each utterance gets ``freq_masks`` bands of < ``freq_width`` bins and ``time_masks`` spans of
    < ``time_width`` frames inside its own length, set to ``value`` (0 = the CMVN mean).
    Returns a new tensor; the input is not modified.
    """
    batch, frames, bins = feats.shape
    device = feats.device
    if lengths is None:
        lengths = torch.full((batch,), frames, device=device)
    fmask = _band_mask(batch, freq_masks, freq_width, torch.full((batch,), bins, device=device), bins, device)
    tmask = _band_mask(batch, time_masks, time_width, lengths, frames, device)
    mask = fmask[:, None, :] | tmask[:, :, None]
    return feats.masked_fill(mask, value)
