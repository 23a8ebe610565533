"""HuBERT's span masks, drawn on the host: in the loader workers for training batches (the dataset's
collater), in the model for batches that come without them (probes, direct calls, other tasks).

One draw, fairseq's ``compute_mask_indices`` (static spans of ``mask_length`` frames, overlap allowed,
every row then thinned at random to the batch's smallest masked count), keyed per utterance: row i's
generator is seeded with ``hash((MASK_RNG_STREAM, 0, key_i)) % 10**6``, so a batch is masked the same
way in any process, worker or restart. Because every row ends with the same masked count, the number
of masked frames of a batch is known on the host, and the model and criterion can pick the masked
frames with index tensors built here instead of a data-dependent ``hidden[mask]`` on the device.

What the draw needs of the model (``SpanMasking``, built by ``FastHubertModel.span_masking``; the task
hands it to the datasets): its frame geometry (T' = ceil(T / 2^n) model frames of T fbank frames for n
stride-2 convs; every ``label_stride``-th label; frames and labels trimmed to the shorter, as
``FastHubertModel.forward_targets``) and its masking settings.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from fairseq.data.data_utils import compute_mask_indices

from ..utils.masks import lengths_to_padding_mask, subsampled_lengths

# Each utterance's mask is drawn from hash((MASK_RNG_STREAM, 0, key)); its crop from the key itself.
MASK_RNG_STREAM = 7
MIN_MASKS = 2  # spans per utterance at the least (fairseq's HubertModel)


def fewest_maskable_frames(mask_prob: float, mask_length: int, min_masks: int = MIN_MASKS) -> int:
    """The fewest model frames an utterance needs so that fairseq's span masking (static spans, overlap
    allowed) never fails: more span starts to choose from than spans, at most ``floor(p T / L) + 1``
    of them (at least ``min_masks``); shorter ones can end fully masked, which fairseq refuses."""
    frames = mask_length + 1
    while frames - mask_length <= max(min_masks, int(mask_prob * frames / mask_length) + 1):
        frames += 1
    return frames


def scored_frames(time_mask: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat row-major indices into (B * T') of the masked and of the unmasked frames that are not
    padding: (M,) and (U,) int64, in the order ``hidden[mask]`` gives. Host tensors in, host tensors out."""
    valid = torch.ones_like(time_mask) if padding_mask is None else ~padding_mask
    masked = (time_mask & valid).reshape(-1).nonzero().squeeze(1)
    unmasked = (~time_mask & valid).reshape(-1).nonzero().squeeze(1)
    return masked, unmasked


@dataclass(frozen=True)
class SpanMasking:
    """A model's frame geometry and span-masking settings: what drawing its masks needs."""

    subsampling_convs: int  # stride-2 convs of the fbank subsampler: T' = ceil(T / 2^n)
    label_stride: int  # labels per model frame: every label_stride-th label is used
    mask_prob: float
    mask_length: int
    mask_selection: str = "static"
    mask_other: float = 0.0
    min_masks: int = MIN_MASKS
    no_overlap: bool = False
    min_space: int = 0

    @property
    def downsample_factor(self) -> int:
        """fbank frames per model frame."""
        return 2**self.subsampling_convs

    def model_frames(self, fbank_frames: Sequence[int]) -> torch.Tensor:
        """(B,) model frames of utterances of ``fbank_frames`` fbank frames (the subsampler's lengths)."""
        return subsampled_lengths(torch.as_tensor(fbank_frames, dtype=torch.long), self.subsampling_convs)

    def draw(
        self, shape: Tuple[int, int], padding_mask: Optional[torch.Tensor], rng_keys: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """(B, T') bool time mask of ``shape`` (B, T'), True on masked frames; ``padding_mask`` (B, T') bool
        on the host, True on padding, or None; ``rng_keys`` (B,) int64 on the host, or None: each row then
        comes from a fresh unseeded generator, as fairseq's HubertModel draws. An utterance shorter than
        ``fewest_maskable_frames`` can end fully masked, which fairseq refuses: the error says which
        task.min_sample_size avoids it."""
        batch, num_frames = shape
        if self.mask_prob <= 0:
            return torch.zeros(batch, num_frames, dtype=torch.bool)
        keyed = {} if rng_keys is None else {"seed": MASK_RNG_STREAM, "epoch": 0, "indices": rng_keys}
        try:
            mask = compute_mask_indices(
                (batch, num_frames),
                padding_mask,
                self.mask_prob,
                self.mask_length,
                self.mask_selection,
                self.mask_other,
                min_masks=self.min_masks,
                no_overlap=self.no_overlap,
                min_space=self.min_space,
                **keyed,
            )
        except ValueError as e:  # e.g. "the entire sequence is masked": an utterance too short
            shortest = num_frames if padding_mask is None else int((~padding_mask).sum(dim=1).min())
            need = fewest_maskable_frames(self.mask_prob, self.mask_length, self.min_masks)
            if shortest >= need:
                raise
            raise ValueError(
                f"an utterance of {shortest} model frames is too short for masking spans of "
                f"model.mask_length={self.mask_length} with model.mask_prob={self.mask_prob:g} (fairseq's "
                f"compute_mask_indices: {e}). Keep utterances of at least {need} model frames: set "
                f"task.min_sample_size to at least {need * self.downsample_factor} fbank frames"
            ) from None
        return torch.from_numpy(mask)

    def batch_masks(
        self, fbank_frames: Sequence[int], size: int, label_lengths: Sequence[int], rng_keys: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """The mask fields of a batch's ``net_input``, for a batch of ``size`` fbank frames whose rows hold
        ``fbank_frames`` frames of audio each (the rest padding), with label sets of ``label_lengths``
        (padded) labels per row, masked from ``rng_keys``:

        - ``time_mask`` (B, T'') bool, T'' = min(ceil(size / 2^n), ceil(L / label_stride) for each L):
          the model frames after ``forward_targets``, True where the Transformer input is ``mask_emb``;
        - ``masked_frames`` (M,) and ``unmasked_frames`` (U,) int64: ``scored_frames`` of that mask."""
        num_frames = int(self.model_frames([size])[0])
        num_frames = min([num_frames] + [math.ceil(n / self.label_stride) for n in label_lengths])
        valid = self.model_frames(fbank_frames).clamp(max=num_frames)
        padding_mask = lengths_to_padding_mask(valid, num_frames) if bool((valid < num_frames).any()) else None
        time_mask = self.draw((len(fbank_frames), num_frames), padding_mask, rng_keys)
        masked, unmasked = scored_frames(time_mask, padding_mask)
        return {"time_mask": time_mask, "masked_frames": masked, "unmasked_frames": unmasked}
