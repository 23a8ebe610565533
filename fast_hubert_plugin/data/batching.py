"""Batching whole utterances: length-sorted batches under a padded-size budget, zero padding with
a padding mask, and fbank batches of every row of a manifest (decoding, feature extraction).

Unlike the training dataset nothing is cropped or filtered by size: each utterance is seen
whole, once. Batches group utterances of similar length (longest first) so that
``batch size x longest utterance <= max_tokens`` fbank frames; an utterance longer than
``max_tokens`` gets a batch of its own.
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ..features.kaldi_fbank import SAMPLE_RATE, compute_fbank, num_fbank_frames
from ..utils.masks import lengths_to_padding_mask
from .manifest import AudioManifest


def length_batches(frames: Sequence[int], max_tokens: int) -> List[List[int]]:
    """Indices grouped longest first so that len(batch) x longest <= max_tokens (padded frames)."""
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive (fbank frames per batch), got {max_tokens}")
    order = sorted(range(len(frames)), key=lambda i: (-frames[i], i))
    batches, current = [], []
    for i in order:
        longest = frames[current[0]] if current else frames[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_features(feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(T_i, F) tensors -> source (B, max T_i, F) zero-padded, padding_mask (B, max T_i) bool, True on padding."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    source = feats[0].new_zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for b, f in enumerate(feats):
        source[b, : f.shape[0]] = f
    padding_mask = lengths_to_padding_mask(lengths, source.shape[1])
    return source, padding_mask


class ManifestFbank(Dataset):
    """Item ``k``: (k, raw log-Mel fbank of manifest row ``rows[k]`` as a (frames, 80) float tensor).
    ``rows`` defaults to every row."""

    def __init__(self, manifest: AudioManifest, rows: Optional[Sequence[int]] = None, sample_rate: int = SAMPLE_RATE):
        self.manifest = manifest
        self.rows = list(range(len(manifest))) if rows is None else list(rows)
        self.sample_rate = sample_rate
        self.frames = [num_fbank_frames(manifest.num_samples[i]) for i in self.rows]
        manifest.check_at_least_one_frame(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> Tuple[int, torch.Tensor]:
        wav = self.manifest.read_audio(self.rows[k], self.sample_rate)
        return k, torch.from_numpy(compute_fbank(wav, self.sample_rate))


def collate_fbank(items: List[Tuple[int, torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> ids (B,), source (B, T, F) zero-padded, padding_mask (B, T) bool, True on padding."""
    ids = torch.tensor([i for i, _ in items], dtype=torch.long)
    source, padding_mask = pad_features([f for _, f in items])
    return ids, source, padding_mask


def fbank_batches(
    manifest: AudioManifest, max_tokens: int, num_workers: int = 0, rows: Optional[Sequence[int]] = None
) -> DataLoader:
    """DataLoader of (ids, source, padding_mask) over ``rows`` of ``manifest`` (default: all);
    ids are positions in ``rows``."""
    dataset = ManifestFbank(manifest, rows)
    return DataLoader(
        dataset,
        batch_sampler=length_batches(dataset.frames, max_tokens),
        collate_fn=collate_fbank,
        num_workers=num_workers,
    )
