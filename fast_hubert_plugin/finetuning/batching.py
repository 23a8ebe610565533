"""Fbank batches of every row of a fairseq manifest, for decoding and feature extraction.

Unlike the training dataset nothing is cropped or filtered by size: each utterance is seen
whole, once. Batches group utterances of similar length (longest first) so that
``batch size x longest utterance <= max_tokens`` fbank frames; an utterance longer than
``max_tokens`` gets a batch of its own.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.batching import length_batches  # noqa: F401  (re-exported)
from ..data.manifest import AudioManifest
from ..features.audio import read_audio
from ..features.fbank import SAMPLE_RATE, compute_fbank, num_fbank_frames
from ..utils.errors import DataError


class ManifestFbank(Dataset):
    """Item ``k``: (k, raw log-Mel fbank of manifest row ``rows[k]`` as a (frames, 80) float tensor).
    ``rows`` defaults to every row."""

    def __init__(self, manifest: AudioManifest, rows: Optional[Sequence[int]] = None, sample_rate: int = SAMPLE_RATE):
        self.manifest = manifest
        self.rows = list(range(len(manifest))) if rows is None else list(rows)
        self.sample_rate = sample_rate
        self.frames = [num_fbank_frames(manifest.num_samples[i]) for i in self.rows]
        for i, f in zip(self.rows, self.frames):
            if f == 0:
                raise DataError(manifest.path, "utterance shorter than one 25 ms fbank frame",
                                "remove it from the manifest", line=manifest.line_of(i))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> Tuple[int, torch.Tensor]:
        i = self.rows[k]
        wav = read_audio(self.manifest.audio_path(i), self.sample_rate, where=self.manifest.where(i))
        if len(wav) != self.manifest.num_samples[i]:
            raise DataError(self.manifest.audio_path(i),
                            f"{len(wav)} samples but {self.manifest.where(i)} says {self.manifest.num_samples[i]}",
                            "regenerate the manifest from the audio")
        return k, torch.from_numpy(compute_fbank(wav, self.sample_rate))


def collate_fbank(items: List[Tuple[int, torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> ids (B,), source (B, T, F) zero-padded, padding_mask (B, T) bool, True on padding."""
    ids = torch.tensor([i for i, _ in items], dtype=torch.long)
    lengths = torch.tensor([f.shape[0] for _, f in items], dtype=torch.long)
    source = items[0][1].new_zeros(len(items), int(lengths.max()), items[0][1].shape[1])
    for b, (_, f) in enumerate(items):
        source[b, : f.shape[0]] = f
    padding_mask = torch.arange(source.shape[1])[None, :] >= lengths[:, None]
    return ids, source, padding_mask


def fbank_batches(manifest: AudioManifest, max_tokens: int, num_workers: int = 0,
                  rows: Optional[Sequence[int]] = None) -> DataLoader:
    """DataLoader of (ids, source, padding_mask) over ``rows`` of ``manifest`` (default: all);
    ids are positions in ``rows``."""
    dataset = ManifestFbank(manifest, rows)
    return DataLoader(dataset, batch_sampler=length_batches(dataset.frames, max_tokens),
                      collate_fn=collate_fbank, num_workers=num_workers)
