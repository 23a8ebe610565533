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
    """Ours against torchaudio's Kaldi fbank (both float32), value by value within the float32 bound stated
    beside our fbank (features/kaldi_fbank.py: float32_log_mel_tolerance, the bound tests/test_features.py
    holds kaldi-native-fbank to; measured here at most 0.11 of it), raw and after each side's CMVN. Each
    side normalises with its own statistics of its own fbank, so after CMVN a value may differ by the
    bound carried through (x - mean) / std: (bound + the bin's mean bound) / std for x and the mean, plus
    |x - mean| / std x (the bin's root-mean-square bound) / std for the std."""
    from fast_hubert_plugin.features.cmvn import CMVNAccumulator
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank, float32_log_mel_tolerance

    wave = oe.read_wave(SPEECH_DIR / fixture["utterance"]).numpy()
    ours = compute_fbank(wave)
    official = fixture["fbank"].numpy()
    assert ours.shape == official.shape
    bound = float32_log_mel_tolerance(wave, official)
    within_bound(np.abs(ours - official), bound)
    acc = CMVNAccumulator(80)
    acc.add(ours)
    normalised = acc.finalize()(ours)
    mean, std = fixture["mean"].numpy(), fixture["std"].numpy()
    official_normalised = (official - mean) / std  # its dataset's get_fbank
    carried = (bound + bound.mean(0) + np.abs(official_normalised) * np.sqrt((bound**2).mean(0))) / std
    within_bound(np.abs(normalised - official_normalised), carried)


def within_bound(diff: np.ndarray, bound: np.ndarray) -> None:
    excess = diff - bound
    assert excess.max() <= 0, (np.unravel_index(excess.argmax(), excess.shape), float((diff / bound).max()))


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
