"""Clustering stage: MFCC, feature shards (sharding, resuming, atomicity), FAISS k-means, label
files the pretraining task accepts, cluster metrics, and layer dumps of a tiny HuBERT."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.clustering import learn as learn_mod
from fast_hubert_plugin.clustering import report as report_mod
from fast_hubert_plugin.clustering.feature_shards import ShardPaths, load_split, row_range
from fast_hubert_plugin.clustering.kmeans import inertia, kmeans_plusplus, train_kmeans
from fast_hubert_plugin.clustering.metrics import contingency, purity_metrics, usage_stats
from fast_hubert_plugin.clustering.phones import PhoneInventory, frame_phones_to_frames, segments_to_frames
from fast_hubert_plugin.data.labels import check_label_lengths, load_dictionary
from fast_hubert_plugin.data.manifest import read_manifest
from fast_hubert_plugin.features.audio import read_audio
from fast_hubert_plugin.features.kaldi_fbank import compute_fbank, num_fbank_frames
from fast_hubert_plugin.features.mfcc import MFCC_DIM, compute_mfcc, compute_mfcc_static
from fast_hubert_plugin.utils.errors import DataError

from conftest import read_corpus_tsv, save_fairseq_checkpoint, write_manifest

N_UTTS, K = 20, 20


@pytest.fixture(scope="module")
def manifest20(speech_root, tmp_path_factory):
    """20 real utterances (16 so762 + 4 LibriSpeech) as a fairseq manifest."""
    rows = read_corpus_tsv("so762_train.tsv")[:16] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:4]
    return write_manifest(tmp_path_factory.mktemp("m20") / "train.tsv", rows, speech_root)


@pytest.fixture(scope="module")
def pipeline(manifest20, tmp_path_factory):
    """manifest -> MFCC (1 shard and 3 shards) -> k-means K=20 -> labels at 50 Hz."""
    work = tmp_path_factory.mktemp("pipe")
    dump_mod.main([str(manifest20), str(work / "feat1"), "--feature", "mfcc"])
    for r in range(3):
        dump_mod.main([str(manifest20), str(work / "feat3"), "--feature", "mfcc", "--nshard", "3", "--rank", str(r)])
    for name in ("feat1", "feat3"):
        learn_mod.main(
            [
                str(work / name),
                "train",
                str(work / f"{name}_km.npy"),
                "--n-clusters",
                str(K),
                "--niter",
                "10",
                "--percent",
                "0.5",
                "--seed",
                "3",
            ]
        )
        apply_mod.main(
            [
                str(work / name),
                "train",
                str(work / f"{name}_km.npy"),
                str(work / f"{name}_labels"),
                "--label-rate",
                "50",
            ]
        )
    return work


# ---------------------------------------------------------------- MFCC


def regression_delta(x: np.ndarray) -> np.ndarray:
    """Least-squares slope over +-2 frames with replicated edges (torchaudio's compute_deltas, win_length 5)."""
    p = np.concatenate([x[:1], x[:1], x, x[-1:], x[-1:]])
    return sum(n * (p[2 + n : len(p) - 2 + n] - p[2 - n : len(p) - 2 - n]) for n in (1, 2)) / 10


def test_mfcc_is_the_lifted_dct_of_the_log_mel_and_its_deltas(speech_root):
    """HuBERT's MFCC (Kaldi's, as torchaudio's compliance.kaldi.mfcc): 13 cepstra = lifter(22) x the
    orthonormal DCT-II of 23 log-Mel energies of the float waveform, then delta and delta-delta.
    The reference is built from the project's own torch fbank (an implementation independent of the
    kaldi-native-fbank that computes the MFCC): a wrong bin count, DCT, lifter, scale or delta order
    moves the cepstra by 0.1 to tens, the two implementations differ by < 2e-4."""
    row = read_corpus_tsv("so762_train.tsv")[0]
    wav = read_audio(speech_root / row["path"])
    feats = compute_mfcc(wav)
    assert feats.dtype == np.float32 and feats.shape == (num_fbank_frames(len(wav)), MFCC_DIM) == (256, 39)
    static = compute_mfcc_static(wav)
    np.testing.assert_array_equal(feats[:, :13], static)
    # the fbank of the float waveform: ours is of the int16 scale (+2 ln 32768 in every bin), floored at eps
    eps = np.log(np.finfo(np.float32).eps)
    log_mel = np.maximum(compute_fbank(wav, num_mel_bins=23).astype(np.float64) - 2 * np.log(32768.0), eps)
    bins, ceps = np.arange(23), np.arange(13)[:, None]
    dct = np.sqrt(2 / 23) * np.cos(np.pi / 23 * (bins + 0.5) * ceps)
    dct[0] = np.sqrt(1 / 23)
    lifter = 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    reference = (log_mel @ dct.T) * lifter
    np.testing.assert_allclose(static, reference, rtol=0, atol=0.01)
    # delta of the cepstra, delta-delta = delta of the delta
    np.testing.assert_allclose(feats[:, 13:26], regression_delta(reference), rtol=0, atol=0.01)
    np.testing.assert_allclose(feats[:, 26:], regression_delta(regression_delta(reference)), rtol=0, atol=0.01)
    assert np.abs(feats[:, 26:]).mean() > 0.1  # delta-deltas that are there to be compared
    assert compute_mfcc(np.zeros(399, np.float32)).shape == (0, 39)


# ---------------------------------------------------------------- dump -> learn -> apply


def test_pipeline_labels_pass_the_task_checks(pipeline, manifest20):
    manifest = read_manifest(manifest20)
    label_path = pipeline / "feat1_labels" / "train.km"
    lines = label_path.read_text().splitlines()
    assert len(lines) == len(manifest) == N_UTTS
    check_label_lengths(lines, manifest.num_samples, 50, label_path, str(manifest20))
    for line, n in zip(lines, manifest.num_samples):  # every 2nd 100 Hz frame: ceil(frames / 2)
        assert len(line.split()) == math.ceil(num_fbank_frames(n) / 2)
    units = np.array([int(u) for line in lines for u in line.split()])
    assert units.min() >= 0 and units.max() < K
    dict_lines = (pipeline / "feat1_labels" / "dict.km.txt").read_text().splitlines()
    assert [line.split()[0] for line in dict_lines] == [str(i) for i in range(K)]
    assert sum(int(line.split()[1]) for line in dict_lines) == units.size
    d = load_dictionary(pipeline / "feat1_labels" / "dict.km.txt")
    assert len(d) - d.nspecial == K
    centroids = np.load(pipeline / "feat1_km.npy")
    assert centroids.shape == (K, 39) and centroids.dtype == np.float32


def test_unused_units_stay_in_the_dictionary_with_count_0(pipeline, tmp_path):
    centroids = np.load(pipeline / "feat1_km.npy")
    far = np.full((1, centroids.shape[1]), 1e6, np.float32)  # no frame is nearest to it
    np.save(tmp_path / "km21.npy", np.concatenate([centroids, far]))
    s = apply_mod.apply_kmeans(
        pipeline / "feat1", "train", tmp_path / "km21.npy", tmp_path, label_rate=50, progress=False
    )
    assert s["n_clusters"] == K + 1 and s["used_clusters"] <= K
    assert (tmp_path / "dict.km.txt").read_text().splitlines()[-1] == f"{K} 0"
    d = load_dictionary(tmp_path / "dict.km.txt")  # fairseq's Dictionary.load accepts count 0
    assert len(d) - d.nspecial == K + 1 and d.index(str(K)) != d.unk()


def test_sharding_gives_identical_results(pipeline):
    one, three = load_split(pipeline / "feat1", "train"), load_split(pipeline / "feat3", "train")
    assert len(one) == 1 and len(three) == 3
    np.testing.assert_array_equal(one[0].feats, np.concatenate([s.feats for s in three]))
    np.testing.assert_array_equal(one[0].lengths, np.concatenate([s.lengths for s in three]))
    np.testing.assert_array_equal(np.load(pipeline / "feat1_km.npy"), np.load(pipeline / "feat3_km.npy"))
    assert (pipeline / "feat1_labels/train.km").read_text() == (pipeline / "feat3_labels/train.km").read_text()
    assert [row_range(20, r, 3) for r in range(3)] == [(0, 6), (6, 13), (13, 20)]
    # searching in small row groups gives the same labels as one search per shard
    apply_mod.apply_kmeans(
        pipeline / "feat3",
        "train",
        pipeline / "feat1_km.npy",
        pipeline / "small_batches",
        label_rate=50,
        batch_size=777,
        progress=False,
    )
    assert (pipeline / "small_batches/train.km").read_text() == (pipeline / "feat1_labels/train.km").read_text()


@pytest.mark.parametrize(
    "module, words",
    [
        (dump_mod, [".npy", ".len", "--nshard"]),
        (learn_mod, ["centroids", "inertia"]),
        (apply_mod, ["dict.{label}.txt", "--label-rate"]),
        (report_mod, ["PNMI", ".phn"]),
    ],
)
def test_help_explains_files(module, words, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(w in out for w in words), out


def test_finished_shard_is_not_recomputed(pipeline, manifest20, monkeypatch):
    paths = ShardPaths.of(pipeline / "feat3", "train", 1, 3)
    before = {p: p.stat().st_mtime_ns for p in (paths.npy, paths.len, paths.meta)}
    monkeypatch.setattr(dump_mod, "build_extractor", lambda *a, **k: pytest.fail("finished shard recomputed"))
    meta = dump_mod.dump_split(manifest20, pipeline / "feat3", "mfcc", nshard=3, rank=1, progress=False)
    assert meta["skipped"] and meta["rows"] == [6, 13]
    assert {p: p.stat().st_mtime_ns for p in before} == before
    with pytest.raises(DataError, match="other settings"):  # same files, other feature: refuse, never mix
        dump_mod.dump_split(manifest20, pipeline / "feat3", "fbank", nshard=3, rank=1, progress=False)


def test_interrupted_dump_leaves_no_finished_looking_file(manifest20, tmp_path, monkeypatch):
    from fast_hubert_plugin.data.manifest import AudioManifest

    real = AudioManifest.read_audio
    calls = []

    def flaky(manifest, i, *args):
        calls.append(i)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(manifest, i, *args)

    monkeypatch.setattr(AudioManifest, "read_audio", flaky)
    with pytest.raises(KeyboardInterrupt):
        dump_mod.dump_split(manifest20, tmp_path, "mfcc", progress=False)
    assert sorted(os.listdir(tmp_path)) == []  # no .npy/.len/.json, no temporary left behind
    # a .npy without its .len (killed between the renames) is not finished: it is recomputed
    monkeypatch.setattr(AudioManifest, "read_audio", real)
    paths = ShardPaths.of(tmp_path, "train", 0, 1)
    paths.npy.write_bytes(b"partial")
    assert not paths.is_finished()
    meta = dump_mod.dump_split(manifest20, tmp_path, "mfcc", progress=False)
    assert not meta["skipped"] and np.load(paths.npy).shape == (meta["frames"], 39)


def test_an_overwrite_killed_after_its_npy_leaves_no_finished_looking_shard(manifest20, tmp_path, monkeypatch):
    """--overwrite of a finished shard with other settings, killed between the new .npy's rename and its
    .json: the old .json and .len must not make the new frames look like a finished shard of the old
    settings (here 80-dim fbank frames under a 39-dim MFCC .json)."""
    from fast_hubert_plugin.clustering import feature_shards

    small = tmp_path / "small.tsv"
    small.write_text("\n".join(manifest20.read_text().splitlines()[:4]) + "\n")
    dump_mod.dump_split(small, tmp_path / "f", "mfcc", progress=False)
    paths = ShardPaths.of(tmp_path / "f", "small", 0, 1)
    assert paths.is_finished()

    def killed(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_shards, "atomic_write_text", killed)  # the first write after the .npy's rename
    with pytest.raises(KeyboardInterrupt):
        dump_mod.dump_split(small, tmp_path / "f", "fbank", overwrite=True, progress=False)
    assert np.load(paths.npy).shape[1] == 80  # the new frames are in place
    assert not paths.is_finished()
    monkeypatch.undo()
    meta = dump_mod.dump_split(small, tmp_path / "f", "fbank", progress=False)  # redone, not refused
    (shard,) = load_split(tmp_path / "f", "small")
    assert not meta["skipped"] and shard.meta["feature"] == "fbank" and shard.feats.shape[1] == 80


def test_fbank_dump_with_cmvn(manifest20, tmp_path):
    from fast_hubert_plugin.features.cmvn import GlobalCMVN

    small = tmp_path / "small.tsv"
    small.write_text("\n".join(manifest20.read_text().splitlines()[:4]) + "\n")
    GlobalCMVN(np.full(80, 2.0), np.full(80, 4.0)).save(tmp_path / "cmvn.npz")
    dump_mod.main([str(small), str(tmp_path / "raw"), "--feature", "fbank"])
    dump_mod.main([str(small), str(tmp_path / "norm"), "--feature", "fbank", "--cmvn", str(tmp_path / "cmvn.npz")])
    (raw,), (norm,) = load_split(tmp_path / "raw", "small"), load_split(tmp_path / "norm", "small")
    assert raw.meta["dim"] == 80 and raw.meta["frame_rate"] == 100 and norm.meta["cmvn"].endswith("cmvn.npz")
    np.testing.assert_allclose(norm.feats, (raw.feats - 2.0) / 4.0, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- bad inputs


def test_missing_audio_names_file_and_manifest_line(manifest20, tmp_path):
    lines = manifest20.read_text().splitlines()
    lines.insert(2, "so762/train/nope/missing.flac\t32000")
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit, match=r"missing\.flac.*bad\.tsv, line 3"):
        dump_mod.main([str(bad), str(tmp_path / "f"), "--feature", "mfcc"])
    assert not ShardPaths.of(tmp_path / "f", "bad", 0, 1).is_finished()


def test_wrong_num_samples_in_manifest(manifest20, tmp_path):
    lines = manifest20.read_text().splitlines()
    path, n = lines[1].split("\t")
    lines[1] = f"{path}\t{int(n) + 800}"
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.tsv, line 2"):
        dump_mod.dump_split(bad, tmp_path / "f", "mfcc", progress=False)


def test_dim_mismatch_names_both_files(pipeline, tmp_path):
    np.save(tmp_path / "km768.npy", np.zeros((K, 768), np.float32))
    with pytest.raises(DataError, match=r"km768\.npy.*dim 768.*train_0_1\.npy.*dim 39"):
        apply_mod.apply_kmeans(pipeline / "feat1", "train", tmp_path / "km768.npy", tmp_path / "lab", progress=False)
    assert not (tmp_path / "lab").exists()


@pytest.mark.parametrize("rate", ["30", "200"])
def test_impossible_label_rate(pipeline, tmp_path, rate):
    with pytest.raises(SystemExit, match=rf"train_0_1\.json.*{rate} Hz cannot be made from features at 100 Hz"):
        apply_mod.main(
            [str(pipeline / "feat1"), "train", str(pipeline / "feat1_km.npy"), str(tmp_path), "--label-rate", rate]
        )
    assert not (tmp_path / "train.km").exists()


def test_unfinished_split_is_reported(pipeline, tmp_path):
    with pytest.raises(DataError, match="no finished feature shards of split 'valid'"):
        load_split(pipeline / "feat1", "valid")


# ---------------------------------------------------------------- k-means


def test_kmeans_finds_separated_clusters_and_beats_random_init():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(8, 5)).astype(np.float32)
    x = (centres[rng.integers(8, size=4000)] + rng.normal(size=(4000, 5))).astype(np.float32)
    seeds = kmeans_plusplus(x, 8, seed=0)
    assert seeds.shape == (8, 5)
    for seed in range(3):
        result = train_kmeans(x, 8, niter=20, seed=seed)
        assert result.inertia == pytest.approx(inertia(x, result.centroids))
        assert result.mean_inertia < 5.5  # ~ dim x unit variance when every true cluster is found
        # the same FAISS Lloyd iterations from a random init merge some true clusters
        random = train_kmeans(x, 8, niter=20, seed=seed, init="random")
        assert random.mean_inertia > 2 * result.mean_inertia
    with pytest.raises(ValueError, match="cannot make"):
        train_kmeans(x[:5], 8)


# ---------------------------------------------------------------- metrics


def test_purity_and_pnmi_match_hand_computation():
    # phones x (rows) vs units z (columns), 8 frames
    counts = np.array([[3, 1, 0], [0, 2, 2]])
    m = purity_metrics(counts)
    assert m["phone_purity"] == pytest.approx((3 + 2 + 2) / 8)  # sum over units of max over phones
    assert m["cluster_purity"] == pytest.approx((3 + 2) / 8)  # sum over phones of max over units
    # I(x;z) = sum p(x,z) log2 p(x,z) / (p(x) p(z)); p(x) = (1/2, 1/2), p(z) = (3/8, 3/8, 2/8); H(x) = 1 bit
    mi = 3 / 8 * math.log2(2) + 1 / 8 * math.log2(2 / 3) + 2 / 8 * math.log2(4 / 3) + 2 / 8 * math.log2(2)
    assert m["mutual_information_bits"] == pytest.approx(mi)
    assert m["pnmi"] == pytest.approx(mi / 1.0)
    perfect = purity_metrics(np.diag([5, 3, 2]))
    assert perfect["phone_purity"] == perfect["cluster_purity"] == pytest.approx(1.0)
    assert perfect["pnmi"] == pytest.approx(1.0)
    independent = purity_metrics(np.outer([1, 3], [2, 2, 4]))
    assert independent["pnmi"] == pytest.approx(0.0, abs=1e-12)
    assert contingency([0, 1, 1, -1], [2, 0, 0, 1], 2, 3).tolist() == [[0, 0, 1], [2, 0, 0]]
    u = usage_stats(np.array([2, 2, 0, 0]))
    assert (u["used_units"], u["entropy_bits"], u["perplexity"]) == (2, 1.0, 2.0)


def test_phone_alignments_map_to_label_frames():
    inv = PhoneInventory()
    # 50 Hz labels: frame centres at samples 160, 480, 800, 1120; phones cover 0..960
    frames = segments_to_frames([(0, 320, "a"), (320, 960, "b")], 4, 50, inv)
    assert frames.tolist() == [0, 1, 1, -1] and inv.symbols == ["a", "b"]
    # 100 Hz phone labels onto 50 Hz units: centre of unit frame i is phone frame 2i + 1
    assert frame_phones_to_frames(["a", "a", "b", "b", "c"], 3, 50, 100, inv).tolist() == [0, 1, -1]


def test_report_with_phn_files(pipeline, manifest20, tmp_path):
    manifest = read_manifest(manifest20)
    phn_dir = tmp_path / "phn"
    for name, n in zip(manifest.names, manifest.num_samples):  # a fake alignment: 0.1 s phones
        p = (phn_dir / name).with_suffix(".phn")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"{s} {min(s + 1600, n)} p{(s // 1600) % 7}\n" for s in range(0, n, 1600)))
    r = report_mod.main(
        [
            str(pipeline / "feat1_labels/train.km"),
            str(tmp_path / "out"),
            "--label-rate",
            "50",
            "--dict",
            str(pipeline / "feat1_labels/dict.km.txt"),
            "--manifest",
            str(manifest20),
            "--phn-dir",
            str(phn_dir),
        ]
    )
    assert r["n_units"] == K and 1 <= r["used_units"] <= K and 1 <= r["perplexity"] <= K
    assert r["n_phones"] == 7 and 0 < r["pnmi"] < 1 and 0 < r["phone_purity"] <= 1
    assert Path(r["usage_png"]).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "train_km_report.json").read_text())
    assert saved["pnmi"] == pytest.approx(r["pnmi"])


