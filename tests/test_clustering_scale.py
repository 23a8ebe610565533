"""The clustering stage at corpus scale: a sampled dump for k-means, labels computed on the fly equal to
dump-then-apply, shards that give the labels of one job, float16 dumps, and long recordings in pieces."""

import json
import math

import numpy as np
import pytest

from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.clustering import label as label_mod
from fast_hubert_plugin.clustering import learn as learn_mod
from fast_hubert_plugin.clustering.feature_shards import load_split
from fast_hubert_plugin.clustering.kmeans import CentroidIndex
from fast_hubert_plugin.data.feature_store import FrameWriter
from fast_hubert_plugin.data.manifest import read_manifest
from fast_hubert_plugin.features.audio import read_audio
from fast_hubert_plugin.features.kaldi_fbank import compute_fbank
from fast_hubert_plugin.models.frame_features import Chunking, load_model_features
from fast_hubert_plugin.utils.errors import DataError

from conftest import REPO, read_corpus_tsv, write_manifest

TINY_CHECKPOINT = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"  # 2 blocks x 32, random weights


@pytest.fixture(scope="module")
def manifest16(speech_root, tmp_path_factory):
    """16 real utterances (12 so762 + 4 LibriSpeech, 2-16 s) as a fairseq manifest."""
    rows = read_corpus_tsv("so762_train.tsv")[:12] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:4]
    return write_manifest(tmp_path_factory.mktemp("m16") / "train.tsv", rows, speech_root)


def read(path):
    return path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- sample + on the fly == dump + apply


@pytest.mark.parametrize(
    "source, rate",
    [
        (["--feature", "mfcc"], "50"),
        # layer 2 of a fast_hubert checkpoint, long utterances in 3 s pieces with 1 s of context either side;
        # one utterance per forward pass (--batch-seconds below the shortest, 2 s): a layer in a padded batch
        # moves with its company at float rounding (clustering/README.md), and 2 shards batch other company
        # than 1, so equality with larger batches would rest on no frame sitting on a near tie on this CPU
        (["--feature", "layer", "--checkpoint", str(TINY_CHECKPOINT), "--layer", "2", "--device", "cpu",
          "--batch-seconds", "1", "--chunk-seconds", "3", "--chunk-context-seconds", "1"], "25"),
    ],
    ids=["mfcc", "fast_hubert_layer"],
)  # fmt: skip
def test_labels_on_the_fly_equal_dump_then_apply(manifest16, tmp_path, source, rate):
    m = str(manifest16)
    dump_mod.main([m, str(tmp_path / "sample"), *source, "--sample-fraction", "0.25", "--nshard", "2", "--rank", "0"])
    dump_mod.main([m, str(tmp_path / "sample"), *source, "--sample-fraction", "0.25", "--nshard", "2", "--rank", "1"])
    learn_mod.main([str(tmp_path / "sample"), "train", str(tmp_path / "km.npy"), "--n-clusters", "8", "--niter", "5"])
    km = str(tmp_path / "km.npy")

    dump_mod.main([m, str(tmp_path / "full"), *source])
    apply_mod.main([str(tmp_path / "full"), "train", km, str(tmp_path / "applied"), "--label-rate", rate])
    one = label_mod.main([m, km, str(tmp_path / "fly1"), *source, "--label-rate", rate])
    assert one["merged"] and one["rows"] == 16 and one["label_rate"] == float(rate)
    first = label_mod.main(
        [m, km, str(tmp_path / "fly2"), *source, "--label-rate", rate, "--nshard", "2", "--rank", "1"]
    )
    assert not first["merged"] and first["waiting_for"] == [0] and not (tmp_path / "fly2" / "train.km").exists()
    label_mod.main([m, km, str(tmp_path / "fly2"), *source, "--label-rate", rate, "--nshard", "2", "--rank", "0"])

    applied = read(tmp_path / "applied" / "train.km")
    assert len(set(applied.split())) > 1
    for out in ("fly1", "fly2"):  # exactly the labels and dictionary of dump-then-apply
        assert read(tmp_path / out / "train.km") == applied
        assert read(tmp_path / out / "dict.km.txt") == read(tmp_path / "applied" / "dict.km.txt")
    (full,) = load_split(tmp_path / "full", "train")
    assert full.meta["dtype"] == "float32" and not full.meta["sample"]


