"""`--workers N` computes the features of a manifest's rows in N processes: the CLIs that read every
row's audio (fast-hubert-cmvn, fast-hubert-store-fbank, fast-hubert-dump) write with 2 workers exactly
what they write with one, row for row in manifest order."""

import numpy as np
import pytest

from fast_hubert_plugin.cli import cmvn as cmvn_cli
from fast_hubert_plugin.cli import store_fbank as store_cli
from fast_hubert_plugin.clustering import dump as dump_cli
from fast_hubert_plugin.clustering.feature_shards import load_split
from fast_hubert_plugin.data.feature_store import store_paths

from conftest import read_corpus_tsv, write_manifest


@pytest.fixture(scope="module")
def manifest(speech_root, tmp_path_factory):
    """21 utterances of unequal lengths: more rows than the workers' chunks (4 and 8 rows), so a
    reordering of the chunks moves rows of other lengths."""
    rows = read_corpus_tsv("so762_train.tsv")[:18] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:3]
    assert len({r["num_samples"] for r in rows}) > 15
    return write_manifest(tmp_path_factory.mktemp("workers") / "train.tsv", rows, speech_root)


def cmvn_arrays(manifest, out, workers):
    cmvn_cli.main([str(manifest), "--output", str(out / "cmvn.npz"), "--workers", str(workers)])
    with np.load(out / "cmvn.npz") as z:
        return {k: z[k] for k in z.files}


def store_arrays(manifest, out, workers):
    store_cli.main([str(manifest), "--output-dir", str(out), "--workers", str(workers)])
    feats, lengths = store_paths(out, "train")
    return {"fbank": np.load(feats), "lengths": np.load(lengths)}


def dump_arrays(manifest, out, workers):
    dump_cli.main([str(manifest), str(out), "--feature", "mfcc", "--workers", str(workers)])
    (shard,) = load_split(out, "train")
    return {"mfcc": np.asarray(shard.feats), "lengths": np.asarray(shard.lengths)}


@pytest.mark.parametrize("write", [cmvn_arrays, store_arrays, dump_arrays], ids=["cmvn", "store-fbank", "dump"])
def test_two_workers_write_what_one_writes(manifest, tmp_path, write):
    one = write(manifest, tmp_path / "one", 1)
    two = write(manifest, tmp_path / "two", 2)
    assert sorted(one) == sorted(two) and all(v.size for v in one.values())
    for key in one:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    if "lengths" in one:
        assert len(one["lengths"]) == 21 and len(set(one["lengths"].tolist())) > 15
