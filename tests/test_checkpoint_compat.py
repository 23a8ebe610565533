"""Checkpoints written by earlier versions load (strictly: the same state-dict names) and compute what
they computed then. The fixture (tests/data/checkpoints/) is a tiny ``fast_hubert`` checkpoint saved
by fairseq's trainer with the code before the model was rebuilt from fairseq parts, with the outputs
that code gave on a fixed batch; tests/data/build_checkpoint_fixture.py made both."""

from types import SimpleNamespace

import pytest
import torch

from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion
from fast_hubert_plugin.models.checkpoints import load_checkpoint

from conftest import REPO

FIXTURE = REPO / "tests" / "data" / "checkpoints"
TOL = dict(atol=1e-5, rtol=1e-5)  # the same arithmetic; a margin for other CPUs' kernels


@pytest.fixture(scope="module")
def loaded():
    model, cfg, task = load_checkpoint(FIXTURE / "fast_hubert_tiny.pt")  # strict load_state_dict
    ref = torch.load(FIXTURE / "reference.pt", map_location="cpu", weights_only=False)
    return model, task, ref


def test_state_dict_names_are_those_of_the_fixture(loaded):
    model, _, _ = loaded
    saved = torch.load(FIXTURE / "fast_hubert_tiny.pt", map_location="cpu", weights_only=False)["model"]
    assert list(model.state_dict()) == list(saved)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_extract_features_gives_the_stored_outputs(loaded):
    model, _, ref = loaded
    with torch.no_grad():
        for layer in (1, 2):
            x, pad = model.extract_features(ref["source"], ref["padding_mask"], mask=False, output_layer=layer)
            torch.testing.assert_close(x, ref[f"layer{layer}"], **TOL)
            assert torch.equal(pad, ref["out_padding_mask"])


def test_pretraining_forward_gives_the_stored_logits_and_loss(loaded):
    model, task, ref = loaded
    with torch.no_grad():
        net = model(ref["source"], [ref["target"]], ref["padding_mask"], mask=True, rng_keys=ref["rng_keys"])
        logits, targets = model.get_logits(net, is_masked=True), model.get_targets(net, is_masked=True)
        sample = {
            "id": torch.arange(len(ref["source"])),
            "net_input": {"source": ref["source"], "padding_mask": ref["padding_mask"], "rng_keys": ref["rng_keys"]},
            "target_list": [ref["target"]],
        }
        _, _, log = FastHubertCriterion(SimpleNamespace())(model, sample)
        _, _, log_nomask = FastHubertCriterion(SimpleNamespace(), pred_nomask_weight=0.5)(model, sample)
    assert len(logits) == len(ref["logits_masked"]) == 2  # blocks 1 and 2
    for got, want in zip(logits, ref["logits_masked"]):
        torch.testing.assert_close(got, want, **TOL)
    for got, want in zip(targets, ref["targets_masked"]):
        assert torch.equal(got, want)
    for got, want in ((log, ref["log"]), (log_nomask, ref["log_nomask"])):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5), key
