"""Continued pretraining (task.init_from_checkpoint): a new model takes a pretrained checkpoint's encoder
and gets new label heads for the new dictionaries. Unit tests on the checkpoint fixture (a 2-block,
32-dim fast_hubert with a 12-unit dictionary); end to end through fairseq-hydra-train on the tiny model
trained by the `pretrained_tiny` fixture."""

import shutil

import pytest
import torch
from omegaconf import OmegaConf

import fast_hubert_plugin
from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.models.warm_start import HEADS
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask
from fast_hubert_plugin.utils.errors import DataError

from conftest import REPO, read_corpus_tsv, run_hydra_train, train_log_records, write_manifest

FIXTURE = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"


def load(path):
    fast_hubert_plugin.register()  # the fairseq types of the checkpoint are allowlisted
    return torch.load(path, map_location="cpu", weights_only=False)


def new_task(folder, units: int, init=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(units)))
    cfg = FastHubertPretrainingConfig(
        data=str(folder), label_dir=str(folder), labels=["km"], label_rate=50.0, init_from_checkpoint=init, **kw
    )
    return FastHubertPretrainingTask(cfg)


def fixture_model_cfg(**changes):
    cfg = OmegaConf.create(load(FIXTURE)["cfg"]["model"])
    for key, value in changes.items():
        cfg[key] = value
    return cfg


@pytest.mark.parametrize("units", [7, 12])  # another dictionary size, and the fixture's own
def test_the_encoder_is_the_checkpoints_and_the_heads_are_new(tmp_path, units):
    saved = load(FIXTURE)["model"]
    torch.manual_seed(3)
    model = new_task(tmp_path, units, init=str(FIXTURE)).build_model(fixture_model_cfg())
    torch.manual_seed(3)  # the same model built from scratch: its heads are what a new run starts with
    fresh = new_task(tmp_path / "fresh", units, cmvn_stats_path=None).build_model(
        fixture_model_cfg(), from_checkpoint=True
    )
    encoder = [k for k in saved if not k.startswith(HEADS)]
    assert len(encoder) > 20 and "cmvn_mean" in encoder and "mask_emb" in encoder
    for key in encoder:
        assert torch.equal(model.state_dict()[key], saved[key]), key
    assert not torch.equal(model.cmvn_mean, torch.zeros_like(model.cmvn_mean))  # the checkpoint's CMVN
    heads = {k: v for k, v in model.state_dict().items() if k.startswith(HEADS)}
    assert [tuple(v.shape) for k, v in heads.items() if k.endswith("weight")] == [(units + 4, 32)] * 2
    for key, tensor in heads.items():
        assert torch.equal(tensor, fresh.state_dict()[key]), key
        if saved[key].shape == tensor.shape:  # same size: still new, not the old units' heads
            assert not torch.allclose(tensor, saved[key]), key


def test_a_checkpoint_with_the_official_names_starts_it_too(tmp_path):
    state = load(FIXTURE)
    state["cfg"]["model"]["_name"] = "fasthubert"  # the official code's names (models/official_names.py)
    state["cfg"]["model"].update(ils=True, predict_layers="[0]")
    state["cfg"]["task"]["_name"] = "fasthubert_pretraining"
    official = tmp_path / "official.pt"
    torch.save(state, official)
    model = new_task(tmp_path, 5, init=str(official)).build_model(fixture_model_cfg())
    assert torch.equal(model.mask_emb, state["model"]["mask_emb"])
    assert model.label_heads[0].weight.shape == (9, 32)


def test_what_cannot_start_it_fails_with_the_file_and_the_fix(tmp_path, tiny_hubert_checkpoint):
    task = new_task(tmp_path, 5, init=str(tmp_path / "nope.pt"))
    with pytest.raises(DataError, match=r"nope.pt: checkpoint not found"):
        task.build_model(fixture_model_cfg())
    task = new_task(tmp_path, 5, init=str(tiny_hubert_checkpoint))
    with pytest.raises(DataError, match=r"holds a hubert model, not a pretrained fast_hubert"):
        task.build_model(fixture_model_cfg())
    task = new_task(tmp_path, 5, init=str(FIXTURE))
    with pytest.raises(
        DataError, match=r"fast_hubert_tiny.pt: mask_emb is \(32,\) there, \(48,\) in this model. Fix: train with the"
    ):
        task.build_model(fixture_model_cfg(encoder_embed_dim=48))
    with pytest.raises(DataError, match=r"does not fit this one: missing \['encoder.layers.2"):
        task.build_model(fixture_model_cfg(encoder_layers=3))
    fine_tuning = new_task(tmp_path, 5, init=str(FIXTURE), fine_tuning=True)
    with pytest.raises(ValueError, match="fine-tuning starts from model.w2v_path"):
        fine_tuning.build_model(fixture_model_cfg())


