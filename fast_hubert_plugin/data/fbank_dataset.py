"""HuBERT dataset whose sizes, crops and padding are counted in 80-dim fbank frames.

Batches hold 16 kHz waveforms (B, N) cut on the fbank frame grid, and the model computes the
fbank on its own device (or, with a precomputed store, fbank frames (B, T, 80)). Reuses fairseq's
``HubertDataset`` batching (label collation, ordering) with sizes counted in fbank frames (100 per
second): ``self.sample_rate`` is that frame rate, so fairseq's label arithmetic (labels per
frame = label_rate / 100) holds unchanged. Everything is validated
when the split is loaded: manifest rows, audio files, label line counts and lengths, units.

Randomness is keyed, not global: each utterance of a batch gets a key drawn from
(seed, epoch, utterance index). Its random crop comes from that key, and the key travels in
``net_input["rng_keys"]`` so that the model draws its mask from it too. A run restarted from a
checkpoint, or split over several processes, therefore sees the same crops and masks.
"""

import logging
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
from fairseq.data.audio.hubert_dataset import HubertDataset, load_label_offset
from fairseq.data.dictionary import Dictionary

from ..features.kaldi_fbank import FBANK_FRAME_RATE, FRAME_SHIFT_SAMPLES, num_fbank_frames, num_fbank_samples
from ..utils.errors import DataError
from .feature_store import FbankStore
from .labels import check_label_lengths, check_units_in_dictionary, read_label_lines
from .manifest import read_manifest

logger = logging.getLogger(__name__)

# Crop starts are multiples of 8 fbank frames: whole 20/40/80 ms model frames and whole
# 25/50/100 Hz label frames, so labels stay aligned after random cropping.
CROP_MULTIPLE = 8


class LabelEncoderStrict:
    """Units -> dictionary ids (int32, as ``Dictionary.encode_line``); unknown units were rejected when
    the file was loaded. Integer units (k-means labels) go through a lookup table: encode_line looks
    each of a 15 s utterance's 750 units up in Python, a third of a loader worker's time."""

    def __init__(self, dictionary: Dictionary):
        self.dictionary = dictionary
        symbols = dictionary.symbols[dictionary.nspecial :]
        self.table = None
        if symbols and all(s.isdigit() and str(int(s)) == s for s in symbols):
            self.table = np.full(max(int(s) for s in symbols) + 1, dictionary.unk(), dtype=np.int32)
            for index, symbol in enumerate(symbols, start=dictionary.nspecial):
                self.table[int(symbol)] = index

    def __call__(self, line: str) -> torch.Tensor:
        if self.table is None:
            return self.dictionary.encode_line(line, append_eos=False, add_if_not_exist=False)
        return torch.from_numpy(self.table[np.array(line.split(), dtype=np.int64)])