def test_a_sampled_dump_keeps_the_same_utterances_however_sharded(manifest16, tmp_path):
    m = str(manifest16)
    dump_mod.main([m, str(tmp_path / "one"), "--feature", "mfcc", "--sample-fraction", "0.3", "--sample-seed", "4"])
    for r in range(3):
        dump_mod.main(
            [m, str(tmp_path / "three"), "--feature", "mfcc", "--sample-fraction", "0.3", "--sample-seed", "4"]
            + ["--nshard", "3", "--rank", str(r)]
        )
    one, three = load_split(tmp_path / "one", "train"), load_split(tmp_path / "three", "train")
    lengths = np.concatenate([s.lengths for s in three])
    np.testing.assert_array_equal(one[0].lengths, lengths)
    np.testing.assert_array_equal(one[0].feats, np.concatenate([s.feats for s in three]))
    kept = np.nonzero(lengths)[0]
    assert kept.tolist() == dump_mod.sampled_rows(16, 0.3, 4).tolist() and len(kept) == math.ceil(0.3 * 16)
    full = dump_mod.dump_split(manifest16, tmp_path / "full", "mfcc", progress=False)
    (full,) = load_split(tmp_path / "full", "train")
    for i in kept:  # the sampled rows hold exactly the full dump's frames
        a, b = full.offsets[i], full.offsets[i + 1]
        np.testing.assert_array_equal(one[0].feats[one[0].offsets[i] : one[0].offsets[i + 1]], full.feats[a:b])
    assert one[0].meta["sample"] == {"fraction": 0.3, "seed": 4, "rows": len(kept)}
    with pytest.raises(DataError, match="sample of the utterances.*fast-hubert-label"):
        apply_mod.apply_kmeans(tmp_path / "one", "train", tmp_path / "km.npy", tmp_path / "lab", progress=False)
    with pytest.raises(SystemExit, match=r"--sample-fraction must be in \(0, 1\]"):
        dump_mod.main([m, str(tmp_path / "x"), "--feature", "mfcc", "--sample-fraction", "0"])


def test_label_help_explains_its_files(capsys):
    with pytest.raises(SystemExit) as e:
        label_mod.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(w in out for w in ["{split}_{R}_{N}.{label}.json", "--nshard", "dict.{label}.txt"])


# ---------------------------------------------------------------- shards of the labelling: resume, refuse, merge


def test_label_shards_resume_and_refuse_other_settings(manifest16, tmp_path, monkeypatch):
    m, km = str(manifest16), str(tmp_path / "km.npy")
    rng = np.random.default_rng(0)
    np.save(km, rng.normal(size=(6, 39)).astype(np.float32) * 10)
    args = [m, km, str(tmp_path / "lab"), "--feature", "mfcc", "--nshard", "2"]
    label_mod.main(args + ["--rank", "0"])
    label_mod.main(args + ["--rank", "1"])
    merged = read(tmp_path / "lab" / "train.km")
    part = tmp_path / "lab" / "train_0_2.km.json"
    meta = json.loads(read(part))
    assert meta["rows"] == [0, 8] and sum(meta["counts"]) == sum(len(line.split()) for line in merged.splitlines()[:8])

    # a finished shard is not recomputed; its job only merges again
    monkeypatch.setattr(label_mod, "build_extractor", lambda *a, **k: pytest.fail("finished shard recomputed"))
    again = label_mod.main(args + ["--rank", "0"])
    assert again["skipped"] and again["merged"] and read(tmp_path / "lab" / "train.km") == merged
    # other centroids, same file name: refused, never mixed
    np.save(km, rng.normal(size=(6, 39)).astype(np.float32))
    with pytest.raises(SystemExit, match=r"train_0_2\.km\.json.*other settings.*centroids_sha1"):
        label_mod.main(args + ["--rank", "0"])
    monkeypatch.undo()
    # relabelled with them, shard 0 no longer goes with shard 1: the merge refuses, and the split's files
    # from the old shards are gone
    with pytest.raises(SystemExit, match=r"train_1_2\.km\.json: shard made with other settings"):
        label_mod.main(args + ["--rank", "0", "--overwrite"])
    assert not (tmp_path / "lab" / "train.km").exists() and not (tmp_path / "lab" / "dict.km.txt").exists()
    # a shard killed before its .json is not finished: its job labels it again, and the last job merges
    label_mod.main(args + ["--rank", "1", "--overwrite"])
    part.unlink()
    rerun = label_mod.main(args + ["--rank", "0"])
    assert not rerun["skipped"] and rerun["merged"] and read(tmp_path / "lab" / "train.km") != merged
    label_mod.main([m, km, str(tmp_path / "one"), "--feature", "mfcc"])
    assert read(tmp_path / "lab" / "train.km") == read(tmp_path / "one" / "train.km")