# ---------------------------------------------------------------- layer features of a checkpoint


def test_stock_hubert_layer_dump(tiny_hubert_checkpoint, manifest20, tmp_path):
    import torch

    from fast_hubert_plugin.clustering.extractors import LayerExtractor

    manifest = read_manifest(manifest20)
    lines = manifest20.read_text().splitlines()[:5]  # 4 utterances
    small = tmp_path / "small.tsv"
    small.write_text("\n".join(lines) + "\n")
    dump_mod.main(
        [
            str(small),
            str(tmp_path / "feat"),
            "--feature",
            "layer",
            "--checkpoint",
            str(tiny_hubert_checkpoint),
            "--layer",
            "2",
            "--device",
            "cpu",
        ]
    )
    (shard,) = load_split(tmp_path / "feat", "small")
    assert shard.meta["model"] == "hubert" and shard.meta["frame_rate"] == 50 and shard.feats.shape[1] == 64
    ext = LayerExtractor(str(tiny_hubert_checkpoint), 2)
    for i, n in enumerate(manifest.num_samples[:4]):
        assert shard.lengths[i] == ext.num_frames(n) == (n - 400) // 320 + 1  # 20 ms frames, 25 ms receptive field
    # the stored frames are those of fairseq's extract_features on the layer-normed waveform
    wav = torch.from_numpy(read_audio(manifest.audio_path(1))).view(1, -1)
    with torch.inference_mode():
        ref, _ = ext.model.extract_features(torch.nn.functional.layer_norm(wav, wav.shape), mask=False, output_layer=2)
    np.testing.assert_allclose(list(shard.utterances())[1], ref[0].numpy(), rtol=1e-4, atol=1e-4)
    # labels at the features' own 50 Hz rate, and at 25 Hz (every 2nd frame), both pass the task checks
    learn_mod.main([str(tmp_path / "feat"), "small", str(tmp_path / "km.npy"), "--n-clusters", "5", "--niter", "5"])
    for rate in ("50", "25"):
        s = apply_mod.main(
            [str(tmp_path / "feat"), "small", str(tmp_path / "km.npy"), str(tmp_path / rate), "--label-rate", rate]
        )
        assert s["rows"] == 4 and s["label_rate"] == float(rate)
    with pytest.raises(SystemExit, match=r"100 Hz cannot be made from features at 50 Hz"):
        apply_mod.main(
            [str(tmp_path / "feat"), "small", str(tmp_path / "km.npy"), str(tmp_path / "x"), "--label-rate", "100"]
        )


