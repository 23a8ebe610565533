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
from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames, num_fbank_samples, to_pcm16
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


def resampled_copy(data, row: int, rate: int, channels: int = 1):
    """Row ``row`` (0-based) of train.tsv rewritten to a copy of its audio at ``rate`` Hz with ``channels``
    channels; returns (path, the file's own frame count, the original 16 kHz waveform)."""
    import soundfile as sf
    import soxr

    m = read_manifest(data / "train.tsv")
    wav = read_audio(m.audio_path(row))
    resampled = soxr.resample(wav, 16000, rate) if rate != 16000 else wav
    path = data / f"row{row}_{rate}.flac"
    sf.write(path, np.stack([resampled] * channels, axis=1), rate, subtype="PCM_16")
    return path, len(resampled), wav


def test_a_resampled_file_lines_up_with_its_labels(data):
    """A 44.1 kHz stereo copy of an utterance in place of the original: the manifest counts its samples
    at 16 kHz, which gives the dataset's size, passes the label-length check with the original's labels,
    and is the length of the waveform the loader hands out and crops."""
    from fast_hubert_plugin.features.audio import resampled_length

    path, frames, _ = resampled_copy(data, 0, 44100, channels=2)
    count = resampled_length(frames, 44100)
    original = read_manifest(data / "train.tsv").num_samples[0]
    assert abs(count - original) <= 2  # the same duration, to the resampler's rounding
    rewrite_line(data / "train.tsv", 2, f"{path}\t{count}")
    task = make_task(data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    k = ds.rows.index(0)
    assert ds.sizes[k] == num_fbank_frames(count)
    source = ds.get_audio(k)
    assert source.dtype == torch.int16 and len(source) == count
    batch = ds.collater([ds[k], ds[ds.rows.index(1)]])
    size = min(ds.sizes[k], ds.sizes[ds.rows.index(1)], 600)
    assert batch["net_input"]["source"].shape == (2, num_fbank_samples(size))
    assert batch["target_list"][0].shape[1] == size // 2  # 50 Hz labels of the crop

    # fairseq's wav2vec_manifest writes the file's own frame count: refused with what it is and the fix
    rewrite_line(data / "train.tsv", 2, f"{path}\t{frames}")
    task = make_task(data, label_length_tolerance=100.0)  # past the label check, which would refuse it too
    task.load_dataset("train")
    with pytest.raises(DataError, match=r"own frame count at 44100 Hz .* count samples at 16000 Hz.*--no-text"):
        task.datasets["train"].get_audio(task.datasets["train"].rows.index(0))


def test_resampling_can_be_refused(data):
    path, frames, original = resampled_copy(data, 0, 16000, channels=2)
    rewrite_line(data / "train.tsv", 2, f"{path}\t{frames}")
    task = make_task(data, resample_audio=False)
    task.load_dataset("train")
    with pytest.raises(DataError, match=r"2 channels \(listed in manifest .*train.tsv, line 2\), expected mono"):
        task.datasets["train"].get_audio(task.datasets["train"].rows.index(0))
    task = make_task(data)  # by default it is down-mixed: the channels' mean, the original samples
    task.load_dataset("train")
    ds = task.datasets["train"]
    torch.testing.assert_close(ds.get_audio(ds.rows.index(0)), torch.from_numpy(to_pcm16(original)))


def test_no_resample_refuses_in_every_command_that_reads_a_manifests_audio(data, tmp_path):
    """task.resample_audio=false's twin, --no-resample, reaches the CMVN statistics, the fbank store, the
    clustering dump and fast-hubert-label, not only fast-hubert-prepare-ctc: each stops at a 22.05 kHz
    file with one error naming it, its manifest line and the fix."""
    from fast_hubert_plugin.cli import cmvn, store_fbank
    from fast_hubert_plugin.clustering import dump, label
    from fast_hubert_plugin.features.audio import resampled_length

    path, frames, _ = resampled_copy(data, 0, 22050)
    rewrite_line(data / "train.tsv", 2, f"{path}\t{resampled_length(frames, 22050)}")
    manifest = str(data / "train.tsv")
    np.save(tmp_path / "km.npy", np.zeros((4, 39), np.float32))
    commands = {
        "cmvn": (cmvn.main, [manifest, "--output", str(tmp_path / "cmvn.npz")]),
        "store": (store_fbank.main, [manifest, "--output-dir", str(tmp_path / "store")]),
        "dump": (dump.main, [manifest, str(tmp_path / "feats"), "--feature", "mfcc"]),
        "label": (label.main, [manifest, str(tmp_path / "km.npy"), str(tmp_path / "labels"), "--feature", "mfcc"]),
    }
    for name, (main, argv) in commands.items():
        with pytest.raises(SystemExit) as e:
            main(argv + ["--no-resample"])
        assert e.value.code == 2, name
        assert str(e.value).startswith(f"{path}: sample rate 22050 Hz (listed in manifest {manifest}, line 2)"), name
        assert "expected 16000 Hz. Fix: resample the audio" in str(e.value), name
    outputs = [tmp_path / name for name in ("cmvn.npz", "store", "feats", "labels")]
    assert not [p for out in outputs for p in ([out] if out.is_file() else out.rglob("*"))]  # nothing written
    cmvn.main(commands["cmvn"][1])  # by default the file is converted on load
    assert (tmp_path / "cmvn.npz").is_file()


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


def test_loader_workers_run_one_intra_op_thread(data):
    """The workers of fairseq's batch iterator collate with one torch thread whatever the training
    process uses: torch's worker loop sets it (fairseq's EpochBatchIterator passes no worker_init_fn, so
    there is no hook of ours to do it). Were that to change, loader workers would take every core."""
    import os

    task = make_task(data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    collate = ds.collater

    def collater(samples):
        batch = collate(samples)
        batch["threads"], batch["pid"] = torch.get_num_threads(), os.getpid()
        return batch

    ds.collater = collater
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        itr = task.get_batch_iterator(ds, max_tokens=2400, num_workers=1, disable_iterator_cache=True)
        batch = next(iter(itr.next_epoch_itr(shuffle=False)))
        assert batch["pid"] != os.getpid() and batch["threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("on_cuda,omp,want", [(True, None, 1), (True, "2", 2), (False, None, 2)])
def test_training_on_cuda_keeps_one_cpu_thread_unless_omp_num_threads_says(data, monkeypatch, on_cuda, omp, want):
    """fairseq's trainer calls begin_epoch with the model on its device. A process training on CUDA drops
    to one intra-op thread (as torchrun sets it); OMP_NUM_THREADS, when set, wins; CPU training keeps all."""
    task = make_task(data)
    model = SimpleNamespace(parameters=lambda: iter([SimpleNamespace(is_cuda=on_cuda)]))
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        task.begin_epoch(1, model)
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(threads)


def test_crop_size_multiple_buckets_crops_and_keeps_labels_aligned(data):
    """task.crop_size_multiple=200: every batch is 2, 4 or 6 s (600 = max_sample_size) long, or shorter
    than 2 s when its shortest utterance is; its labels are those of the crop's own frames."""
    task = make_task(data, crop_size_multiple=200)
    task.load_dataset("train")
    ds = task.datasets["train"]
    sizes = set()
    for first in range(0, len(ds) - 3, 3):
        rows = [first, first + 1, first + 2]
        batch = ds.collater([ds[i] for i in rows])
        size = num_fbank_frames(batch["net_input"]["source"].shape[1])
        shortest = min(min(int(ds.sizes[i]) for i in rows), 600)
        assert size == (shortest // 200 * 200 if shortest >= 200 else shortest)
        assert batch["target_list"][0].shape[1] == size // 2
        sizes.add(size)
    assert {200, 400, 600} & sizes and all(s in (200, 400, 600) or s < 200 for s in sizes)
    # a cropped utterance keeps the labels of its frames
    item = max(range(len(ds)), key=lambda i: ds.sizes[i])
    b = ds.collater([ds[item]])
    full, crop = ds[item]["source"], b["net_input"]["source"][0]
    start = next(s for s in range(0, len(full) - len(crop) + 1, 160) if torch.equal(full[s : s + len(crop)], crop))
    frame = start // 160
    assert num_fbank_frames(len(crop)) == 600 and frame % 8 == 0
    assert torch.equal(b["target_list"][0][0], ds.get_label(item, 0)[frame // 2 : frame // 2 + 300])


def test_crop_size_multiple_pads_up_to_a_bucket_with_pad_audio(data):
    task = make_task(data, crop_size_multiple=200, pad_audio=True)
    task.load_dataset("train")
    ds = task.datasets["train"]
    shortest = min(range(len(ds)), key=lambda i: ds.sizes[i])
    batch = ds.collater([ds[shortest]])
    frames = int(ds.sizes[shortest])
    size = num_fbank_frames(batch["net_input"]["source"].shape[1])
    assert size == min(-(-frames // 200) * 200, 600) and size >= frames
    pad = batch["net_input"]["padding_mask"]
    assert pad is not None and int(num_fbank_frames((~pad[0]).sum())) == min(frames, size)


def test_crop_size_multiple_must_keep_whole_model_frames(data):
    with pytest.raises(ValueError, match=r"task.crop_size_multiple=100: use 1 .* or a multiple of 8 fbank frames"):
        make_task(data, crop_size_multiple=100).load_dataset("train")


def test_no_resample_reaches_the_probe_and_the_decoder(tmp_path, monkeypatch):
    """fast-hubert-probe --no-resample and fast-hubert-decode's decode_split read their manifests refusing
    conversion (the manifest reader's resample flag, whose refusal the test above checks)."""
    from fast_hubert_plugin.finetuning import decode
    from fast_hubert_plugin.probing import probe

    seen = []

    class Stop(Exception):
        pass

    def reader(path, resample=True):
        seen.append(resample)
        raise Stop

    (tmp_path / "dict.ltr.txt").write_text("| 10\nA 5\n")
    monkeypatch.setattr(probe, "read_manifest", reader)
    monkeypatch.setattr(decode, "read_manifest", reader)
    for extra, want in (([], True), (["--no-resample"], False)):
        with pytest.raises(Stop):
            probe.main(["--upstream", "fbank", "--data", str(tmp_path), "--output-dir", str(tmp_path / "p"), *extra])
        assert seen.pop() is want
    with pytest.raises(Stop):
        decode.decode_split(None, None, str(tmp_path / "valid.tsv"), resample=False)
    assert seen == [False]
