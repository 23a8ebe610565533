"""A batch read as torch's DataLoader fetcher reads it (``dataset.__getitems__``: each waveform decoded only
as far as its crop) equals the batch of whole items (``collater([dataset[i] for i in batch])``), sample for
sample and label for label; so do the batches fairseq's iterator delivers from a loader process."""

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from test_span_masks import MASK_FIELDS, model_cfg

from fast_hubert_plugin.data.manifest import read_manifest
from fast_hubert_plugin.features import read_audio
from fast_hubert_plugin.features.kaldi_fbank import to_pcm16
from fast_hubert_plugin.utils.errors import DataError

from test_data import make_task


@pytest.fixture
def data(pretraining_data, tmp_path):
    """A private copy of the tiny pretraining data folder, free to change."""
    d = tmp_path / "data"
    shutil.copytree(pretraining_data, d)
    return d


def load_train(d, max_sample_size: int = 600, masks: bool = False, **kw):
    """The train split; with ``masks`` after a model is built, as fairseq orders it, so that the collater
    draws the model's span masks (data/span_masks.py)."""
    task = make_task(d, **kw)  # test_data.py's: crops of at most 600 frames, utterances of at least 150
    task.cfg.max_sample_size = max_sample_size
    if masks:
        task.build_model(model_cfg())
    task.load_dataset("train")
    return task


def batches(task, max_tokens: int, seed: int, workers: int = 0):
    return task.get_batch_iterator(
        task.datasets["train"],
        max_tokens=max_tokens,
        max_positions=None,
        seed=seed,
        num_workers=workers,
        epoch=1,
        required_batch_size_multiple=1,
        disable_iterator_cache=True,  # else the task hands back its iterator of this dataset, at its next epoch
    )


def assert_same_batch(a: dict, b: dict) -> None:
    assert torch.equal(a["id"], b["id"])
    for key in ("source", "rng_keys"):
        assert a["net_input"][key].dtype == b["net_input"][key].dtype
        assert torch.equal(a["net_input"][key], b["net_input"][key]), key
    pa, pb = a["net_input"]["padding_mask"], b["net_input"]["padding_mask"]
    assert (pa is None and pb is None) or torch.equal(pa, pb)
    for key in ("target_list", "target_lengths_list"):
        assert all(torch.equal(x, y) for x, y in zip(a[key], b[key])), key
    assert a["ntokens_list"] == b["ntokens_list"]
    assert set(MASK_FIELDS) & set(a["net_input"]) == set(MASK_FIELDS) & set(b["net_input"])
    for key in set(MASK_FIELDS) & set(a["net_input"]):
        assert torch.equal(a["net_input"][key], b["net_input"][key]), key


@pytest.mark.parametrize("pad_audio", [False, True])
@pytest.mark.parametrize("crop_size_multiple", [1, 200])
def test_batch_reads_make_the_batches_of_whole_items(data, pad_audio, crop_size_multiple):
    """With the span masks the collater draws, and with crop lengths bucketed (task.crop_size_multiple):
    the batch size __getitems__ reads crops to is the one the collater then cuts the whole items to."""
    task = load_train(data, pad_audio=pad_audio, masks=True, crop_size_multiple=crop_size_multiple)
    ds = task.datasets["train"]
    frozen = batches(task, max_tokens=3000, seed=3).frozen_batches
    cropped, sizes = 0, set()
    for indices in frozen:
        items = ds.__getitems__(indices)
        whole = [ds[i] for i in indices]
        # read: exactly the crop's samples (or the whole, shorter, padded utterance)
        assert all(len(it["source"]) <= len(w["source"]) for it, w in zip(items, whole))
        cropped += sum(len(it["source"]) < len(w["source"]) for it, w in zip(items, whole))
        batch = ds.collater(items)
        assert_same_batch(batch, ds.collater(whole))
        assert batch["net_input"]["masked_frames"].numel() > 0
        sizes.add(ds.num_frames(batch["net_input"]["source"][0]))
    if crop_size_multiple > 1:  # a few shapes: every batch a whole bucket, or its shortest utterance
        assert sizes and all(s % crop_size_multiple == 0 or s < crop_size_multiple for s in sizes), sizes
    # most items were read only in part (padded batches crop to their longest: a few): the test sees crops
    assert cropped >= (len(ds) // 10 if pad_audio else len(ds) // 2), cropped
    if pad_audio:
        assert any(ds.collater(ds.__getitems__(b))["net_input"]["padding_mask"] is not None for b in frozen)


def test_a_loader_process_delivers_the_batches_of_the_training_process(data):
    """fairseq's iterator with one loader process (the batch built in shared memory, batch reads) against
    the same epoch read in the training process item by item."""
    task = load_train(data)
    ds = task.datasets["train"]
    from_worker = list(batches(task, max_tokens=4000, seed=5, workers=1).next_epoch_itr(shuffle=True))
    ds.__getitems__ = None  # torch's fetcher then calls dataset[i] per index
    in_process = list(batches(task, max_tokens=4000, seed=5).next_epoch_itr(shuffle=True))
    assert len(from_worker) == len(in_process) > 3
    for a, b in zip(from_worker, in_process):
        assert_same_batch(a, b)


def test_spans_of_16_bit_files_are_decoded_in_place_others_read_whole(data, tmp_path):
    m = read_manifest(data / "train.tsv")
    i = max(range(len(m)), key=lambda r: m.num_samples[r])
    whole = to_pcm16(read_audio(m.audio_path(i)))
    for start, count in [(0, 400), (160 * 97, 160 * 300 + 240), (len(whole) - 1000, 1000)]:
        span = m.read_pcm16_span(i, start, count)
        assert span.dtype == np.int16 and np.array_equal(span, whole[start : start + count])
    # 24-bit and stereo audio: converted from the float waveform as whole reads are (to_pcm16 rounds)
    wav, _ = sf.read(m.audio_path(i), dtype="float32")
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "24bit.wav", wav * 0.7, 16000, subtype="PCM_24")
    sf.write(tmp_path / "a" / "stereo.wav", np.stack([wav, -0.5 * wav], 1), 16000, subtype="PCM_16")
    (data / "train.tsv").write_text(f"{tmp_path / 'a'}\n24bit.wav\t{len(wav)}\nstereo.wav\t{len(wav)}\n")
    labels = (data / "train.km").read_text().splitlines(True)[i]
    (data / "train.km").write_text(labels * 2)  # both files are row i's audio
    other = read_manifest(data / "train.tsv")
    assert other.read_pcm16_span(0, 0, 400) is None and other.read_pcm16_span(1, 0, 400) is None
    ds = load_train(data, max_sample_size=500).datasets["train"]
    for index in range(2):
        span = ds.get_audio_span(index, 16, 500)
        assert torch.equal(span, ds.get_audio(index)[16 * 160 : 16 * 160 + 499 * 160 + 400])
    assert not torch.equal(ds.get_audio(0), torch.from_numpy(whole))  # the 24-bit copy is scaled: a new waveform


def test_a_16_bit_file_shorter_than_its_manifest_row_fails_naming_the_line(data):
    lines = (data / "train.tsv").read_text().splitlines()
    path, n = lines[1].split("\t")
    lines[1] = f"{path}\t{int(n) + 160}"
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    m = read_manifest(data / "train.tsv")
    with pytest.raises(DataError, match=r"train.tsv, line 2 says"):
        m.read_pcm16_span(0, 0, 400)
