"""Manifests, label files and the fbank dataset: bad input fails early, naming file and line."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fast_hubert_plugin.data import fbank_dataset
from fast_hubert_plugin.data.labels import check_symbols_in_dictionary, read_label_lines
from fast_hubert_plugin.data.manifest import read_manifest
from fast_hubert_plugin.features import compute_fbank, read_audio
from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames, num_fbank_samples
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask
from fast_hubert_plugin.utils.errors import DataError


@pytest.fixture
def data(pretraining_data, tmp_path):
    """A private copy of the tiny pretraining data folder, free to corrupt."""
    d = tmp_path / "data"
    shutil.copytree(pretraining_data, d)
    return d


def tiny_model_cfg():
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {"_name": "fast_hubert", "label_rate": 50.0, "encoder_layers": 1, "encoder_embed_dim": 32}
        | {"encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "conv_pos": 8, "conv_pos_groups": 4}
    )


def make_task(d, **kw):
    cfg = FastHubertPretrainingConfig(
        data=str(d),
        label_dir=str(d),
        labels=["km"],
        label_rate=50.0,
        cmvn_stats_path=str(d / "cmvn.npz"),
        min_sample_size=150,
        max_sample_size=600,
        **kw,
    )
    return FastHubertPretrainingTask(cfg)


def rewrite_line(path, line_no, text):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_manifest_errors_name_the_line(tmp_path):
    p = tmp_path / "m.tsv"
    p.write_text("/root\na.flac\t100\nb.flac\tabc\n")
    with pytest.raises(DataError, match=r"m.tsv, line 3: num_samples 'abc'"):
        read_manifest(p)
    p.write_text("/root\na.flac\n")
    with pytest.raises(DataError, match="line 2: expected 2 tab-separated fields"):
        read_manifest(p)
    p.write_text("a.flac\t100\n")
    with pytest.raises(DataError, match="line 1: the first line has a tab"):
        read_manifest(p)
    p.write_text("/root\na.flac\t100\n\nb.flac\t5\n")
    with pytest.raises(DataError, match="line 3: empty line"):
        read_manifest(p)
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "none.tsv")


def test_dataset_batches_fbank_and_aligned_labels(data):
    task = make_task(data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    m = read_manifest(data / "train.tsv")
    assert len(ds) == sum(1 for n in m.num_samples if 1 + (n - 400) // 160 >= 150)
    item = ds[0]
    wav = read_audio(m.audio_path(ds.rows[0]))
    assert item["source"].dtype == torch.int16  # 16-bit PCM: see the next test
    np.testing.assert_array_equal(item["source"].numpy() / 32768.0, wav)  # waveforms: the model computes the fbank
    batch = ds.collater([ds[i] for i in range(4)])
    src = batch["net_input"]["source"]
    size = min(min(num_fbank_frames(len(ds[i]["source"])) for i in range(4)), 600)
    assert src.shape == (4, num_fbank_samples(size)) and num_fbank_frames(src.shape[1]) == size
    assert batch["net_input"]["padding_mask"] is None  # nothing padded: no mask for the model to apply
    (targets,) = batch["target_list"]
    assert targets.shape[1] == round(size * 0.5)  # 50 Hz labels of `size` 100 Hz frames
    # labels of a cropped utterance are the labels of the crop's own frames
    long_item = max(range(len(ds)), key=lambda i: ds.sizes[i])
    b = ds.collater([ds[long_item]])
    full = ds[long_item]["source"]
    crop = b["net_input"]["source"][0]
    start = next(s for s in range(0, len(full) - len(crop) + 1, 160) if torch.equal(full[s : s + len(crop)], crop))
    assert start % (8 * 160) == 0 and start > 0  # on the grid of 8 fbank frames (whole 40 ms frames and labels)
    labels = ds.get_label(long_item, 0)
    frame = start // 160
    assert torch.equal(b["target_list"][0][0], labels[frame // 2 : frame // 2 + b["target_list"][0].shape[1]])
    # the fbank of the cropped waveform is the crop of the utterance's fbank, frame for frame
    crop_frames = num_fbank_frames(len(crop))
    np.testing.assert_allclose(
        compute_fbank(crop.numpy()), compute_fbank(full.numpy())[frame : frame + crop_frames], atol=1e-4, rtol=0
    )


def test_padded_waveform_batches_give_frame_masks(data):
    task = make_task(data)
    task.cfg.pad_audio = True
    task.load_dataset("train")
    ds = task.datasets["train"]
    items = [ds[i] for i in (0, 1, 2)]
    batch = ds.collater(items)
    frames = [num_fbank_frames(len(it["source"])) for it in items]
    size = min(max(frames), 600)
    src, pad = batch["net_input"]["source"], batch["net_input"]["padding_mask"]
    assert src.shape == (3, num_fbank_samples(size)) and pad.shape == src.shape
    for i, it in enumerate(items):
        n = min(len(it["source"]), src.shape[1])
        assert not pad[i, :n].any() and pad[i, n:].all()
        # the model's frame mask from the sample mask: each utterance's own frame count
        assert int(num_fbank_frames((~pad[i]).sum())) == min(frames[i], size)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_fairseq_half_precision_batch_cast_leaves_the_waveforms_exact(data, precision):
    """Under common.fp16 / common.bf16 fairseq's trainer casts every float32 tensor of a batch before
    the model sees it; a float waveform then lost most of its bits (log-Mel of quiet bins off by up to
    ~2 in bf16). The batch's int16 samples pass unchanged, so the model's fbank is fp32's."""
    from fairseq.trainer import Trainer

    from fast_hubert_plugin.features.kaldi_fbank import kaldi_fbank

    task = make_task(data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    batch = ds.collater([ds[i] for i in range(3)])
    trainer = SimpleNamespace(
        cfg=SimpleNamespace(common=SimpleNamespace(fp16=precision == "fp16", bf16=precision == "bf16"))
    )
    cast = Trainer._fp_convert_sample(trainer, batch)  # fairseq's own cast, as its trainer calls it
    assert torch.equal(cast["net_input"]["source"], batch["net_input"]["source"])
    fbank = kaldi_fbank(batch["net_input"]["source"])
    assert torch.equal(kaldi_fbank(cast["net_input"]["source"]), fbank)
    lossy = batch["net_input"]["source"] / 32768.0  # what a float32 batch would have become
    lossy = lossy.half() if precision == "fp16" else lossy.bfloat16()
    assert float((kaldi_fbank(lossy) - fbank).abs().max()) > 0.1  # the damage the integers avoid


def test_a_sample_rate_the_fbank_is_not_defined_for_fails_at_task_setup(data):
    with pytest.raises(ValueError, match=r"task.sample_rate=8000: .* 16000 Hz audio. Resample"):
        make_task(data, sample_rate=8000)
    assert make_task(data, sample_rate=100).audio_sample_rate == 16000  # the official configs' spelling


def test_label_line_count_mismatch(data):
    lines = (data / "train.km").read_text().splitlines()
    (data / "train.km").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"train.km: 55 lines but the manifest .*train.tsv has 56 rows"):
        make_task(data).load_dataset("train")


