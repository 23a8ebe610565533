"""Our model and fbank reproduce what the official Fast-HuBERT code computed, without the official code:
tests/data/official_equivalence.pt holds, for one utterance of tests/data/speech, the official fbank and
CMVN and a tiny official-shaped model's outputs and gradients (the official model, weights from a seed,
the mask our model draws; written by benchmarks/official_equivalence.py, whose record,
benchmarks/results/official_equivalence_cpu.md, does the same at Base size with the official code)."""

import sys

import numpy as np
import pytest
import torch

from conftest import REPO, SPEECH_DIR

sys.path.insert(0, str(REPO / "benchmarks"))
import official_equivalence as oe  # noqa: E402

FIXTURE = REPO / "tests" / "data" / "official_equivalence.pt"
# Our fbank against torchaudio's Kaldi fbank (both float32) on this utterance, log-Mel values of order 10:
# the two sum the power spectrum in other orders, and a float32 rounding of a Mel energy E moves its log by
# about 6e-8 x (the frame's power) / E, most in the quiet low bins. Measured here (AMD EPYC): mean 4.8e-6,
# 99.9 % within 1.3e-4, max 6.3e-4 (after CMVN 4.2e-6 / 4.1e-5 / 1.8e-4); over 61 utterances the largest
# was 0.045 (record, section 1). The bounds leave a factor of 15 or more for other CPUs' kernels; a wrong
# window, pre-emphasis or Mel bank moves the mean by 0.01 to several units. After CMVN (std of 2-4 log
# units, each side's statistics from its own fbank) the same bounds hold.
FBANK_MEAN, FBANK_Q999, FBANK_MAX = 1e-4, 2e-3, 0.05


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def model(fixture):
    case = fixture["cases"]["train"]
    m = oe.our_model(case["model_cfg"], fixture["num_units"], fixture["seed"])
    oe.set_official_cmvn(m, fixture["mean"], fixture["std"])
    return m


def test_the_fixture_is_small_and_names_its_source(fixture):
    assert FIXTURE.stat().st_size < 400 * 1024
    assert fixture["official_commit"] == oe.OFFICIAL_COMMIT and fixture["utterance"] == oe.FIXTURE_UTTERANCE
    assert fixture["fbank"].shape == (256, 80)


def test_the_seeded_weights_are_those_the_official_model_was_given(fixture, model):
    sums = {n: float(w.double().sum()) for n, w in model.state_dict().items() if not n.startswith("cmvn_")}
    assert sums.keys() == fixture["weight_sums"].keys()
    for name, value in sums.items():
        assert value == pytest.approx(fixture["weight_sums"][name], rel=1e-12, abs=1e-12), name


def test_our_fbank_is_the_official_extraction(fixture):
    from fast_hubert_plugin.features.cmvn import CMVNAccumulator
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank

    wave = oe.read_wave(SPEECH_DIR / fixture["utterance"])
    ours = compute_fbank(wave.numpy())
    official = fixture["fbank"].numpy()
    assert ours.shape == official.shape
    within_bounds(np.abs(ours - official))
    acc = CMVNAccumulator(80)
    acc.add(ours)
    normalised = acc.finalize()(ours)
    official_normalised = (official - fixture["mean"].numpy()) / fixture["std"].numpy()  # its dataset's get_fbank
    within_bounds(np.abs(normalised - official_normalised))


def within_bounds(diff: np.ndarray) -> None:
    stats = diff.mean(), np.quantile(diff, 0.999), diff.max()
    assert stats[0] < FBANK_MEAN and stats[1] < FBANK_Q999 and stats[2] < FBANK_MAX, stats


@pytest.mark.parametrize("name", ["eval", "train"])
def test_our_model_reproduces_the_official_outputs_and_gradients(fixture, model, name):
    """Same weights, fbank, mask and targets: every block's output, the masked logits of both ILS heads,
    the loss, its sample size and (train) the gradient of every parameter agree within the tolerance."""
    case = fixture["cases"][name]
    (ours,) = oe.our_side(model, case, {fixture["utterance"]: fixture["fbank"]})
    result = oe.compare_run(ours, case["official"], model.cfg)
    assert oe.within(result), result
    assert result["sample_size"][0] == 2 * int(case["mask"].sum())  # both heads, every masked frame
    assert len(result) == (5 if name == "train" else 4)  # gradients compared in train mode
    assert result["layers"][2] == 4 and result["logits_m"][2] == 2  # input + 3 blocks; 2 heads


def test_a_different_mask_is_caught(fixture, model):
    """The comparison can fail: the same model with the mask moved by one frame is far outside it."""
    case = dict(fixture["cases"]["eval"])
    case["mask"] = torch.roll(case["mask"], 1, dims=1)
    assert int(case["mask"].sum()) == int(fixture["cases"]["eval"]["mask"].sum())  # as many masked frames
    (ours,) = oe.our_side(model, case, {fixture["utterance"]: fixture["fbank"]})
    result = oe.compare_run(ours, case["official"], model.cfg)
    assert not oe.within(result)
    assert result["layers"][0] > 1000 * oe.RELATIVE_TOLERANCE and result["logits_m"][0] > 1000 * oe.RELATIVE_TOLERANCE


@pytest.mark.parametrize("ils,heads", [(True, ["final_proj.0.", "final_proj.1."]), (False, ["final_proj."])])
def test_official_parameter_names_round_trip(ils, heads):
    from fast_hubert_plugin.models.official_names import from_official_names, to_official_names

    cfg = dict(oe.OFFICIAL_BASE, **oe.NO_DROPOUT, **oe.TINY, ils=ils)
    m = oe.our_model(cfg, oe.TINY_UNITS, seed=1)
    ours = m.state_dict()
    official = to_official_names(ours, m.cfg)
    assert {n.rsplit(".", 1)[0] + "." for n in official if n.startswith("final_proj")} == {h for h in heads}
    assert "subsample.conv_layers.0.weight" in official and not any(n.startswith("cmvn_") for n in official)
    assert len(official) == len(ours) - 2  # the CMVN buffers: the official dataset normalises
    back = from_official_names(dict(official, label_embs_concat=torch.zeros(3)), m.cfg)
    assert back.keys() == {n for n in ours if not n.startswith("cmvn_")}
    assert all(back[n] is ours[n] for n in back)


def test_official_heads_that_do_not_map_are_refused():
    from fast_hubert_plugin.models.official_names import to_official_names

    m = oe.our_model(dict(oe.OFFICIAL_BASE, **oe.NO_DROPOUT, **oe.TINY), oe.TINY_UNITS, seed=1)
    m.cfg.predict_layers = "[1]"  # official ILS without the last block: ours always supervises it
    with pytest.raises(ValueError, match=r"predict_layers=\[1\]: only ascending 0-based blocks ending with the last"):
        to_official_names(m.state_dict(), m.cfg)