def test_labels_are_checked_like_the_task_checks_them(manifest16, tmp_path):
    km = tmp_path / "km.npy"
    np.save(km, np.zeros((4, 80), np.float32))
    with pytest.raises(SystemExit, match=r"km\.npy.*dim 80.*mfcc features have dim 39"):
        label_mod.main([str(manifest16), str(km), str(tmp_path / "lab"), "--feature", "mfcc"])
    np.save(km, np.zeros((4, 39), np.float32))
    with pytest.raises(SystemExit, match=r"30 Hz cannot be made from features at 100 Hz"):
        label_mod.main([str(manifest16), str(km), str(tmp_path / "lab"), "--feature", "mfcc", "--label-rate", "30"])
    lines = read(manifest16).splitlines()
    path, n = lines[3].split("\t")
    lines[3] = f"{path}\t{int(n) + 1600}"
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit, match=r"bad\.tsv, line 4"):
        label_mod.main([str(bad), str(km), str(tmp_path / "lab"), "--feature", "mfcc"])
    assert not (tmp_path / "lab").exists() or not list((tmp_path / "lab").iterdir())


# ---------------------------------------------------------------- nearest centroid: one unit per frame


def test_a_frames_unit_does_not_depend_on_its_batch():
    rng = np.random.default_rng(1)
    centroids = rng.normal(size=(50, 64)).astype(np.float32)
    # frames exactly between two centroids (true ties) and within float32 rounding of a tie
    mid = (centroids[rng.integers(50, size=300)] + centroids[rng.integers(50, size=300)]) / 2
    near = mid + rng.normal(scale=1e-6, size=mid.shape).astype(np.float32)
    x = np.concatenate([rng.normal(size=(2000, 64)), mid, near]).astype(np.float32)
    index = CentroidIndex(centroids)
    units, dists = index.assign(x)
    x64, c64 = x.astype(np.float64), centroids.astype(np.float64)
    exact = ((x64[:, None, :] - c64[None]) ** 2).sum(-1)
    best = exact.min(1)
    assert (exact[np.arange(len(x)), units] - best <= 1e-9 * (1 + best)).all()  # the nearest, in float64
    np.testing.assert_allclose(dists, best, rtol=1e-4, atol=1e-3)
    assert index.rechecked >= 300  # the ties were settled in float64
    for batch in (1, 5, 19, 21, 700):  # FAISS searches under 20 frames another way than larger batches
        np.testing.assert_array_equal(CentroidIndex(centroids).assign(x, batch)[0], units)
    twins = np.concatenate([centroids[:3], centroids[:3]])  # duplicated centroids: the lower unit wins
    np.testing.assert_array_equal(CentroidIndex(twins).assign(centroids[:3])[0], [0, 1, 2])