def test_label_length_mismatch_names_line_and_label_rate(data):
    rewrite_line(data / "train.km", 5, "1 2 3")
    with pytest.raises(DataError, match=r"train.km, line 5: 3 labels .* label_rate=50 Hz.*model.label_rate"):
        make_task(data).load_dataset("train")


def test_wrong_label_rate_is_caught(data):
    task = make_task(data)
    task.cfg.label_rate = 100.0
    with pytest.raises(DataError, match="line 1: .* label_rate=100 Hz"):
        task.load_dataset("train")


def test_empty_dictionary_and_unknown_units(data):
    (data / "dict.km.txt").write_text("")
    with pytest.raises(DataError, match="dictionary is empty: every label would silently become <unk>"):
        _ = make_task(data).dictionaries
    (data / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(40)))  # units 40..49 missing
    with pytest.raises(DataError, match=r"train.km, line \d+: unit\(s\) \['4[0-9]'"):
        make_task(data).load_dataset("train")


def test_a_row_without_a_fbank_frame_names_the_manifest_line(data):
    name = (data / "train.tsv").read_text().splitlines()[3].split("\t")[0]
    rewrite_line(data / "train.tsv", 4, f"{name}\t399")  # an existing file: the size is what is checked
    with pytest.raises(DataError) as e:
        make_task(data).load_dataset("train")
    assert str(e.value) == (
        f"{data / 'train.tsv'}, line 4: an utterance of 399 samples is shorter than one 25 ms fbank frame "
        "(400 samples). Fix: remove it from the manifest"
    )
    manifest = read_manifest(data / "train.tsv")
    manifest.check_at_least_one_frame([0, 1])  # the rows asked for only (batching checks its own)
    with pytest.raises(DataError, match="line 4: an utterance of 399 samples"):
        manifest.check_at_least_one_frame([0, 2])