def new_audio_and_units(tmp_path, pretraining_data):
    """New audio (so762 dev utterances the tiny model never saw) with new units: 20-means of MFCC,
    not the 50 fbank units it was pretrained on."""
    import faiss
    import numpy as np

    from fast_hubert_plugin.data.manifest import read_manifest
    from fast_hubert_plugin.features import read_audio
    from fast_hubert_plugin.features.mfcc import compute_mfcc

    from conftest import SPEECH_DIR

    d = tmp_path / "new"
    dev = read_corpus_tsv("so762_dev.tsv")
    write_manifest(d / "train.tsv", dev[:12], SPEECH_DIR)
    write_manifest(d / "valid.tsv", dev[12:16], SPEECH_DIR)
    feats = {}
    for split in ("train", "valid"):
        m = read_manifest(d / f"{split}.tsv")
        feats[split] = [compute_mfcc(read_audio(m.audio_path(i))) for i in range(len(m))]
    km = faiss.Kmeans(39, 20, niter=20, seed=1)
    km.train(np.concatenate(feats["train"]).astype(np.float32))
    for split, rows in feats.items():
        lines = [
            " ".join(map(str, km.index.search(np.ascontiguousarray(x[::2], np.float32), 1)[1][:, 0])) for x in rows
        ]
        (d / f"{split}.km").write_text("\n".join(lines) + "\n")
    (d / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(20)))
    shutil.copy(pretraining_data / "cmvn.npz", d / "cmvn.npz")  # read by the fresh model only
    return d


def test_continued_pretraining_starts_below_a_fresh_model_and_resumes_its_own_run(
    pretrained_tiny, pretraining_data, tmp_path
):
    """The README's command on new audio with new units (20 instead of 50): the first losses are lower than
    a fresh model's with the same seed and data; the run starts at update 1 with the warm-up (optimizer,
    schedule and iterator reset), and a restart continues its own checkpoint_last.pt."""
    pretrained = pretrained_tiny[0] / "checkpoints" / "checkpoint_last.pt"
    data = new_audio_and_units(tmp_path, pretraining_data)
    common = [
        f"task.data={data}",
        f"task.label_dir={data}",
        "model.label_rate=50",
        "common.log_interval=1",
        "dataset.validate_interval=1000",
        "dataset.validate_interval_updates=0",
        "checkpoint.save_interval_updates=8",
        "optimization.max_update=8",
    ]
    runs = {}
    for name, extra in (("fresh", []), ("continued", [f"task.init_from_checkpoint={pretrained}"])):
        run_dir = tmp_path / name
        run_dir.mkdir()
        proc = run_hydra_train(config_dir("pretraining"), "fast_hubert_tiny_cpu", run_dir, common + extra)
        runs[name] = (run_dir, proc.stdout + proc.stderr)
    losses = {name: [float(r["loss"]) for r in train_log_records(log)] for name, (_, log) in runs.items()}
    records = train_log_records(runs["continued"][1])
    assert [int(r["num_updates"]) for r in records] == list(range(1, 9))
    assert float(records[0]["lr"]) < float(records[-1]["lr"])  # the warm-up starts again
    assert "continued pretraining: " in runs["continued"][1] and "(units, dim) [(24, 256)]" in runs["continued"][1]
    # the same seed, batches and masks: at every one of the 8 updates the warm start is below the fresh model
    assert len(losses["fresh"]) == len(losses["continued"]) == 8
    assert all(c < f for c, f in zip(losses["continued"], losses["fresh"])), losses

    # a restart loads the run's own checkpoint (update 8), not the pretrained model
    run_dir = runs["continued"][0]
    proc = run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [*common[:-1], "optimization.max_update=10", f"task.init_from_checkpoint={pretrained}"],
    )
    log = proc.stdout + proc.stderr
    assert "@ 8 updates" in log
    assert [int(r["num_updates"]) for r in train_log_records(log)] == [9, 10]
    saved = load(run_dir / "checkpoints" / "checkpoint_last.pt")["model"]
    assert saved["label_heads.0.weight"].shape == (24, 256)