# ---------------------------------------------------------------- float16 dumps


def test_a_float16_dump_is_the_float32_one_rounded(manifest16, tmp_path):
    m = str(manifest16)
    dump_mod.main([m, str(tmp_path / "f32"), "--feature", "mfcc"])
    dump_mod.main([m, str(tmp_path / "f16"), "--feature", "mfcc", "--dtype", "float16"])
    (f32,), (f16,) = load_split(tmp_path / "f32", "train"), load_split(tmp_path / "f16", "train")
    assert f16.feats.dtype == np.float16 and f16.meta["dtype"] == "float16"
    np.testing.assert_array_equal(f16.feats, f32.feats.astype(np.float16))
    assert f16.paths.npy.stat().st_size - 128 == (f32.paths.npy.stat().st_size - 128) // 2  # .npy header: 128 bytes
    # k-means and labels read it as float32
    learn_mod.main([str(tmp_path / "f16"), "train", str(tmp_path / "km.npy"), "--n-clusters", "8", "--niter", "5"])
    s = apply_mod.main([str(tmp_path / "f16"), "train", str(tmp_path / "km.npy"), str(tmp_path / "lab")])
    assert s["rows"] == 16 and s["used_clusters"] == 8
    with pytest.raises(DataError, match=r"big\.npy.*row 1 has values up to 7e\+04, beyond float16's range"):
        with FrameWriter(tmp_path / "big.npy", [2, 2], 3, "float16") as w:
            w.write(0, np.ones((2, 3)))
            w.write(1, np.full((2, 3), 7e4))
    assert not (tmp_path / "big.npy").exists()


# ---------------------------------------------------------------- long recordings in pieces


@pytest.fixture(scope="module")
def long_wav(manifest16):
    """About 80 s of real speech: the 16 utterances end to end."""
    m = read_manifest(manifest16)
    return np.concatenate([read_audio(m.audio_path(i)) for i in range(len(m))])


def test_the_fbank_in_pieces_is_the_fbank_of_the_whole(long_wav):
    whole = compute_fbank(long_wav, chunk_frames=10**9)
    assert whole.shape[0] > 7000
    for chunk in (1000, 777):  # windows overlap by 240 samples: each frame sees its own 400 samples
        np.testing.assert_array_equal(compute_fbank(long_wav, chunk_frames=chunk), whole)


def test_chunk_windows_cover_every_frame_once():
    chunking = Chunking(seconds=4, context_seconds=1)
    windows = list(chunking.windows(250, frame_rate=25))  # 10 s at 25 Hz: pieces of 100 frames, 25 either side
    assert windows == [(0, 100, 0, 25), (100, 100, 25, 25), (200, 50, 25, 0)]
    assert list(chunking.windows(100, frame_rate=25)) == [(0, 100, 0, 0)]
    assert list(Chunking(4, 0).windows(201, 25)) == [(0, 100, 0, 0), (100, 100, 0, 0), (200, 1, 0, 0)]


@pytest.mark.parametrize("model", ["fast_hubert", "hubert"])
def test_a_long_recording_runs_in_pieces(model, long_wav, tiny_hubert_checkpoint):
    checkpoint = TINY_CHECKPOINT if model == "fast_hubert" else tiny_hubert_checkpoint
    features = load_model_features(str(checkpoint), "cpu")
    layer = features.num_layers
    wav = long_wav[: 30 * 16000]  # 30 s
    whole = features.layer_batch([wav], layer, Chunking(seconds=1000))[0]
    assert whole.shape[0] == features.num_frames(len(wav))
    # pieces that see everything on either side are the whole: the pieces' frames line up exactly
    np.testing.assert_array_equal(features.layer_batch([wav], layer, Chunking(7, 1000))[0], whole)
    # without context the frames still line up (one per frame of the whole); what changes is the context
    cut = features.layer_batch([wav], layer, Chunking(7, 0))[0]
    assert cut.shape == whole.shape
    assert not np.allclose(cut, whole, atol=1e-3)
