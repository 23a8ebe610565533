"""Frame lengths and padding masks: the helpers the dataset batching and the model share."""

import torch


def lengths_to_padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def subsampled_lengths(lengths: torch.Tensor, num_layers: int) -> torch.Tensor:
    """Output lengths of ``num_layers`` stride-2 convs with padding k//2 (odd k): ceil(T/2) each."""
    out = lengths
    for _ in range(num_layers):
        out = torch.div(out + 1, 2, rounding_mode="floor")
    return out
