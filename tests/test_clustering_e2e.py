"""End to end: manifest -> MFCC -> k-means (K=20) -> 50 Hz labels -> `fairseq-hydra-train` with the
plugin for 2 updates -> layer features of the checkpoint it wrote (the next HuBERT iteration)."""

import subprocess
import sys

import numpy as np
import pytest

from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.clustering import learn as learn_mod
from fast_hubert_plugin.clustering.feature_shards import load_split
from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.data.manifest import read_manifest

from conftest import REPO, run_hydra_train, train_log_records


def test_labels_from_the_clustering_clis_train_fast_hubert(small_manifests, tmp_path):
    data, feats, labels = small_manifests, tmp_path / "feats", tmp_path / "labels"
    for split in ("train", "valid"):
        dump_mod.main([str(data / f"{split}.tsv"), str(feats), "--feature", "mfcc"])
    learn_mod.main([str(feats), "train", str(tmp_path / "km.npy"), "--n-clusters", "20", "--niter", "20"])
    for split in ("train", "valid"):
        apply_mod.main([str(feats), split, str(tmp_path / "km.npy"), str(labels), "--label-rate", "50"])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fast_hubert_plugin.cli.cmvn",
            str(data / "train.tsv"),
            "--output",
            str(tmp_path / "cmvn.npz"),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [
            f"task.data={data}",
            f"task.label_dir={labels}",
            'task.labels=["km"]',
            "model.label_rate=50",
            f"task.cmvn_stats_path={tmp_path / 'cmvn.npz'}",
            "optimization.max_update=2",
            "common.log_interval=1",
            "dataset.validate_interval=1000",
            "dataset.validate_interval_updates=0",
        ],
    )
    assert proc.returncode == 0
    assert [int(r["num_updates"]) for r in train_log_records(proc.stdout + proc.stderr)][-1] == 2
    ckpt = run_dir / "checkpoints" / "checkpoint_last.pt"
    assert ckpt.is_file()

    # iteration 2: layer features of that checkpoint; batched (padded) == one utterance at a time
    valid = data / "valid.tsv"
    dump_mod.main(
        [
            str(valid),
            str(tmp_path / "l_batched"),
            "--feature",
            "layer",
            "--checkpoint",
            str(ckpt),
            "--layer",
            "2",
            "--device",
            "cpu",
            "--batch-seconds",
            "60",
        ]
    )
    dump_mod.main(
        [
            str(valid),
            str(tmp_path / "l_single"),
            "--feature",
            "layer",
            "--checkpoint",
            str(ckpt),
            "--layer",
            "2",
            "--device",
            "cpu",
            "--batch-seconds",
            "0.1",
        ]
    )
    (batched,), (single,) = load_split(tmp_path / "l_batched", "valid"), load_split(tmp_path / "l_single", "valid")
    assert batched.meta["model"] == "fast_hubert" and batched.meta["frame_rate"] == 25 and batched.meta["dim"] == 256
    m = read_manifest(valid)
    assert batched.lengths.tolist() == [-(-((n - 400) // 160 + 1) // 4) for n in m.num_samples]
    np.testing.assert_allclose(batched.feats, single.feats, rtol=1e-4, atol=1e-4)
    learn_mod.main(
        [str(tmp_path / "l_batched"), "valid", str(tmp_path / "km2.npy"), "--n-clusters", "8", "--niter", "5"]
    )
    s = apply_mod.main([str(tmp_path / "l_batched"), "valid", str(tmp_path / "km2.npy"), str(tmp_path / "labels2")])
    assert s["label_rate"] == 25 and s["rows"] == len(m)
    with pytest.raises(SystemExit, match="50 Hz cannot be made from features at 25 Hz"):
        apply_mod.main(
            [str(tmp_path / "l_batched"), "valid", str(tmp_path / "km2.npy"), str(tmp_path / "x"), "--label-rate", "50"]
        )