def test_one_check_of_label_symbols_names_file_line_and_fix(tmp_path):
    """Unit labels, the probe's letter files and prepare's TSV rows are all checked by it."""
    lines = ["A B |", "", "A Z Y |"]
    with pytest.raises(DataError) as e:
        check_symbols_in_dictionary(lines, ["A", "B", "|"], "x.ltr", "dict.ltr.txt", "use the right dictionary")
    assert str(e.value) == (
        "x.ltr, line 3: unit(s) ['Y', 'Z'] not in the dictionary dict.ltr.txt. Fix: use the right dictionary"
    )
    with pytest.raises(DataError) as e:  # letters: an empty line is no CTC target
        check_symbols_in_dictionary(lines, "AB|", "x.ltr", "d", "f", symbol="letter", empty_fix="drop the row")
    assert str(e.value) == "x.ltr, line 2: empty transcript. Fix: drop the row"
    with pytest.raises(DataError) as e:  # the rows of another file: their own line numbers
        check_symbols_in_dictionary(lines, "AB|", "in.tsv", "d", "f", symbol="character", line_numbers=[2, 5, 9])
    assert (e.value.path, e.value.line, e.value.problem) == (
        "in.tsv",
        9,
        "character(s) ['Y', 'Z'] not in the dictionary d",
    )
    check_symbols_in_dictionary(lines[:2], "AB|", "x.ltr", "d", "f")  # known symbols, empty allowed: no error


def test_one_reader_of_label_lines_names_file_and_fix(tmp_path):
    path = tmp_path / "train.ltr"
    with pytest.raises(DataError) as e:
        read_label_lines(path, 2, "train.tsv", what="letter labels", missing_fix="run the preparation")
    assert str(e.value) == f"{path}: letter labels not found. Fix: run the preparation"
    path.write_text("A |\nB |\nC |\n")
    with pytest.raises(DataError) as e:
        read_label_lines(path, 2, "train.tsv")
    assert str(e.value) == (
        f"{path}: 3 lines but the manifest train.tsv has 2 rows. Fix: labels must have exactly one line per "
        "manifest row, in the same order; regenerate them from this manifest"
    )
    assert read_label_lines(path, 3, "train.tsv") == ["A |", "B |", "C |"]


def test_windows_line_endings_and_non_utf8_labels_fail_with_the_line(tmp_path):
    path = tmp_path / "train.km"
    path.write_bytes(b"1 2\n3 4\r\n5 6\r\n")
    with pytest.raises(DataError, match=r"train.km: line 2 ends with a carriage return .*Fix: convert .*sed"):
        read_label_lines(path, 3, "train.tsv")
    path.write_bytes(b"A |\nB \xff|\n")
    with pytest.raises(DataError, match=r"train.km: line 2 is not UTF-8 text"):
        read_label_lines(path, 2, "train.tsv")
    path.write_bytes(b"A |\n\nC |")  # an empty line counts; the last line needs no newline
    assert read_label_lines(path, 3, "train.tsv") == ["A |", "", "C |"]


