"""FLOPs of a training step: torch's counter (``FlopCounterMode``, as ``count_flops`` runs it) against the
analytic count of ``fast_hubert_plugin/utils/flops.py``, for fast_hubert and for fairseq's HuBERT with the
Base widths (2 blocks, to keep the test short; the blocks are counted per block)."""

import numpy as np
import pytest
import torch
from fairseq.criterions.hubert_criterion import HubertCriterion
from fairseq.data.dictionary import Dictionary
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig

from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion
from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames
from fast_hubert_plugin.models.fast_hubert import FastHubertConfig, FastHubertModel
from fast_hubert_plugin.utils import flops

# The analytic count is what MFU is computed from where nothing was counted (the end-to-end runs). Both
# counts follow from shapes alone, the same on every CPU; what the formula leaves out is the positional
# convolution's extra output frame (its even kernel pads one frame more, dropped after it): 1/T of that
# part, +0.42 % for fast_hubert and +0.07 % for stock HuBERT at these 1-2 s (the Base models agree within
# 0.1 % at 2-15.6 s, benchmarks/results/flops_cpu.md). 1 % (the issue asked for 10 %) still fails for any
# part of 1 % or more left out or miscounted, e.g. the input projection (1.7 % here).
TOLERANCE = 0.01


class NoTask:
    target_dictionary = None


def units(n: int = 100) -> Dictionary:
    d = Dictionary()
    for i in range(n):
        d.add_symbol(str(i))
    return d


def counted_step(model, criterion, sample):
    """count_flops of forward + loss + backward; returns (FLOPs, the criterion's sample size)."""
    out = {}

    def step():
        loss, sample_size, _ = criterion(model, sample)
        loss.backward()
        out["sample_size"] = sample_size

    total, _ = flops.count_flops(step)
    return total, out["sample_size"]


def waveforms(batch: int, samples: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(-3000, 3000, (batch, samples), dtype=np.int16))


@pytest.mark.parametrize("supervised_layers", ["[]", "[1]"])
def test_fast_hubert_step_is_counted_as_the_formula_says(supervised_layers):
    torch.manual_seed(0)
    cfg = FastHubertConfig(label_rate=50, encoder_layers=2, encoder_layerdrop=0.0, supervised_layers=supervised_layers)
    dictionary = units()
    model = FastHubertModel(cfg, [dictionary]).train()
    batch, samples = 2, 2 * 16000 + 80  # frames not a multiple of 4: the subsampler's ceil(T / 2) twice
    sample = {
        "id": torch.arange(batch),
        "net_input": {"source": waveforms(batch, samples), "padding_mask": None, "rng_keys": torch.arange(batch)},
        "target_list": [torch.randint(4, 104, (batch, 100))],
    }
    counted, masked = counted_step(model, FastHubertCriterion(NoTask(), 1.0, 0.0), sample)
    heads = 2 if supervised_layers == "[1]" else 1
    per_utterance = flops.fast_hubert_step_flops(cfg, num_fbank_frames(samples), 104, masked // heads // batch)
    assert per_utterance.parts["label heads"][0] > 0 and per_utterance.parts["fbank mel projection"][1] > 0
    assert counted == pytest.approx(batch * per_utterance.step, rel=TOLERANCE)
    # where the masked frames are not known (the end-to-end runs): their expected share
    expected = flops.fast_hubert_step_flops(cfg, num_fbank_frames(samples), 104)
    assert counted == pytest.approx(batch * expected.step, rel=TOLERANCE)


def test_stock_hubert_step_is_counted_as_the_formula_says():
    torch.manual_seed(0)
    cfg = HubertConfig(label_rate=50, encoder_layers=2, encoder_layerdrop=0.0, final_dim=256)
    task_cfg = HubertPretrainingConfig(data="-", sample_rate=16000, label_rate=50, labels=["km"])
    model = HubertModel(cfg, task_cfg, [units()]).train()
    batch, samples = 2, 16000
    sample = {
        "id": torch.arange(batch),
        "net_input": {
            "source": waveforms(batch, samples).float() / 32768,
            "padding_mask": torch.zeros(batch, samples, dtype=torch.bool),
        },
        "target_list": [torch.randint(4, 104, (batch, 50))],
    }
    counted, _ = counted_step(model, HubertCriterion(NoTask(), 1.0, 0.0, loss_weights=[10.0]), sample)
    per_utterance = flops.hubert_step_flops(cfg, samples, label_frames=50)
    assert counted == pytest.approx(batch * per_utterance.step, rel=TOLERANCE)
    # what dominates: the waveform CNN, a third of the forward (FAST_HUBERT.md: ~2.45 GMAC per audio-second)
    cnn_forward, _ = per_utterance.parts["waveform CNN"]
    assert cnn_forward / 2 / 1e9 == pytest.approx(2.45, rel=0.02)


def test_grouped_convolutions_count_their_weight_gradient_once():
    """torch 2.13 counts a grouped convolution's weight gradient ``groups`` times over; count_flops does
    not: forward + input gradient + weight gradient = 3 forwards."""
    conv = torch.nn.Conv1d(64, 64, kernel_size=8, groups=16)
    x = torch.randn(2, 64, 50, requires_grad=True)
    total, _ = flops.count_flops(lambda: conv(x).sum().backward())
    forward = flops.conv1d_flops(43, 64, 64, 8, groups=16) * 2
    assert total == 3 * forward


def test_conv_feature_layers_are_read_as_fairseq_reads_them():
    text = HubertConfig.conv_feature_layers
    assert flops.conv_feature_layers(text) == eval(text)  # fairseq's own reading (HubertModel.__init__)
    assert flops.conv_feature_layers("[(64, 5, 2)] * 3") == [(64, 5, 2)] * 3


def test_mfu_against_a_measured_matrix_product_peak():
    peak = flops.matmul_peak_flops(device="cpu", dtype_name="fp32", n=64, iters=2)
    assert len(peak["rounds"]) == 5 and peak["flops"] == max(peak["rounds"]) > 0
    assert flops.utilisation(2e9, 1000.0, 4e12) == pytest.approx(0.5)


def test_the_formula_reads_the_config_lists_as_the_model_does():
    """conv_kernel_sizes and supervised_layers in any form the model accepts ('[5,5]', '5,5', '4', '[4]'):
    the formula counts the model that config builds (it once split on commas and failed on brackets)."""
    written = dict(label_rate=50, encoder_layers=4)
    bracketed = FastHubertConfig(**written, conv_kernel_sizes="[5,5]", supervised_layers="2")
    plain = FastHubertConfig(**written, conv_kernel_sizes="5,5", supervised_layers="[2]")
    for cfg in (bracketed, plain):
        model = FastHubertModel(cfg, [units()])
        assert model.subsampler.n_layers == 2 and model.supervised_layers == [2, 4]
    assert (
        flops.fast_hubert_step_flops(bracketed, 1562, 104).parts == flops.fast_hubert_step_flops(plain, 1562, 104).parts
    )
    assert (
        flops.fast_hubert_step_flops(plain, 1562, 104).parts["label heads"][0]
        == 2 * flops.fast_hubert_step_flops(FastHubertConfig(**written), 1562, 104).parts["label heads"][0]
    )