class FbankHubertDataset(HubertDataset):
    def __init__(
        self,
        manifest_path: str,
        label_paths: List[str],
        label_rates: Sequence[float],
        dictionaries: List[Dictionary],
        dict_paths: List[str],
        audio_sample_rate: int = 16000,
        max_keep_size: Optional[int] = None,
        min_keep_size: Optional[int] = None,
        max_sample_size: Optional[int] = None,
        shuffle: bool = True,
        pad_audio: bool = False,
        random_crop: bool = True,
        single_target: bool = False,
        feature_store: Optional[FbankStore] = None,
        label_length_tolerance_s: float = 0.1,
        check_audio_files: bool = True,
    ):
        # fairseq's HubertDataset.__init__ only warns about mismatched labels: validate here instead.
        manifest = read_manifest(manifest_path)
        if check_audio_files and feature_store is None:
            manifest.check_files_exist()
        all_frames = [num_fbank_frames(n) for n in manifest.num_samples]
        if feature_store is not None:
            feature_store.check_matches(all_frames, manifest_path)
        manifest.check_at_least_one_frame()
        keep = [
            i
            for i, f in enumerate(all_frames)
            if (min_keep_size is None or f >= min_keep_size) and (max_keep_size is None or f <= max_keep_size)
        ]
        if not keep:
            raise DataError(
                manifest_path,
                f"no utterance within min/max size ({min_keep_size}, {max_keep_size}) fbank frames",
                "lower task.min_sample_size or raise task.max_keep_size (both in fbank frames, 100 per second)",
            )
        logger.info(
            f"{manifest_path}: kept {len(keep)} of {len(manifest)} utterances "
            f"({sum(all_frames[i] for i in keep) / FBANK_FRAME_RATE / 3600:.2f} h)"
        )

        self.manifest = manifest
        self.rows = keep
        self.audio_sample_rate = audio_sample_rate
        self.feature_store = feature_store
        self.sizes = np.array([all_frames[i] for i in keep], dtype=np.int64)
        self.sample_rate = FBANK_FRAME_RATE
        self.shuffle = shuffle
        self.random_crop = random_crop
        self.num_labels = len(label_paths)
        self.pad_list = [d.pad() for d in dictionaries]
        self.eos_list = [d.eos() for d in dictionaries]
        self.label_processors = [LabelEncoderStrict(d) for d in dictionaries]
        self.single_target = single_target
        self.label_rates = [float(r) for r in label_rates]
        # Labels are read from disk by byte offset (fairseq's store_labels=False): data-loader
        # workers do not each hold a copy of every label file.
        self.store_labels = False
        self.label_paths = list(label_paths)
        self.label_offsets_list = []
        for path, rate, d, dpath in zip(label_paths, self.label_rates, dictionaries, dict_paths):
            lines = read_label_lines(path, len(manifest), manifest_path)
            check_units_in_dictionary(lines, d, path, dpath)
            if rate > 0:
                check_label_lengths(
                    lines,
                    manifest.num_samples,
                    rate,
                    path,
                    manifest_path,
                    tolerance_s=label_length_tolerance_s,
                    sample_rate=audio_sample_rate,
                )
            self.label_offsets_list.append(load_label_offset(path, keep, len(manifest)))
        self.max_sample_size = max_sample_size if max_sample_size is not None else sys.maxsize
        self.pad_audio = pad_audio
        self.normalize = False
        self.seed = 1
        self.epoch = 1

    def set_seed(self, seed: int) -> None:
        """The run's seed (``common.seed``), which keys crops and masks with the epoch."""
        self.seed = int(seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng_key(self, index: int) -> int:
        """A 63-bit key for utterance ``index`` in this epoch: the same in every process and after a restart."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2, dtype=np.uint32)
        return (int(state[0]) << 31) ^ int(state[1])

    def collater(self, samples):
        samples = [s for s in samples if s["source"] is not None]
        if not samples:
            return {}
        keys = [self.rng_key(s["id"]) for s in samples]
        frames = [self.num_frames(s["source"]) for s in samples]
        size = min(max(frames) if self.pad_audio else min(frames), self.max_sample_size)
        source, padding_mask, starts = self.collater_audio([s["source"] for s in samples], size, keys)
        targets, lengths, ntokens = self.collater_label(
            [[s["label_list"][i] for s in samples] for i in range(self.num_labels)], size, starts
        )
        batch = {
            "id": torch.LongTensor([s["id"] for s in samples]),
            # No padding mask when nothing is padded: the model then needs no mask and no device sync.
            "net_input": {
                "source": source,
                "padding_mask": padding_mask if padding_mask.any() else None,
                "rng_keys": torch.tensor(keys, dtype=torch.long),
            },
        }
        if self.single_target:
            batch.update(target_lengths=lengths[0], ntokens=ntokens[0], target=targets[0])
        else:
            batch.update(target_lengths_list=lengths, ntokens_list=ntokens, target_list=targets)
        return batch

    @staticmethod
    def num_frames(source: torch.Tensor) -> int:
        """fbank frames of an item: a waveform (N,) or precomputed fbank (T, 80)."""
        return len(source) if source.dim() == 2 else num_fbank_frames(len(source))

    def get_audio(self, index: int) -> torch.Tensor:
        """Waveform (N,) float32 of kept utterance ``index``, or its precomputed fbank (frames, 80) when
        the dataset reads a store; the fbank of waveforms and the CMVN are computed in the model."""
        row = self.rows[index]
        if self.feature_store is not None:
            feats = self.feature_store[row]
            where = f"{self.feature_store.path}, row {row}"
        else:
            where = self.manifest.where(row)
            feats = self.manifest.read_audio(row, self.audio_sample_rate)
        if not np.isfinite(feats).all():
            kind = "fbank" if self.feature_store is not None else "audio"
            raise DataError(
                self.manifest.audio_path(row),
                f"{kind} has NaN/inf values ({where})",
                "check the audio for corrupt samples and drop or re-encode it",
            )
        return torch.from_numpy(feats)

    def crop_start(self, size: int, target_size: int, key: int) -> int:
        """First frame of a window of ``target_size`` of ``size`` frames: a multiple of CROP_MULTIPLE
        drawn from ``key`` (0 without random_crop)."""
        diff = size - target_size
        if diff <= 0 or not self.random_crop:
            return 0
        choices = diff // CROP_MULTIPLE + 1
        return int(np.random.default_rng(key).integers(choices)) * CROP_MULTIPLE

    def collater_audio(self, audios: List[torch.Tensor], size: int, keys: Sequence[int]):
        """``size`` fbank frames of each item, cropped or zero-padded: waveforms (B, N) with N the samples
        of ``size`` frames, or fbank (B, size, 80); the padding mask (B, N) or (B, size); crop starts
        in frames."""
        waveform = audios[0].dim() == 1
        length = num_fbank_samples(size) if waveform else size
        collated = audios[0].new_zeros((len(audios), length) + tuple(audios[0].shape[1:]))
        padding_mask = torch.zeros(len(audios), length, dtype=torch.bool)
        starts = [0] * len(audios)
        for i, (item, key) in enumerate(zip(audios, keys)):
            frames = self.num_frames(item)
            if frames < size:
                assert self.pad_audio
                collated[i, : len(item)] = item
                padding_mask[i, len(item) :] = True
                continue
            starts[i] = self.crop_start(frames, size, key)
            first = starts[i] * FRAME_SHIFT_SAMPLES if waveform else starts[i]
            collated[i] = item[first : first + length]
        return collated, padding_mask, starts
