"""End to end: manifest -> MFCC -> k-means (K=20) -> 50 Hz labels -> `fairseq-hydra-train` with the
plugin for 2 updates -> layer features of the checkpoint it wrote (the next HuBERT iteration)."""

import os
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

from conftest import BIN, REPO, read_corpus_tsv, run_hydra_train, train_log_records, write_manifest


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


# A stand-in for sbatch: runs the --wrap command once per --array index (SLURM_ARRAY_TASK_ID set), in
# submission order, which the example's --dependency chain makes the order SLURM would run them in.
FAKE_SBATCH = """#!/usr/bin/env python3
import os, subprocess, sys
args = sys.argv[1:]
assert "--parsable" in args and "--job-name" in args
wrap = args[args.index("--wrap") + 1]
array = [a.split("=", 1)[1] for a in args if a.startswith("--array=")]
first, last = map(int, array[0].split("-")) if array else (None, None)
for rank in range(first, last + 1) if array else [None]:
    env = dict(os.environ, **({} if rank is None else {"SLURM_ARRAY_TASK_ID": str(rank)}))
    subprocess.run(["/bin/sh", "-c", wrap], env=env, check=True)
print(os.getpid())
"""


def test_the_slurm_example_with_2_shards_gives_the_labels_of_1(speech_root, tmp_path):
    """examples/slurm/cluster_labels.sh (sampled dump -> k-means -> labels on the fly, one job per shard) on a
    fast_hubert layer, run one utterance per forward pass (a padded batch moves a layer's values by float
    rounding with the company it keeps): 2 shards and 1 give the same centroids and the same label files."""
    rows = read_corpus_tsv("so762_train.tsv")[:10] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:2]
    data = write_manifest(tmp_path / "data" / "train.tsv", rows, speech_root).parent
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(0o755)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", SBATCH=str(sbatch), SPLITS="train")
    env.update(N_CLUSTERS="8", SAMPLE_FRACTION="0.5", OMP_NUM_THREADS="1")
    checkpoint = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"
    features = ["--feature", "layer", "--checkpoint", str(checkpoint), "--layer", "2", "--device", "cpu"]
    for n in (1, 2):
        proc = subprocess.run(
            ["bash", str(REPO / "examples" / "slurm" / "cluster_labels.sh"), str(data), str(tmp_path / f"n{n}")]
            + features
            + ["--batch-seconds", "0.01"],
            env=dict(env, NSHARD=str(n)),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert proc.stdout.count("submitted: sample") == 1
    assert sorted(p.name for p in (tmp_path / "n2" / "sample").glob("*.len")) == ["train_0_2.len", "train_1_2.len"]
    assert sorted(p.name for p in (tmp_path / "n2" / "labels").glob("train_*.km")) == ["train_0_2.km", "train_1_2.km"]
    np.testing.assert_array_equal(np.load(tmp_path / "n1" / "km.npy"), np.load(tmp_path / "n2" / "km.npy"))
    for name in ("train.km", "dict.km.txt"):
        one, two = ((tmp_path / f"n{n}" / "labels" / name).read_text() for n in (1, 2))
        assert one == two and len(one.splitlines()) >= 8, name
    lines = (tmp_path / "n2" / "labels" / "train.km").read_text().splitlines()
    m = read_manifest(data / "train.tsv")
    assert [len(line.split()) for line in lines] == [-(-((n - 400) // 160 + 1) // 4) for n in m.num_samples]  # 25 Hz
    assert len({u for line in lines for u in line.split()}) > 1


def test_the_labels_at_scale_benchmark_writes_its_three_records(speech_root, tmp_path):
    """benchmarks/labels_at_scale.py on the fixtures with the tiny checkpoint (its numbers live in
    benchmarks/results; here: every part runs, and what is exact by construction is so in its records)."""
    checkpoint = str(REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt")
    cmd = [sys.executable, str(REPO / "benchmarks" / "labels_at_scale.py"), "--speech-dir", str(speech_root)]
    cmd += ["--checkpoint", checkpoint, "--long-checkpoint", checkpoint, "--layer", "2", "--long-layer", "2"]
    cmd += ["--minutes", "0.5", "--long-minutes", "0.5", "--piece-seconds", "10", "--clusters", "8"]
    cmd += [
        "--fixture-clusters",
        "8",
        "--seeds",
        "2",
        "--work-dir",
        str(tmp_path / "work"),
        "--output-dir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    def cells(name, first):
        text = (tmp_path / name).read_text()
        assert (
            "Reproduce: `python benchmarks/labels_at_scale.py --speech-dir SPEECH_DIR --checkpoint CHECKPOINT" in text
        )
        return [
            [c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith(f"| {first}")
        ]

    scale = {
        (r[0], r[1]): r for r in cells("labels_at_scale_cpu.md", "full") + cells("labels_at_scale_cpu.md", "sample")
    }
    f32, f16, sample, labels = (
        float(scale[key][6])  # MB per audio-hour
        for key in [
            ("full dump (float32)", "fast-hubert-dump"),
            ("full dump (float16)", "fast-hubert-dump --dtype float16"),
            ("sample + on the fly", "fast-hubert-dump --sample-fraction 0.1"),
            ("sample + on the fly", "fast-hubert-label"),
        ]
    )
    assert 0.49 < f16 / f32 < 0.51 and sample < 0.5 * f32 and labels > 0
    precision = cells("dump_float16_cpu.md", "mfcc") + cells("dump_float16_cpu.md", "fbank")
    assert [r[1] for r in precision] == ["float32", "float16"] * 2 and all(float(r[3]) > 0 for r in precision)
    long = cells("long_recording_cpu.md", "fbank") + cells("long_recording_cpu.md", "layer")
    assert (
        long[1][1] == "pieces of 6000 frames" and long[1][7] == "0.00e+00 (max 0)"
    )  # the fbank in pieces is the whole's
    pieces = [r for r in long if r[0] == "layer 2, trained" and r[1].startswith("pieces of 10 s")]
    assert len(pieces) == 2 and all(0 < float(r[8]) <= 1 for r in pieces)
