"""The pretraining (and CTC fine-tuning) dataset: utterances cut on the 10 ms fbank grid, with labels.

One utterance from the manifest line to the batch (model/loss: models/fast_hubert.py):

1. Loading a split (``__init__``): the manifest (``{split}.tsv``: the audio root, then one
   ``relative/path<TAB>num_samples`` line per utterance) is read and validated row by row (data/manifest.py);
   each size becomes fbank frames (``1 + (num_samples - 400) // 160``: 25 ms windows every 10 ms, 100 per
   second); rows outside [min_keep_size, max_keep_size] frames are left out, and ``rows`` maps
   dataset index -> manifest row. Each label file (``{split}.{label}``, one line of space-separated units
   per manifest row) is checked now: line count, every unit in ``dict.{label}.txt``, and, for frame
   labels, a length of ``duration * label_rate`` (data/labels.py); errors name the file and line. Only
   each line's byte offsets are kept (fairseq's ``load_label_offset``).
2. ``dataset[i]``: ``{"id": i, "source": waveform (N,) int16 (16-bit PCM, see ``get_audio``) at
   16 kHz or, with a precomputed store, fbank (T, 80) float32, "label_list": [unit ids (L,) int32 per
   label set]}``; units become dictionary ids through ``LabelEncoderStrict``. Training batches come
   through ``__getitems__`` (torch's DataLoader calls it with a batch's indices): the batch's size and each
   crop are known from the manifest sizes and keys, so each waveform is decoded only as far as its crop
   (step 3's crop, read in place; ``crop_start`` says where it begins).
3. ``collater`` (in a loader worker): every utterance is cut to one size in fbank frames,
   ``min(shortest, max_sample_size)`` (``pad_audio``: ``min(longest, max_sample_size)``, shorter ones
   zero-padded), rounded to a multiple of ``crop_size_multiple`` when that is above 1
   (``batch_size_frames``). A longer one is cropped at a start that is a multiple of ``CROP_MULTIPLE``
   frames, drawn from its key ``rng_key(i)`` = f(seed, epoch, i); a waveform is cut at ``start * 160`` samples to
   ``(size - 1) * 160 + 400`` samples, so the model's fbank of the crop is the crop of its fbank. Frame
   labels are cut at ``start * label_rate / 100`` to ``size * label_rate / 100`` (without padding, to
   what every utterance has) and padded with the dictionary's pad; sequence labels
   (``label_rate`` -1, CTC letters) are kept whole. fairseq's ``collate_tokens`` pads them.
4. Masks (pretraining, once the task has built the model and handed over its ``span_masking``): the
   model's span masks are drawn here from the utterance keys (data/span_masks.py), over the model frames
   the batch will have (T'' = ceil(size / 2^n), trimmed to the labels as the model trims them), with
   the flat indices of the masked and unmasked frames, so the training step does no host work for them.

The batch: ``{"id": (B,), "net_input": {"source": (B, N) or (B, T, 80), "padding_mask": (B, N) / (B, T)
bool, True on padding, or None when nothing is padded, "rng_keys": (B,) int64, and with the model's
masks "time_mask": (B, T'') bool, "masked_frames": (M,) and "unmasked_frames": (U,) int64},
"target_list": [(B, L)], "target_lengths_list", "ntokens_list"}`` (``target``, ``target_lengths``,
``ntokens`` with ``single_target``). The model computes fbank and CMVN itself.

Randomness is keyed, not global: each utterance of a batch gets a key drawn from (seed, epoch,
utterance index); its crop and its mask come from that key (a batch without masks, e.g. before the
model is built, is masked by the model from the same keys, the same way). A run restarted from a
checkpoint, or split over several processes or loader workers, sees the same crops and masks. Only the
order of utterances (``ordered_indices``) uses numpy's global state, which fairseq seeds per epoch.

Composed of fairseq's ``FairseqDataset`` (the interface its batching and iterators call),
``load_label_offset`` and ``collate_tokens``; fairseq's ``HubertDataset`` crop (any sample, numpy's
global state) does not fit the fbank grid and keyed crops, and its label checks only warn.
"""

