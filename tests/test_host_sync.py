"""A training step queues its device work without waiting for it: no call in the model's forward and
backward or in the criterion reads a value or a data-dependent size from the device. Counted on the
CPU by tests/sync_counter.py (the GPU record checks the same with torch.cuda.set_sync_debug_mode)."""

import shutil

import pytest
import torch
from sync_counter import SyncCounter
from test_span_masks import MASK_FIELDS, model_cfg

from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion

from test_data import make_task


def step_model_cfg():
    """A small model with everything a Base step runs: dropout, layerdrop, ILS, span masks of 10 frames."""
    return model_cfg(
        encoder_layers=3, supervised_layers="[2]", encoder_layerdrop=0.3, dropout=0.1, attention_dropout=0.1
    )


@pytest.fixture(scope="module")
def two_label_sets(pretraining_data, tmp_path_factory):
    """The tiny pretraining data with a second label set, ``km2`` (the same units)."""
    d = tmp_path_factory.mktemp("sync") / "data"
    shutil.copytree(pretraining_data, d)
    for name in ("train.km", "valid.km", "dict.km.txt"):
        shutil.copy(d / name, d / name.replace("km", "km2"))
    return d


def loader_batch(data, pad_audio: bool, labels=("km", "km2")):
    """A model built by the task (which hands its mask geometry to the datasets) and a training batch of
    4 real utterances collated by the dataset, as a loader worker collates it."""
    task = make_task(data, pad_audio=pad_audio)
    task.cfg.labels = list(labels)
    task.load_dataset("train")
    torch.manual_seed(0)
    model = task.build_model(step_model_cfg())
    ds = task.datasets["train"]
    ds.set_seed(3)
    batch = ds.collater([ds[i] for i in (0, 9, 17, 30)])
    return model, batch


def step(model, batch, bf16: bool):
    """Forward, criterion and backward of one training step, as fairseq's trainer runs them."""
    model.train()
    crit = FastHubertCriterion(None, pred_masked_weight=1.0, pred_nomask_weight=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, sample_size, log = crit(model, batch)
    (loss / sample_size).backward()
    return loss, sample_size, log


@pytest.mark.parametrize("pad_audio,bf16", [(False, False), (True, False), (False, True)])
def test_a_training_step_never_waits_for_the_device(two_label_sets, pad_audio, bf16):
    model, batch = loader_batch(two_label_sets, pad_audio)
    assert (batch["net_input"]["padding_mask"] is not None) == pad_audio
    with SyncCounter() as sync:
        loss, sample_size, log = step(model, batch, bf16)
    assert sync.events == [], sync.events
    # the step did the work: 2 label sets x 2 supervised blocks, masked and unmasked frames, every parameter
    masked, unmasked = (batch["net_input"][k].numel() for k in ("masked_frames", "unmasked_frames"))
    assert masked > 0 and unmasked > 0 and sample_size == 4 * (masked + unmasked)
    assert log["count_m_t0_L2"] == masked and log["count_u_t1_L3"] == unmasked
    assert torch.isfinite(loss) and log["loss"].requires_grad is False
    assert model.mask_emb.grad.abs().sum() > 0 and all(h.weight.grad.abs().sum() > 0 for h in model.label_heads)


def test_a_batch_without_the_loaders_masks_is_masked_on_the_host(two_label_sets):
    """The model's fallback for such batches (probes, direct calls) draws the same masks on the host and
    copies them over: the counter sees those copies, so it does watch this step."""
    model, batch = loader_batch(two_label_sets, pad_audio=True)
    for key in MASK_FIELDS:
        del batch["net_input"][key]
    with SyncCounter() as sync:
        step(model, batch, bf16=False)
    assert sync.counts()["Tensor.cpu"] >= 3, sync.events  # the padding mask, the keys, the time mask


def test_the_counter_catches_each_kind_of_synchronisation():
    x = torch.randn(4, 6, requires_grad=True)
    mask = torch.arange(24).reshape(4, 6) % 3 == 0
    repeats = torch.tensor([1, 2, 3])
    with SyncCounter() as sync:
        y = x * 2
        y.sum().item()
        bool(y.sum() > 0)
        if y.detach().any():
            int(y[0, 0])
        y.detach().tolist()
        y.detach().cpu()
        y.detach().numpy()
        y.nonzero()
        y.masked_select(mask)
        torch.unique(y)
        torch.arange(3, device=x.device).repeat_interleave(repeats)
        y[mask].sum().backward()  # t[mask] forwards, and its backward
        z = y.detach().clone()
        z[mask] = 1.0
    assert sync.counts() == {
        "_local_scalar_dense": 4,
        "Tensor.tolist": 1,
        "Tensor.cpu": 1,
        "Tensor.numpy": 1,
        "nonzero": 1,
        "masked_select": 1,
        "_unique2": 1,
        "repeat_interleave without output_size": 1,
        "index with a boolean mask": 1,
        "index_put with a boolean mask": 1,
        "index_put_ with a boolean mask": 1,
    }, sync.events
    assert all(where.startswith("test_host_sync.py:") for _, where in sync.events)


def test_the_counter_leaves_host_tensors_and_sync_free_ops_alone():
    """What a GPU step may do: read a number drawn on the host (layerdrop), pick frames by index tensors of
    a known length, fill by a mask, repeat with a known output size, copy to the device."""
    x = torch.randn(4, 6)
    mask = torch.arange(24).reshape(4, 6) % 3 == 0
    rows, cols = torch.tensor([0, 1, 3]), torch.tensor([2, 0, 5])
    with SyncCounter() as sync:
        float(torch.rand(()))
        draw = torch.rand(3)
        (draw < 0.5).tolist()
        x[rows, cols]
        x.masked_fill(mask, 0.0)
        torch.where(mask, x, 0.0)
        torch.arange(3, device=x.device).repeat_interleave(torch.tensor([1, 2, 3], device=x.device), output_size=6)
        torch.zeros(3).to(x.device)
    assert sync.events == []