def test_missing_layer_names_checkpoint_and_range(tiny_hubert_checkpoint, manifest20, tmp_path):
    with pytest.raises(SystemExit, match=r"checkpoint_tiny\.pt.*layer 3 does not exist.*between 1 and 2"):
        dump_mod.main(
            [
                str(manifest20),
                str(tmp_path),
                "--feature",
                "layer",
                "--checkpoint",
                str(tiny_hubert_checkpoint),
                "--layer",
                "3",
                "--device",
                "cpu",
            ]
        )
    with pytest.raises(SystemExit, match=r"nope\.pt.*checkpoint not found"):
        dump_mod.main(
            [
                str(manifest20),
                str(tmp_path),
                "--feature",
                "layer",
                "--checkpoint",
                str(tmp_path / "nope.pt"),
                "--layer",
                "1",
                "--device",
                "cpu",
            ]
        )


@pytest.fixture(scope="module")
def tiny_official_checkpoint(tmp_path_factory):
    """A randomly initialised 2-layer model under the official names (task ``fasthubert_pretraining``,
    model ``fasthubert``), saved as a fairseq checkpoint."""
    import torch
    from fairseq.data import Dictionary

    from fast_hubert_plugin.models.official_names import OfficialFastHubertConfig, OfficialFastHubertModel
    from fast_hubert_plugin.tasks.official_names import OfficialFastHubertPretrainingConfig

    d = tmp_path_factory.mktemp("tiny_official")
    (d / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(10)))
    task_cfg = OfficialFastHubertPretrainingConfig(
        data=str(d), label_dir=str(d), labels=["km"], label_rate=50.0, sample_rate=100
    )
    model_cfg = OfficialFastHubertConfig(
        label_rate=50.0,
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=2,
        conv_channels=32,
        fbank_encoder_dim=16,
        conv_pos=16,
        conv_pos_groups=4,
        predict_layers="[0]",
    )
    torch.manual_seed(0)
    model = OfficialFastHubertModel(model_cfg, [Dictionary.load(str(d / "dict.km.txt"))])
    return save_fairseq_checkpoint(
        d / "checkpoint_official.pt", model, "fasthubert_pretraining", task_cfg, "fasthubert", model_cfg
    )


def test_layer_dump_of_a_checkpoint_under_the_official_names(tiny_official_checkpoint, manifest20, tmp_path):
    """The model is recognised by its class, not its registered name: `fasthubert` takes the fbank path."""
    small = tmp_path / "small.tsv"
    small.write_text("\n".join(manifest20.read_text().splitlines()[:4]) + "\n")  # 3 utterances
    dump_mod.main(
        [
            str(small),
            str(tmp_path / "feat"),
            "--feature",
            "layer",
            "--checkpoint",
            str(tiny_official_checkpoint),
            "--layer",
            "1",
            "--device",
            "cpu",
        ]
    )
    (shard,) = load_split(tmp_path / "feat", "small")
    assert shard.meta["model"] == "fast_hubert" and shard.meta["frame_rate"] == 25 and shard.feats.shape[1] == 64
    manifest = read_manifest(small)
    for i, n in enumerate(manifest.num_samples):
        assert shard.lengths[i] == math.ceil(num_fbank_frames(n) / 4)  # 40 ms frames