import logging
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils
from fairseq.data.audio.hubert_dataset import load_label_offset
from fairseq.data.dictionary import Dictionary

from ..features.kaldi_fbank import (
    FBANK_FRAME_RATE,
    FRAME_SHIFT_SAMPLES,
    num_fbank_frames,
    num_fbank_samples,
    to_pcm16,
)
from ..utils.errors import DataError
from .feature_store import FbankStore
from .labels import check_label_lengths, check_units_in_dictionary, read_label_lines
from .manifest import read_manifest
from .span_masks import SpanMasking

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


def batch_tensor(shape: Tuple[int, ...], dtype: torch.dtype, zeroed: bool) -> torch.Tensor:
    """An uninitialised (or ``zeroed``) batch tensor; in a data-loader worker, in shared memory, as torch's
    default_collate makes it: the batch then reaches the training process without another copy."""
    if torch.utils.data.get_worker_info() is None:
        return torch.zeros(shape, dtype=dtype) if zeroed else torch.empty(shape, dtype=dtype)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    out = torch.empty(0, dtype=dtype).set_(storage).view(shape)
    return out.zero_() if zeroed else out


class FbankHubertDataset(FairseqDataset):
    """Sizes (``sizes``, ``size``, ``num_tokens``, ``max_sample_size``, the keep limits) are fbank frames."""

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
        resample_audio: bool = True,
        span_masking: Optional[SpanMasking] = None,
        crop_size_multiple: int = 1,
    ):
        if crop_size_multiple != 1 and (crop_size_multiple <= 0 or crop_size_multiple % CROP_MULTIPLE):
            raise ValueError(
                f"task.crop_size_multiple={crop_size_multiple}: use 1 (crops of any length) or a multiple of "
                f"{CROP_MULTIPLE} fbank frames (whole model frames and labels), e.g. 200 for 2 s steps"
            )
        manifest = read_manifest(manifest_path, resample=resample_audio)
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
        self.shuffle = shuffle
        self.random_crop = random_crop
        self.pad_audio = pad_audio
        self.single_target = single_target
        self.max_sample_size = max_sample_size if max_sample_size is not None else sys.maxsize
        self.crop_size_multiple = crop_size_multiple
        self.span_masking = span_masking
        self.num_labels = len(label_paths)
        self.label_rates = [float(r) for r in label_rates]
        self.pad_list = [d.pad() for d in dictionaries]
        self.label_processors = [LabelEncoderStrict(d) for d in dictionaries]
        # Labels are read from disk by byte offset: data-loader workers do not each hold every label file.
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
        self.seed = 1
        self.epoch = 1

    def set_seed(self, seed: int) -> None:
        """The run's seed (``common.seed``), which keys crops and masks with the epoch."""
        self.seed = int(seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_span_masking(self, span_masking: Optional[SpanMasking]) -> None:
        """Draw the model's span masks in ``collater`` (the task calls this once the model is built)."""
        self.span_masking = span_masking

    def rng_key(self, index: int) -> int:
        """A 63-bit key for utterance ``index`` in this epoch: the same in every process and after a restart."""
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(2, dtype=np.uint32)
        return (int(state[0]) << 31) ^ int(state[1])

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int):
        return {"id": index, "source": self.get_audio(index), "label_list": self.get_labels(index)}

    def __getitems__(self, indices: Sequence[int]) -> List[dict]:
        """The items of one batch (torch's DataLoader fetcher calls this with a batch's indices): the batch's
        size and each item's crop follow from the manifest sizes and keys, so a waveform is read only as
        far as its crop (``get_audio_span``). Each item carries ``crop_start``, the frame its source starts
        at; the collater then makes the batch that ``collater([self[i] for i in indices])`` makes."""
        if self.feature_store is not None:
            return [self[i] for i in indices]
        size = self.batch_size_frames([int(self.sizes[i]) for i in indices])
        items = []
        for index in indices:
            frames = int(self.sizes[index])
            start = self.crop_start(frames, size, self.rng_key(index))
            source = self.get_audio_span(index, start, size if frames >= size else None)  # None: whole, padded
            items.append({"id": index, "source": source, "label_list": self.get_labels(index), "crop_start": start})
        return items

    def size(self, index: int) -> int:
        """fbank frames the utterance contributes to a batch (crops are at most ``max_sample_size``)."""
        return int(self.sizes[index]) if self.pad_audio else min(int(self.sizes[index]), self.max_sample_size)

    def num_tokens(self, index: int) -> int:
        return self.size(index)

    def ordered_indices(self) -> np.ndarray:
        """Longest first, ties in random order (fairseq seeds numpy's state for this call)."""
        order = [np.random.permutation(len(self)) if self.shuffle else np.arange(len(self)), self.sizes]
        return np.lexsort(order)[::-1]

    def get_label(self, index: int, label_idx: int) -> torch.Tensor:
        """Unit ids (L,) of kept utterance ``index`` in label set ``label_idx``, read at its byte offsets."""
        start, end = self.label_offsets_list[label_idx][index]
        with open(self.label_paths[label_idx], "rb") as f:
            f.seek(start)
            line = f.read(end - start).decode("utf-8")
        return self.label_processors[label_idx](line)

    def get_labels(self, index: int) -> List[torch.Tensor]:
        return [self.get_label(index, i) for i in range(self.num_labels)]

    def collater(self, samples):
        samples = [s for s in samples if s["source"] is not None]
        if not samples:
            return {}
        keys = [self.rng_key(s["id"]) for s in samples]
        frames = [self.num_frames(s["source"]) for s in samples]
        size = self.batch_size_frames(frames)
        source, padding_mask, starts = self.collater_audio([s["source"] for s in samples], size, keys)
        starts = [s.get("crop_start", 0) + start for s, start in zip(samples, starts)]  # read cropped: __getitems__
        targets, lengths, ntokens = [], [], []
        for i, (rate, pad) in enumerate(zip(self.label_rates, self.pad_list)):
            t, n, count = self.collater_label([s["label_list"][i] for s in samples], size, starts, rate, pad)
            targets.append(t)
            lengths.append(n)
            ntokens.append(count)
        rng_keys = torch.tensor(keys, dtype=torch.long)
        net_input = {
            "source": source,
            "padding_mask": padding_mask,  # None when nothing is padded: the model then applies none
            "rng_keys": rng_keys,
        }
        if self.span_masking is not None:  # the model's masks, drawn here in the loader worker
            audio = [min(f, size) for f in frames]
            net_input.update(self.span_masking.batch_masks(audio, size, [t.size(1) for t in targets], rng_keys))
        batch = {"id": torch.LongTensor([s["id"] for s in samples]), "net_input": net_input}
        if self.single_target:
            batch.update(target_lengths=lengths[0], ntokens=ntokens[0], target=targets[0])
        else:
            batch.update(target_lengths_list=lengths, ntokens_list=ntokens, target_list=targets)
        return batch

    def batch_size_frames(self, frames: Sequence[int]) -> int:
        """fbank frames every utterance of a batch is cut to: ``min(shortest, max_sample_size)``
        (``pad_audio``: ``min(longest, max_sample_size)``). With ``crop_size_multiple`` m > 1 the size is
        rounded down to a multiple of m (``pad_audio``: up, at most ``max_sample_size``), so batches
        come in a few shapes (static shapes for compiled code); a shortest utterance under m frames
        keeps its own size."""
        m = self.crop_size_multiple
        if self.pad_audio:
            size = min(max(frames), self.max_sample_size)
            return min(-(-size // m) * m, self.max_sample_size)
        size = min(min(frames), self.max_sample_size)
        return size // m * m if size >= m else size

    @staticmethod
    def num_frames(source: torch.Tensor) -> int:
        """fbank frames of an item: a waveform (N,) or precomputed fbank (T, 80)."""
        return len(source) if source.dim() == 2 else num_fbank_frames(len(source))

    def get_audio(self, index: int) -> torch.Tensor:
        """Waveform (N,) int16 (16-bit PCM) of kept utterance ``index``, or its precomputed fbank
        (frames, 80) float32 when the dataset reads a store; the fbank of waveforms and the CMVN are
        computed in the model.

        Integer samples because fairseq's trainer casts every float32 tensor of a batch to float16
        / bfloat16 under ``common.fp16`` / ``common.bf16`` before the model sees it: a bf16 waveform
        keeps 8 bits of each sample, which moves the log-Mel values of quiet bins by up to ~2. int16
        is what 16-bit audio holds, exactly, in half the bytes of float32."""
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
        return torch.from_numpy(feats if self.feature_store is not None else to_pcm16(feats))

    def get_audio_span(self, index: int, first: int, frames: Optional[int]) -> torch.Tensor:
        """The samples of fbank frames [first, first + frames) (``frames`` None: to the end) of kept
        utterance ``index``, int16: those of ``get_audio(index)``, decoded only as far as the span for a
        mono 16-bit file."""
        row = self.rows[index]
        start = first * FRAME_SHIFT_SAMPLES
        count = self.manifest.num_samples[row] - start if frames is None else num_fbank_samples(frames)
        span = self.manifest.read_pcm16_span(row, start, count, self.audio_sample_rate)
        if span is None:  # not mono 16-bit: converted from the float waveform as get_audio does
            return self.get_audio(index)[start : start + count]
        return torch.from_numpy(span)

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
        of ``size`` frames, or fbank (B, size, 80); the padding mask (B, N) or (B, size), None when
        nothing is padded (the model then needs no mask and no device sync); crop starts in frames."""
        waveform = audios[0].dim() == 1
        length = num_fbank_samples(size) if waveform else size
        padded = [i for i, item in enumerate(audios) if self.num_frames(item) < size]
        assert self.pad_audio or not padded
        collated = batch_tensor((len(audios), length) + tuple(audios[0].shape[1:]), audios[0].dtype, bool(padded))
        padding_mask = torch.zeros(len(audios), length, dtype=torch.bool) if padded else None
        starts = [0] * len(audios)
        for i, (item, key) in enumerate(zip(audios, keys)):
            frames = self.num_frames(item)
            if frames < size:
                collated[i, : len(item)] = item
                padding_mask[i, len(item) :] = True
                continue
            starts[i] = self.crop_start(frames, size, key)
            first = starts[i] * FRAME_SHIFT_SAMPLES if waveform else starts[i]
            collated[i] = item[first : first + length]
        return collated, padding_mask, starts

    def collater_label(
        self, labels: List[torch.Tensor], size: int, starts: Sequence[int], label_rate: float, pad: int
    ) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """One label set of a batch: (B, L) ids padded with ``pad``, the (B,) lengths and their sum.

        Frame labels are cut to the audio's crop: labels per fbank frame = label_rate / 100, exact at
        the crop starts (multiples of CROP_MULTIPLE frames). Sequence labels (label_rate -1) stay whole."""
        if label_rate > 0:
            per_frame = label_rate / FBANK_FRAME_RATE
            first = [int(round(s * per_frame)) for s in starts]
            count = int(round(size * per_frame))
            if not self.pad_audio:  # without padding, every row keeps only labels all of them have
                count = min([count] + [len(t) - f for t, f in zip(labels, first)])
            labels = [t[f : f + count] for t, f in zip(labels, first)]
        lengths = torch.LongTensor([len(t) for t in labels])
        return data_utils.collate_tokens(labels, pad_idx=pad, left_pad=False), lengths, int(lengths.sum())
