"""Where fast_hubert composes fairseq's HuBERT, it is fairseq's: the Transformer (fairseq's classes, the
outputs of HubertModel's encoder with the same weights and input), the span and channel masking (fairseq's
``compute_mask_indices``, the masks and masked inputs of HubertModel.apply_mask) and the CTC fine-tuning
(fairseq's ``hubert_ctc`` and ``ctc`` are what fine-tuning builds, with the outputs they define).
tests/test_model.py covers the layer-recording encoder against fairseq's TransformerEncoder with padding."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq.criterions.ctc import CtcCriterion, CtcCriterionConfig
from fairseq.data.data_utils import compute_mask_indices
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.models.hubert.hubert_asr import HubertCtc, HubertEncoder
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder, TransformerSentenceEncoderLayer
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
from omegaconf import OmegaConf
from test_model import batch, tiny_model, units

from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.data.span_masks import MASK_RNG_STREAM, MIN_MASKS
from fast_hubert_plugin.models.fast_hubert import FastHubertModel
from fast_hubert_plugin.models.hubert_ctc import HubertCtcConfig
from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask

from conftest import REPO

# Both sides run the same fp32 operations in the same order: equal up to other kernels' rounding.
SAME = dict(atol=1e-5, rtol=1e-5)
PRETRAINED = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"  # a 2-block fast_hubert


def stock_hubert(cfg) -> HubertModel:
    """fairseq's HubertModel with the tiny model's Transformer and masking settings."""
    keys = {f: getattr(cfg, f) for f in HubertConfig.__dataclass_fields__ if hasattr(cfg, f)}
    keys["conv_feature_layers"] = "[(32,10,5)]"  # its CNN is not used here
    task_cfg = HubertPretrainingConfig(data="-", sample_rate=16000, label_rate=50, labels=["km"])
    return HubertModel(HubertConfig(**keys), task_cfg, [units()])


# ----------------------------------------------------------------------------- the Transformer
def test_the_encoder_is_fairseqs_transformer_encoder():
    model = tiny_model()
    assert isinstance(model.encoder, TransformerEncoder)
    assert [type(layer) for layer in model.encoder.layers] == [TransformerSentenceEncoderLayer] * 4
    # what the subclass changes is extract_features only (which blocks' outputs it returns)
    own = {n for n, v in vars(type(model.encoder)).items() if callable(v)}
    assert own == {"extract_features"}, own


def test_block_outputs_are_those_of_hubert_models_encoder():
    """Our model's Transformer input through fairseq's HubertModel.encoder, loaded with our encoder's
    weights, gives our extract_features for every block, alone and in a padded batch."""
    model = tiny_model(required_seq_len_multiple=2).eval()  # HuBERT's default: odd lengths padded inside
    stock = stock_hubert(model.cfg).eval()
    stock.encoder.load_state_dict(model.encoder.state_dict())
    source, padding, _ = batch([121, 97])
    with torch.no_grad():
        features, out_padding = model.forward_features(source, padding)
        x = model.project_features(features)
        for layer in (1, 2, 3, 4):
            ours, ours_padding = model.extract_features(source, padding, output_layer=layer)
            want, _ = stock.encoder(x, padding_mask=out_padding, layer=layer - 1)
            assert torch.equal(ours_padding, out_padding)
            valid = ~out_padding
            torch.testing.assert_close(ours[valid], want[valid], **SAME)
            assert not torch.allclose(ours[valid], x[valid], atol=1e-2)  # the blocks did something


# ----------------------------------------------------------------------------- masking
def test_span_masks_from_keys_are_fairseqs_compute_mask_indices():
    model = tiny_model(mask_prob=0.65, mask_length=3)
    x = torch.randn(3, 40, model.cfg.encoder_embed_dim)
    padding = torch.arange(40)[None, :] >= torch.tensor([40, 31, 22])[:, None]
    keys = torch.tensor([5, 17, 123456789])
    masked, mask = model.apply_mask(x, padding, None, rng_keys=keys)
    want = compute_mask_indices(
        (3, 40), padding, 0.65, 3, "static", 0.0, min_masks=MIN_MASKS, seed=MASK_RNG_STREAM, epoch=0, indices=keys
    )
    assert np.array_equal(mask.numpy(), want) and want.any() and not want[padding.numpy()].any()
    assert torch.equal(masked, torch.where(mask[..., None], model.mask_emb, x))
    again, mask_again = model.apply_mask(x, padding, None, rng_keys=keys)  # keys, not the global state
    assert torch.equal(mask_again, mask) and torch.equal(again, masked)


def drawn_alike(monkeypatch):
    """Makes the next unkeyed draws repeatable: fairseq's compute_mask_indices rounds with numpy's global
    state and, without keys, draws each row's spans from ``np.random.default_rng(None)`` (fresh OS
    entropy): here from seeds 0, 1, 2, ... instead, restarted at each call of the returned function."""
    real = np.random.default_rng

    def restart():
        np.random.seed(3)
        seeds = itertools.count()
        monkeypatch.setattr(np.random, "default_rng", lambda seed=None: real(next(seeds) if seed is None else seed))

    return restart


@pytest.mark.parametrize("span,channel", [(0.65, 0.0), (0.0, 0.5), (0.65, 0.5)])
def test_masking_without_keys_is_hubert_models_apply_mask(span, channel, monkeypatch):
    """Without keys (fairseq's hubert_ctc fine-tuning masks this way), span and channel masks are drawn as
    fairseq's HubertModel.apply_mask draws them: from the same draws, the same masks and masked input."""
    model = tiny_model(mask_prob=span, mask_length=3, mask_channel_prob=channel, mask_channel_length=8)
    stock = stock_hubert(model.cfg)
    stock.mask_emb.data.copy_(model.mask_emb.data)
    x = torch.randn(2, 40, model.cfg.encoder_embed_dim)
    padding = torch.arange(40)[None, :] >= torch.tensor([40, 29])[:, None]
    restart = drawn_alike(monkeypatch)
    restart()
    ours, ours_mask = model.apply_mask(x, padding, None)
    restart()
    want, want_mask = stock.apply_mask(x.clone(), padding, None)
    assert (ours_mask is None) == (want_mask is None) == (span == 0)
    if span:
        assert torch.equal(ours_mask, want_mask)
    assert torch.equal(ours, want) and not torch.equal(ours, x)


# ----------------------------------------------------------------------------- CTC fine-tuning
def test_every_fine_tuning_config_names_fairseqs_hubert_ctc_and_ctc():
    from omegaconf import OmegaConf

    configs = sorted(config_dir("finetuning").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = OmegaConf.load(path)
        assert (cfg.model._name, cfg.criterion._name) == ("hubert_ctc", "ctc"), path.name


def fine_tuning_task(folder: Path) -> FastHubertPretrainingTask:
    (folder / "dict.ltr.txt").write_text("".join(f"{c} 1\n" for c in "|ETAONIHSRDLU"), encoding="utf-8")
    cfg = FastHubertPretrainingConfig(
        data=str(folder), label_dir=str(folder), fine_tuning=True, labels=["ltr"], single_target=True, label_rate=-1
    )
    return FastHubertPretrainingTask.setup_task(cfg)


def test_fine_tuning_builds_fairseqs_hubert_ctc_and_ctc_with_their_outputs(tmp_path):
    """The task builds fairseq's HubertCtc (its HubertEncoder around our pretrained model, loaded from
    w2v_path) and fairseq's CtcCriterion; their outputs are the CTC projection of our extract_features and
    torch's CTC loss of its log-probabilities (blank = the dictionary's bos)."""
    task = fine_tuning_task(tmp_path)
    cfg = HubertCtcConfig(w2v_path=str(PRETRAINED), apply_mask=False, mask_prob=0.0, layerdrop=0.0)
    cfg._name = "hubert_ctc"
    # the configs' ${task.data}, ${task.normalize}, ${optimization.sentence_avg} resolve in a root config
    root = OmegaConf.create(
        {
            "task": {"data": str(tmp_path), "normalize": False},
            "optimization": {"sentence_avg": True},
            "model": OmegaConf.structured(cfg),
            "criterion": OmegaConf.structured(CtcCriterionConfig(_name="ctc", zero_infinity=True)),
        }
    )
    model = task.build_model(root.model).eval()
    crit = task.build_criterion(root.criterion)
    assert type(model) is HubertCtc and type(model.w2v_encoder) is HubertEncoder and type(crit) is CtcCriterion
    inner = model.w2v_encoder.w2v_model
    assert isinstance(inner, FastHubertModel) and inner.label_heads is None  # heads removed for fine-tuning
    saved = torch.load(PRETRAINED, map_location="cpu", weights_only=False)["model"]
    assert torch.equal(inner.encoder.layers[0].fc1.weight, saved["encoder.layers.0.fc1.weight"])

    source, padding, _ = batch([121, 97])
    with torch.no_grad():
        out = model(source=source, padding_mask=padding)
        x, out_padding = inner.extract_features(source, padding)
        want = model.w2v_encoder.proj(x).transpose(0, 1)  # (T', B, letters)
    torch.testing.assert_close(out["encoder_out"], want, **SAME)
    assert torch.equal(out["padding_mask"], out_padding)

    targets = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 1, 1]])  # letters, padded with the dictionary's pad
    sample = {
        "id": torch.arange(2),
        "net_input": {"source": source, "padding_mask": padding},
        "target": targets,
        "target_lengths": torch.tensor([5, 3]),
        "ntokens": 8,
    }
    with torch.no_grad():
        loss, _, _ = crit(model, sample)
        log_probs = model.get_normalized_probs(out, log_probs=True).float()
    lengths = (~out_padding).sum(-1)
    want_loss = F.ctc_loss(
        log_probs,
        targets,
        lengths,
        torch.tensor([5, 3]),
        blank=task.target_dictionary.bos(),
        reduction="sum",
        zero_infinity=True,
    )
    torch.testing.assert_close(loss, want_loss, **SAME)
    assert lengths.tolist() == [31, 25]  # ceil(ceil(T / 2) / 2) 25 Hz frames of 121 and 97 fbank frames
