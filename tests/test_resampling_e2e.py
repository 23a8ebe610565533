"""End to end: audio at 8, 22.05, 44.1 and 48 kHz and in stereo -> fast-hubert-prepare-ctc -> MFCC dump ->
k-means labels -> `fairseq-hydra-train` for 2 updates. The test audio is made here, from fixture
utterances resampled with soxr; the manifest counts every file's samples at 16 kHz."""

import numpy as np
import soundfile as sf
import soxr

from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.clustering import learn as learn_mod
from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.data.cmvn_stats import compute_cmvn
from fast_hubert_plugin.data.manifest import read_manifest
from fast_hubert_plugin.features import read_audio
from fast_hubert_plugin.features.audio import resampled_length
from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames

from conftest import SPEECH_DIR, cli, read_corpus_tsv, run_hydra_train, train_log_records

FORMATS = [(8000, 1), (16000, 2), (22050, 1), (44100, 1), (48000, 1)]  # (sample rate, channels)


def write_converted(rows, folder, per_format: int):
    """``per_format`` fixture utterances in each format, as 16-bit FLAC; returns [(path, rate, frames)]."""
    written = []
    for k, (rate, channels) in enumerate(FORMATS):
        for r in rows[k * per_format : (k + 1) * per_format]:
            wav = read_audio(SPEECH_DIR / r["path"])
            wav = soxr.resample(wav, 16000, rate) if rate != 16000 else wav
            path = folder / f"{rate}_{channels}ch" / f"{r['id']}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            # the second channel quieter, so that down-mixing is an average, not a copy
            sf.write(path, np.stack([wav, 0.5 * wav][:channels], axis=1), rate, subtype="PCM_16")
            written.append((path, rate, len(wav)))
    return written


def test_any_sample_rate_and_stereo_go_through_prepare_dump_and_pretraining(tmp_path):
    audio, data, feats, labels = (tmp_path / n for n in ("audio", "data", "feats", "labels"))
    splits = {
        "train": write_converted(read_corpus_tsv("so762_train.tsv"), audio, per_format=3),
        "valid": write_converted(read_corpus_tsv("so762_dev.tsv"), audio, per_format=1),
    }
    for split, files in splits.items():
        tsv = tmp_path / f"{split}_in.tsv"
        tsv.write_text("path\n" + "".join(f"{p.relative_to(tmp_path)}\n" for p, *_ in files))
        proc = cli("fast-hubert-prepare-ctc", tsv, "--split", split, "--output-dir", data, "--no-text", "--quiet")
        n = len(files) // len(FORMATS)
        assert f"{len(files)} of {len(files)} files are not 16 kHz mono ({n} at 8000 Hz, 1 channel; " in proc.stderr
        assert f"; {n} at 48000 Hz, 1 channel)" in proc.stderr
        # the manifest counts samples at 16 kHz, what the loader reads
        m = read_manifest(data / f"{split}.tsv")
        assert m.num_samples == [resampled_length(frames, rate) for _, rate, frames in files]
        assert [len(m.read_audio(i)) for i in range(len(m))] == m.num_samples
        dump_mod.main([str(data / f"{split}.tsv"), str(feats), "--feature", "mfcc"])
        # the dump's frames are the fbank frames of the 16 kHz count, as the dataset's sizes
        lens = [int(x) for x in next(feats.glob(f"{split}_0_1.len")).read_text().split()]
        assert lens == [num_fbank_frames(n) for n in m.num_samples]

    # --no-resample refuses them, naming the input line and the fix
    refused = cli(
        "fast-hubert-prepare-ctc", tmp_path / "train_in.tsv", "--split", "x", "--output-dir", tmp_path / "x",
        "--no-text", "--quiet", "--no-resample", check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "train_in.tsv, line 2: sample rate 8000 Hz" in refused.stderr and "sox" in refused.stderr

    learn_mod.main([str(feats), "train", str(tmp_path / "km.npy"), "--n-clusters", "10", "--niter", "10"])
    for split in splits:  # checks the label lengths against the manifest, as the task does
        apply_mod.main([str(feats), split, str(tmp_path / "km.npy"), str(labels), "--label-rate", "50"])
    compute_cmvn(data / "train.tsv", progress=False).save(tmp_path / "cmvn.npz")

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [
            f"task.data={data}",
            f"task.label_dir={labels}",
            "model.label_rate=50",
            f"task.cmvn_stats_path={tmp_path / 'cmvn.npz'}",
            "optimization.max_update=2",
            "common.log_interval=1",
            "dataset.validate_interval=1000",
            "dataset.validate_interval_updates=0",
        ],
    )
    log = proc.stdout + proc.stderr
    records = train_log_records(log)
    assert [int(r["num_updates"]) for r in records] == [1, 2]
    assert all(np.isfinite(float(r["loss"])) for r in records)
    assert "converted on load to 16000 Hz mono" in log
