"""Where a model's CMVN comes from: read once, when the model is built, from the stats file its config
names (a new model) or with the checkpoint's tensors (a restored one); no_pretrained_weights
fine-tuning finds the pretrained statistics by the same reader (models/cmvn.py)."""

import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fast_hubert_plugin.features import cmvn as cmvn_file
from fast_hubert_plugin.features.cmvn import GlobalCMVN
from fast_hubert_plugin.models.checkpoints import load_checkpoint
from fast_hubert_plugin.models.family import fast_hubert_of
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask
from fast_hubert_plugin.utils.errors import DataError

from conftest import REPO, save_fairseq_checkpoint

FIXTURE = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"
TINY = dict(
    label_rate=50.0,
    encoder_layers=1,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=2,
    conv_channels=32,
    fbank_encoder_dim=16,
    conv_pos=8,
    conv_pos_groups=4,
)


def tiny_model_cfg(**kw):
    """A fast_hubert model config as fairseq hands it to the task (an omegaconf node)."""
    return OmegaConf.create({"_name": "fast_hubert", **TINY, **kw})


def pretraining_task(d, **kw):
    kw.setdefault("cmvn_stats_path", str(d / "cmvn.npz"))
    return FastHubertPretrainingTask(
        FastHubertPretrainingConfig(data=str(d), label_dir=str(d), labels=["km"], label_rate=50.0, **kw)
    )


def file_buffers(path):
    stats = GlobalCMVN.load(path)
    return torch.from_numpy(stats.mean), torch.from_numpy(stats.inv_std)


def has_cmvn(model, mean, inv_std) -> bool:
    """The model's CMVN buffers are exactly these (tensors, or one value for every bin)."""
    mean, inv_std = (torch.full((80,), v) if isinstance(v, float) else v for v in (mean, inv_std))
    return torch.equal(model.cmvn_mean, mean) and torch.equal(model.cmvn_inv_std, inv_std)


@pytest.fixture
def data(pretraining_data, tmp_path):
    """The tiny pretraining folder (manifests, labels, cmvn.npz), a private copy."""
    return shutil.copytree(pretraining_data, tmp_path / "data")


@pytest.fixture
def stats_file_opened(monkeypatch):
    """Every stats file GlobalCMVN.load opens from here on."""
    opened = []
    load = GlobalCMVN.load.__func__

    def recording_load(cls, path, expected_dim=None):
        opened.append(str(path))
        return load(cls, path, expected_dim)

    monkeypatch.setattr(cmvn_file.GlobalCMVN, "load", classmethod(recording_load))
    return opened


@pytest.fixture
def new_checkpoint(data, tmp_path):
    """A fast_hubert checkpoint of a model built new by the task (CMVN of data/cmvn.npz), saved as the trainer does."""
    task = pretraining_task(data)
    torch.manual_seed(0)
    model = task.build_model(tiny_model_cfg())
    path = save_fairseq_checkpoint(
        tmp_path / "checkpoint.pt", model, "fast_hubert_pretraining", task.cfg, "fast_hubert", model.cfg
    )
    return path, model


def test_a_new_model_reads_the_stats_file_into_its_buffers(data, stats_file_opened):
    task = pretraining_task(data)
    given = tiny_model_cfg()
    model = task.build_model(given)
    assert stats_file_opened == [str(data / "cmvn.npz")]  # read once
    assert has_cmvn(model, *file_buffers(data / "cmvn.npz"))
    assert model.cfg.cmvn_stats_path == str(data / "cmvn.npz")
    assert "cmvn_stats_path" not in given  # the task built from a copy: the config it was given is unchanged


def test_the_model_config_may_name_the_stats_file_itself(data, tmp_path):
    other = GlobalCMVN(np.full(80, 2.0), np.full(80, 4.0))
    other.save(tmp_path / "other.npz")
    model = pretraining_task(data, cmvn_stats_path=None).build_model(
        tiny_model_cfg(cmvn_stats_path=str(tmp_path / "other.npz"))
    )
    assert has_cmvn(model, 2.0, 0.25)


@pytest.mark.parametrize("which", ["new", "committed"])
def test_a_restored_model_never_opens_the_stats_file(which, new_checkpoint, data, stats_file_opened):
    """The buffers come with the checkpoint's tensors: the stats file named in its config may be gone."""
    path = new_checkpoint[0] if which == "new" else FIXTURE  # committed: saved before models/cmvn.py existed
    (data / "cmvn.npz").unlink()
    model, cfg, _ = load_checkpoint(path)
    saved = torch.load(path, map_location="cpu", weights_only=False)["model"]
    assert stats_file_opened == []
    assert has_cmvn(model, saved["cmvn_mean"], saved["cmvn_inv_std"])
    assert model.cmvn_mean.abs().sum() > 0
    if which == "new":
        assert cfg.task.cmvn_stats_path == str(data / "cmvn.npz") and model.cfg.cmvn_stats_path is None


def finetuning_ctc_cfg(data, w2v_path, **task_kw):
    """A hubert_ctc model config over ``w2v_path`` with no_pretrained_weights, and its fine-tuning task."""
    (data / "dict.ltr.txt").write_text("".join(f"{c} 1\n" for c in "|ETAOINSHR"))
    task_cfg = FastHubertPretrainingConfig(
        data=str(data), label_dir=str(data), labels=["ltr"], fine_tuning=True, **task_kw
    )
    root = OmegaConf.create(
        {
            "task": OmegaConf.to_container(OmegaConf.structured(task_cfg)),
            "model": {"_name": "hubert_ctc", "w2v_path": str(w2v_path), "no_pretrained_weights": True},
        }
    )
    return FastHubertPretrainingTask(task_cfg), root.model


def test_no_pretrained_weights_finetuning_gets_the_pretrained_buffers(new_checkpoint, data, stats_file_opened):
    path, pretrained = new_checkpoint
    (data / "cmvn.npz").unlink()  # the pretraining stats file is not needed: the checkpoint's buffers are read
    task, ctc_cfg = finetuning_ctc_cfg(data, path)
    inner = fast_hubert_of(task.build_model(ctc_cfg))
    assert not torch.equal(inner.mask_emb, pretrained.mask_emb)  # weights not restored
    assert has_cmvn(inner, pretrained.cmvn_mean, pretrained.cmvn_inv_std)
    assert stats_file_opened == []


def test_no_pretrained_weights_finetuning_takes_the_finetuning_stats_file_when_set(new_checkpoint, data, tmp_path):
    GlobalCMVN(np.full(80, 2.0), np.full(80, 4.0)).save(tmp_path / "other.npz")
    task, ctc_cfg = finetuning_ctc_cfg(data, new_checkpoint[0], cmvn_stats_path=str(tmp_path / "other.npz"))
    inner = fast_hubert_of(task.build_model(ctc_cfg))
    assert has_cmvn(inner, 2.0, 0.25)


def test_no_pretrained_weights_without_any_statistics_is_a_clear_error(new_checkpoint, data, tmp_path):
    state = torch.load(new_checkpoint[0], map_location="cpu", weights_only=False)
    del state["model"]["cmvn_mean"], state["model"]["cmvn_inv_std"]
    torch.save(state, tmp_path / "no_cmvn.pt")
    task, ctc_cfg = finetuning_ctc_cfg(data, tmp_path / "no_cmvn.pt")
    with pytest.raises(
        DataError, match=r"no_cmvn.pt: holds no CMVN statistics \(cmvn_mean, cmvn_inv_std\).*stats_path"
    ):
        task.build_model(ctc_cfg)