def test_windows_line_endings_fail_at_load_instead_of_shifting_every_label(data):
    """fairseq reads each label line by byte offsets counted in text mode ("\\r\\n" = 1 character):
    without the check, line k would start k-1 bytes early and its units would be silently wrong."""
    km = data / "train.km"
    km.write_bytes(km.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(DataError, match=r"train.km: line 1 ends with a carriage return"):
        make_task(data).load_dataset("train")


def test_missing_audio_fails_at_load_with_manifest_line(data):
    rewrite_line(data / "train.tsv", 4, "so762/train/nope.flac\t32000")
    with pytest.raises(DataError, match=r"nope.flac: audio file not found \(listed in manifest .*train.tsv, line 4\)"):
        make_task(data).load_dataset("train")


def test_manifest_size_must_match_the_audio(data):
    lines = (data / "train.tsv").read_text().splitlines()
    path, n = lines[1].split("\t")
    rewrite_line(data / "train.tsv", 2, f"{path}\t{int(n) + 1600}")
    lines2 = (data / "train.km").read_text().splitlines()
    rewrite_line(data / "train.km", 1, lines2[0] + " 1 1 1 1 1")
    task = make_task(data)
    task.load_dataset("train")
    with pytest.raises(DataError, match=r"samples but manifest .*train.tsv, line 2 says"):
        task.datasets["train"].get_audio(task.datasets["train"].rows.index(0))


def test_nan_features_are_refused(data, monkeypatch):
    task = make_task(data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    monkeypatch.setattr(ds.manifest, "read_audio", lambda row, sr: np.full(16000, np.nan, np.float32))
    with pytest.raises(DataError, match="audio has NaN/inf values .*line"):
        task.datasets["train"][0]


def test_missing_cmvn_stats_is_a_clear_error(data):
    task = make_task(data)
    task.cfg.cmvn_stats_path = str(data / "absent.npz")
    with pytest.raises(DataError, match="CMVN stats file not found.*fast-hubert-cmvn"):
        task.build_model(tiny_model_cfg())
    task.cfg.cmvn_stats_path = None
    with pytest.raises(ValueError, match="task.cmvn_stats_path is not set"):
        task.build_model(tiny_model_cfg())


@pytest.mark.parametrize("pad_audio", [False, True])
def test_precomputed_store_gives_the_same_batches(data, tmp_path, pad_audio):
    """A batch from fast-hubert-store-fbank's store is the batch of waveforms with the model's fbank taken:
    the same utterances, crops, labels and padding, the fbank of the cropped waveforms frame for frame."""
    from fast_hubert_plugin.cli.store_fbank import main as store_main
    from fast_hubert_plugin.features.kaldi_fbank import kaldi_fbank

    store_main([str(data / "train.tsv"), "--output-dir", str(tmp_path / "feats")])
    a = make_task(data, pad_audio=pad_audio)
    a.load_dataset("train")
    b = make_task(data, pad_audio=pad_audio, feature_dir=str(tmp_path / "feats"))
    b.load_dataset("train")
    wave_ds, store_ds = a.datasets["train"], b.datasets["train"]
    indices = [0, 7, 30, int(np.argmax(wave_ds.sizes))]  # unequal lengths: crops (or padding) in every batch
    assert len({int(wave_ds.sizes[i]) for i in indices}) == len(indices)
    for epoch in (1, 2):  # crops move with the epoch, the same in both
        wave_ds.set_epoch(epoch)
        store_ds.set_epoch(epoch)
        wave = wave_ds.collater([wave_ds[i] for i in indices])
        stored = store_ds.collater([store_ds[i] for i in indices])
        assert torch.equal(wave["id"], stored["id"])
        for t_wave, t_stored in zip(wave["target_list"], stored["target_list"]):
            assert torch.equal(t_wave, t_stored)
        waveforms, feats = wave["net_input"]["source"], stored["net_input"]["source"]
        assert feats.dtype == torch.float32 and feats.shape == (len(indices), num_fbank_frames(waveforms.shape[1]), 80)
        wave_pad, store_pad = wave["net_input"]["padding_mask"], stored["net_input"]["padding_mask"]
        assert (wave_pad is None) == (store_pad is None) == (not pad_audio)
        fbank = kaldi_fbank(waveforms)
        for row in range(len(indices)):
            frames = feats.shape[1] if store_pad is None else int((~store_pad[row]).sum())
            if wave_pad is not None:
                assert num_fbank_frames(int((~wave_pad[row]).sum())) == frames
            torch.testing.assert_close(fbank[row, :frames], feats[row, :frames], atol=1e-4, rtol=0)
            assert not feats[row, frames:].any()  # padding frames are zeros


def test_several_label_sets_are_cut_with_the_same_crop(data):
    """task.labels [km, ph]: each label set is read with its own dictionary and cut at the crop of the
    audio, so a batch holds both sets' units of the same frames (the model gives each set its own head)."""
    from fairseq.data import Dictionary

    # a second label set: the k-means units renamed (p<u>), in a dictionary of another order
    rename = lambda line: " ".join(f"p{u}" for u in line.split())  # noqa: E731
    for split in ("train", "valid"):
        lines = (data / f"{split}.km").read_text().splitlines()
        (data / f"{split}.ph").write_text("".join(rename(line) + "\n" for line in lines))
    (data / "dict.ph.txt").write_text("".join(f"p{u} 1\n" for u in reversed(range(50))))
    task = make_task(data)
    task.cfg.labels = ["km", "ph"]
    task.load_dataset("train")
    ds = task.datasets["train"]
    km, ph = (Dictionary.load(str(data / f"dict.{label}.txt")) for label in ("km", "ph"))
    assert [len(d) for d in task.dictionaries] == [len(km), len(ph)]
    longest = int(np.argmax(ds.sizes))
    batch = ds.collater([ds[i] for i in (0, 5, longest)])
    units, renamed = batch["target_list"]
    assert units.shape == renamed.shape and len(batch["target_lengths_list"]) == 2
    assert [[ph[i] for i in row] for row in renamed.tolist()] == [[f"p{km[i]}" for i in row] for row in units.tolist()]
    assert not torch.equal(units, renamed)  # other ids: each set through its own dictionary
    # a wrong unit in the second set is caught in that set's file
    rewrite_line(data / "train.ph", 3, "p1 p2 q7")
    with pytest.raises(DataError, match=r"train.ph, line 3"):
        task.load_dataset("train")


def test_label_encoder_equals_fairseqs_encode_line(data):
    """The lookup table for integer units gives fairseq's Dictionary.encode_line exactly (ids and dtype);
    dictionaries of other symbols go through encode_line itself."""
    from fairseq.data import Dictionary

    units = Dictionary.load(str(data / "dict.km.txt"))
    encoder = fbank_dataset.LabelEncoderStrict(units)
    assert encoder.table is not None
    for line in (data / "train.km").read_text().splitlines()[:20] + ["7", "0 0 49 1"]:
        ref = units.encode_line(line, append_eos=False, add_if_not_exist=False)
        got = encoder(line)
        assert got.dtype == ref.dtype and torch.equal(got, ref), line
    letters = Dictionary()
    for symbol in "AB|":
        letters.add_symbol(symbol)
    spelled = fbank_dataset.LabelEncoderStrict(letters)
    assert spelled.table is None and spelled("A B |").tolist() == [letters.index(s) for s in "AB|"]
