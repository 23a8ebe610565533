"""The Fast-HuBERT model and criterion on small random inputs: shapes, lengths, padding, loss, ILS."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.data import Dictionary

from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion
from fast_hubert_plugin.features.kaldi_fbank import to_pcm16
from fast_hubert_plugin.models import fast_hubert as fast_hubert_module
from fast_hubert_plugin.models import layer_encoder
from fast_hubert_plugin.models.fast_hubert import FastHubertConfig, FastHubertModel, label_stride
from fast_hubert_plugin.models.official_names import OfficialFastHubertConfig, OfficialFastHubertModel
from fast_hubert_plugin.models.subsampler import FbankSubsampler
from fast_hubert_plugin.utils.masks import subsampled_lengths


def units(n=20) -> Dictionary:
    d = Dictionary()
    for i in range(n):
        d.add_symbol(str(i))
    return d


def tiny_cfg(cls=FastHubertConfig, **kw):
    base = dict(
        label_rate=50,
        encoder_layers=4,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=4,
        conv_channels=64,
        fbank_encoder_dim=32,
        conv_pos=16,
        conv_pos_groups=4,
        supervised_layers="[2]",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        dropout_input=0.0,
        encoder_layerdrop=0.0,
        mask_prob=0.5,
        mask_length=2,
    )
    base.update(kw)
    return cls(**base)


def tiny_model(**kw) -> FastHubertModel:
    torch.manual_seed(0)
    return FastHubertModel(tiny_cfg(**kw), [units()])


def batch(lengths, label_rate=50, dim=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    source = torch.randn(len(lengths), T, dim, generator=g) * 3 + 10
    padding = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    source = source.masked_fill(padding[..., None], 0)
    n_labels = math.ceil(T * label_rate / 100)
    targets = torch.randint(4, 24, (len(lengths), n_labels), generator=g)
    return source, padding, targets


@pytest.mark.parametrize("kernels,factor", [([5], 2), ([5, 5], 4), ([5, 5, 5], 8), ([3, 7], 4)])
def test_subsampler_output_lengths_for_every_T(kernels, factor):
    sub = FbankSubsampler(80, 16, 8, kernels)
    assert sub.downsample_factor == factor
    for T in range(1, 70):
        out, _ = sub(torch.randn(1, T, 80))
        want = T
        for _ in kernels:
            want = math.ceil(want / 2)
        assert out.shape == (1, want, 8), T
        assert subsampled_lengths(torch.tensor([T]), len(kernels)).item() == want


def test_even_kernels_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        FbankSubsampler(80, 16, 8, [4, 5])


def test_padded_batch_gives_the_outputs_of_each_utterance_alone():
    model = tiny_model().eval()
    lengths = [101, 66, 37, 50]  # none a multiple of 4
    source, padding, _ = batch(lengths)
    with torch.no_grad():
        x, pad = model.extract_features(source, padding, mask=False)
        assert pad.tolist() == [[t >= math.ceil(math.ceil(n / 2) / 2) for t in range(x.size(1))] for n in lengths]
        for i, n in enumerate(lengths):
            alone, alone_pad = model.extract_features(source[i : i + 1, :n], None, mask=False)
            assert alone_pad is None
            valid = alone.size(1)
            assert valid == math.ceil(math.ceil(n / 2) / 2)
            torch.testing.assert_close(x[i, :valid], alone[0], atol=1e-5, rtol=1e-5)


def test_all_false_padding_mask_is_dropped():
    model = tiny_model().eval()
    source, padding, _ = batch([64, 64])
    with torch.no_grad():
        a, pad_a = model.extract_features(source, padding, mask=False)
        b, pad_b = model.extract_features(source, None, mask=False)
    assert pad_a is None and pad_b is None
    assert torch.equal(a, b)


def test_label_stride():
    assert label_stride(50, 25) == 2 and label_stride(25, 25) == 1 and label_stride(100, 25) == 4
    assert label_stride(50, 50) == 1
    for bad in (30, 12.5, -1):
        with pytest.raises(ValueError, match="does not fit the model frame rate 25 Hz"):
            label_stride(bad, 25)
    with pytest.raises(ValueError, match="label_rate=30"):
        tiny_model(label_rate=30)


def test_every_second_50hz_label_is_used_with_40ms_frames():
    model = tiny_model().eval()
    source, padding, targets = batch([64, 64])
    feats, _ = model.forward_features(source, None)
    _, (t,), _ = model.forward_targets(feats, [targets], None)
    assert t.shape == (2, 16)
    assert torch.equal(t, targets[:, 0:32:2])


def test_cross_entropy_equals_hand_computation(monkeypatch):
    model = tiny_model(mask_prob=0.5).eval()
    crit = FastHubertCriterion(SimpleNamespace())
    source, padding, targets = batch([120, 120])
    sample = {"id": torch.arange(2), "net_input": {"source": source, "padding_mask": padding}, "target_list": [targets]}
    # record the span mask the criterion's forward draws, then replay it
    masks = []
    apply_mask = type(model).apply_mask

    def recording(self, x, padding_mask, target_list):
        if masks:
            x = x.clone()
            x[masks[0]] = self.mask_emb
            return x, masks[0]
        x, m = apply_mask(self, x, padding_mask, target_list)
        masks.append(m)
        return x, m

    monkeypatch.setattr(type(model), "apply_mask", recording)
    loss, sample_size, log = crit(model, sample)
    masked = masks[0]
    net = model(source, [targets], padding, mask=True, compute_unmasked=True)
    expected, n_masked = 0.0, int(masked.sum())
    for k, layer in enumerate([2, 4]):
        x = model(source, [targets], padding, mask=True, features_only=True, output_layer=layer)["x"]
        logits = model.label_heads[k](x[masked]) / 0.1
        torch.testing.assert_close(logits, net.heads[k].masked.logits, atol=1e-5, rtol=1e-5)
        tgt = targets[:, ::2][:, : x.size(1)][masked]
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        expected += -log_probs[torch.arange(len(tgt)), tgt].sum().item()
        assert log[f"count_m_L{layer}"] == n_masked
        assert log[f"correct_m_L{layer}"] == (logits.argmax(-1) == tgt).sum().item()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert sample_size == 2 * n_masked  # normalised over (layer, masked frame) pairs
    # unmasked logits exist only when asked for, and cover exactly the unmasked frames
    assert len(net.heads[0].unmasked.logits) == 2 * 30 - n_masked


def test_no_unmasked_logits_when_their_weight_is_zero(monkeypatch):
    model = tiny_model().train()
    rows = []
    for head in model.label_heads:
        head.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    crit = FastHubertCriterion(SimpleNamespace(), pred_nomask_weight=0.0)
    source, padding, targets = batch([120, 120])
    sample = {"id": torch.arange(2), "net_input": {"source": source, "padding_mask": padding}, "target_list": [targets]}
    _, sample_size, log = crit(model, sample)
    assert sum(rows) == sample_size  # heads saw masked frames only
    assert not any(k.startswith("loss_u") for k in log)


def test_no_parameter_is_left_unused():
    """DDP without find_unused_parameters: one backward (layerdrop off) reaches every parameter."""
    model = tiny_model().train()
    crit = FastHubertCriterion(SimpleNamespace())
    source, padding, targets = batch([200, 180])
    padding[:] = False
    sample = {"id": torch.arange(2), "net_input": {"source": source, "padding_mask": padding}, "target_list": [targets]}
    loss, _, _ = crit(model, sample)
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []
    assert not any("feature_extractor" in n for n, _ in model.named_parameters())  # no waveform CNN


def test_ils_layers_are_absolute_under_layerdrop(monkeypatch):
    model = tiny_model(encoder_layerdrop=0.5).train()
    enc = model.encoder
    x = torch.randn(2, 30, 64)
    draws = iter([0.9, 0.1, 0.9, 0.1])  # layerdrop 0.5: blocks 2 and 4 dropped, 1 and 3 run
    monkeypatch.setattr(layer_encoder, "layerdrop_draw", lambda: next(draws))
    _, outs = enc.extract_features(x, None, return_layers=[2, 4])
    assert sorted(outs) == [2, 4]
    monkeypatch.setattr(layer_encoder, "layerdrop_draw", lambda: 0.9)
    h1, _ = enc.extract_features(x, None, tgt_layer=0)
    h3 = enc.layers[2](h1.transpose(0, 1), self_attn_padding_mask=None, need_weights=False)[0].transpose(0, 1)
    torch.testing.assert_close(outs[2], h1)  # block 2 dropped: its output is block 1's
    torch.testing.assert_close(outs[4], h3)  # block 4 dropped: block 3's output, not "the last survivor list entry"


def test_extract_features_output_layer_is_one_based():
    model = tiny_model().eval()
    source, _, _ = batch([90])
    with torch.no_grad():
        _, outs = model.encoder.extract_features(
            model.post_extract_proj(model.layer_norm(model.forward_features(source)[0])), None, return_layers=[1, 3]
        )
        for layer in (1, 3):
            x, _ = model.extract_features(source, None, mask=False, output_layer=layer)
            torch.testing.assert_close(x, outs[layer])
        last, _ = model.extract_features(source, None, mask=False)
        x4, _ = model.extract_features(source, None, mask=False, output_layer=4)
        torch.testing.assert_close(last, x4)


def test_feature_grad_mult_scales_the_front_end_gradient():
    grads = {}
    for mult in (1.0, 0.1, 0.0):
        model = tiny_model(feature_grad_mult=mult).eval()
        source, _, _ = batch([64])
        x, _ = model.extract_features(source, None, mask=False)
        x.sum().backward()
        g = model.subsampler.conv_layers[0].weight.grad
        grads[mult] = None if g is None else g.clone()
    torch.testing.assert_close(grads[0.1], 0.1 * grads[1.0])
    assert grads[0.0] is None


def test_official_names_map_to_ours():
    cfg = tiny_cfg(OfficialFastHubertConfig, ils=True, predict_layers="[1,3]", supervised_layers="[]")
    model = OfficialFastHubertModel(cfg, [units()])
    assert model.supervised_layers == [2, 4]
    assert cfg.spec_aug_freq_masks == 2 and cfg.spec_aug_time_width == 40
    with pytest.raises(ValueError, match="time_wrap_W"):
        OfficialFastHubertModel(tiny_cfg(OfficialFastHubertConfig, time_wrap_W=5), [units()])


def test_supervised_layers_validation():
    with pytest.raises(ValueError, match=r"\[7\] outside 1..4"):
        tiny_model(supervised_layers="[7]")
    with pytest.raises(ValueError, match="not a list of integers"):
        tiny_model(supervised_layers="four")
    assert tiny_model(supervised_layers="[]").supervised_layers == [4]


@pytest.mark.parametrize("spec_masks,hubert_masking", [(2, False), (0, True)])
def test_fine_tuning_never_stacks_spec_augment_and_hubert_masking(monkeypatch, spec_masks, hubert_masking):
    """mask_prob / mask_channel_prob above 0 (fairseq's base_10h.yaml): with SpecAugment on, HuBERT's
    span and channel masking is skipped; with SpecAugment off, it is HuBERT's masking that runs."""
    model = tiny_model(
        mask_prob=0.65,
        mask_channel_prob=0.5,
        mask_channel_length=8,
        spec_aug_freq_masks=spec_masks,
        spec_aug_time_masks=spec_masks,
    ).train()
    calls = {"apply_mask": 0, "spec_augment": 0}
    apply_mask = type(model).apply_mask
    real_spec_augment = fast_hubert_module.spec_augment

    def count_mask(self, *args, **kw):
        calls["apply_mask"] += 1
        return apply_mask(self, *args, **kw)

    def count_spec(*args, **kw):
        calls["spec_augment"] += 1
        return real_spec_augment(*args, **kw)

    monkeypatch.setattr(type(model), "apply_mask", count_mask)
    monkeypatch.setattr(fast_hubert_module, "spec_augment", count_spec)
    source, padding, _ = batch([120, 97])
    model(source, padding_mask=padding, mask=True, features_only=True)
    assert (calls["spec_augment"], calls["apply_mask"]) == ((0, 1) if hubert_masking else (1, 0))


def test_sample_size_counts_every_frame_in_the_loss():
    """pred_nomask_weight > 0 adds unmasked-frame CE to the loss, so sample_size counts those frames too."""
    model = tiny_model(mask_prob=0.5).train()
    source, padding, targets = batch([120, 101])
    sample = {"id": torch.arange(2), "net_input": {"source": source, "padding_mask": padding}, "target_list": [targets]}
    for nomask_weight in (0.0, 0.5):
        torch.manual_seed(1)
        crit = FastHubertCriterion(SimpleNamespace(), pred_nomask_weight=nomask_weight)
        _, sample_size, log = crit(model, sample)
        masked = log["count_m_L2"] + log["count_m_L4"]
        unmasked = log.get("count_u_L2", 0) + log.get("count_u_L4", 0)
        assert masked > 0 and (unmasked > 0) == (nomask_weight > 0)
        assert sample_size == log["sample_size"] == masked + unmasked
    assert masked + unmasked == 2 * (30 + 26)  # every valid 40 ms frame of both utterances, at both heads


def test_layer_output_encoder_matches_fairseq_transformer_encoder():
    """LayerOutputEncoder rewrites TransformerEncoder.extract_features: at layerdrop 0 it must give
    fairseq's outputs, with padding and with required_seq_len_multiple 2 (odd lengths padded)."""
    from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder

    from fast_hubert_plugin.models.layer_encoder import LayerOutputEncoder

    cfg = tiny_cfg(required_seq_len_multiple=2, encoder_layerdrop=0.0)
    torch.manual_seed(0)
    ours = LayerOutputEncoder(cfg).eval()
    ref = TransformerEncoder(cfg).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 29, cfg.encoder_embed_dim)  # odd T: padded to 30 inside
    padding = torch.arange(29)[None, :] >= torch.tensor([29, 20, 7])[:, None]
    with torch.no_grad():
        last, layers = ours.extract_features(x, padding, return_layers=[1, 2, 3, 4])
        want_last, _ = ref.extract_features(x, padding)
        valid = ~padding
        torch.testing.assert_close(last[valid], want_last[valid], atol=1e-6, rtol=1e-6)
        assert last.shape == want_last.shape == x.shape
        for layer in (1, 2, 3, 4):
            want, _ = ref.extract_features(x, padding, tgt_layer=layer - 1)
            torch.testing.assert_close(layers[layer][valid], want[valid], atol=1e-6, rtol=1e-6)
            got, _ = ours.extract_features(x, padding, tgt_layer=layer - 1)
            torch.testing.assert_close(got[valid], want[valid], atol=1e-6, rtol=1e-6)


def waveform_batch(seconds=(2.0, 1.4), seed=0):
    """Noise-like 16 kHz waveforms zero-padded into one batch, with their (B, N) sample padding mask."""
    g = torch.Generator().manual_seed(seed)
    lengths = [int(s * 16000) for s in seconds]
    wave = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wave[i, :n] = torch.randn(n, generator=g) * 0.05 * torch.sin(torch.linspace(0, 20, n)).abs()
    return wave, torch.arange(wave.size(1))[None, :] >= torch.tensor(lengths)[:, None]


def test_waveform_input_gives_the_outputs_of_its_fbank():
    """Batches of waveforms (the training path: fbank on the model's device) give what the fbank does."""
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank

    model = tiny_model().eval()
    wave, pad = waveform_batch()
    fbanks = [torch.from_numpy(compute_fbank(w[~p].numpy())) for w, p in zip(wave, pad)]
    T = max(len(f) for f in fbanks)
    source = torch.zeros(len(fbanks), T, 80)
    for i, f in enumerate(fbanks):
        source[i, : len(f)] = f
    fpad = torch.arange(T)[None, :] >= torch.tensor([len(f) for f in fbanks])[:, None]
    with torch.no_grad():
        a = model(wave, padding_mask=pad, mask=False, features_only=True)
        b = model(source, padding_mask=fpad, mask=False, features_only=True)
    assert torch.equal(a["padding_mask"], b["padding_mask"])
    torch.testing.assert_close(a["x"], b["x"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["autocast", "bf16_weights"])
def test_bf16_pretraining_step_matches_fp32(mode):
    """Under torch.autocast (fairseq's common.amp) and with bf16 weights (common.bf16), the step runs
    (fairseq's apply_mask put an fp32 mask_emb into a bf16 tensor and crashed) and its loss and
    gradients stay near fp32's, with the same masks (rng_keys) and no dropout."""
    wave, pad = waveform_batch((2.0, 2.0))
    targets = torch.randint(4, 24, (2, 100), generator=torch.Generator().manual_seed(1))
    sample = {
        "id": torch.arange(2),
        "net_input": {"source": wave, "padding_mask": None, "rng_keys": torch.tensor([11, 12])},
        "target_list": [targets],
    }
    crit = FastHubertCriterion(SimpleNamespace())
    model = tiny_model().train()
    loss32, n32, _ = crit(model, sample)
    loss32.backward()
    grad32 = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    if mode == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, n, _ = crit(model, sample)
        loss.backward()
        grads = {k: p.grad for k, p in model.named_parameters()}
    else:
        model = model.bfloat16()
        # common.bf16: fairseq casts the batch's float32 tensors; the dataset's int16 samples stay exact
        pcm = torch.from_numpy(to_pcm16(wave.numpy()))
        bf16 = {"source": pcm, "padding_mask": None, "rng_keys": torch.tensor([11, 12])}
        loss, n, _ = crit(model, dict(sample, net_input=bf16))
        loss.backward()
        grads = {k: p.grad.float() for k, p in model.named_parameters()}
    assert n == n32 and torch.isfinite(loss)
    assert abs(loss.item() - loss32.item()) / loss32.item() < 0.02, (loss.item(), loss32.item())
    assert grads["mask_emb"].abs().sum() > 0  # masked frames take the embedding, and it learns
    for k in ("mask_emb", "label_heads.1.weight", "subsampler.conv_layers.0.weight"):
        cos = F.cosine_similarity(grads[k].flatten(), grad32[k].flatten(), dim=0)
        assert cos > 0.95, (k, float(cos))


def test_one_decision_of_the_model_family():
    """The clustering and probing extractors (models) and the export (checkpoint configs) use it."""
    from fairseq.models.hubert.hubert import HubertConfig, HubertModel
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
    from omegaconf import OmegaConf

    from fast_hubert_plugin.models.family import FAST_HUBERT, HUBERT, fast_hubert_of, model_family

    def fine_tuned(inner):  # what fairseq's hubert_ctc holds
        return SimpleNamespace(w2v_encoder=SimpleNamespace(w2v_model=inner))

    fast = tiny_model()
    official = OfficialFastHubertModel(
        tiny_cfg(OfficialFastHubertConfig, predict_layers="[3]", supervised_layers="[]"), [units()]
    )
    stock = HubertModel(
        HubertConfig(
            label_rate=50.0, encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2
        ),
        HubertPretrainingConfig(labels=["km"], label_rate=50.0),
        [units()],
    )
    for model in (fast, official, fine_tuned(fast)):
        assert model_family(model) == FAST_HUBERT
    assert fast_hubert_of(fast) is fast and fast_hubert_of(fine_tuned(official)) is official
    assert model_family(stock) == HUBERT
    for model in (stock, fine_tuned(stock)):
        with pytest.raises(ValueError, match="HubertModel is not a fast_hubert model"):
            fast_hubert_of(model)
    for model in (fine_tuned(stock), torch.nn.Linear(2, 2)):
        with pytest.raises(ValueError, match=r"unsupported model \w+ \(None\): expected fast_hubert or hubert"):
            model_family(model)

    def ctc(inner):
        return {"_name": "hubert_ctc", "w2v_args": {"model": inner} if inner else None}

    for cfg in ({"_name": "fast_hubert"}, OmegaConf.create({"_name": "fasthubert"}), ctc({"_name": "fast_hubert"})):
        assert model_family(cfg) == FAST_HUBERT
    assert model_family({"_name": "hubert"}) == HUBERT
    for cfg in ({"_name": "wav2vec2"}, ctc({"_name": "hubert"}), ctc(None)):
        with pytest.raises(ValueError, match=f"unsupported model '{cfg['_name']}': expected fast_hubert or hubert"):
            model_family(cfg)


def test_output_names_each_head_by_label_set_and_block():
    """The pretraining forward returns a FastHubertOutput: heads label set major, each with the logits
    and targets of its masked frames; the criterion's log names them t{label set}_L{block}."""
    from fast_hubert_plugin.models.fast_hubert import FastHubertOutput

    torch.manual_seed(0)
    model = FastHubertModel(tiny_cfg(), [units(), units(8)]).eval()
    source, padding, targets = batch([120, 97])
    second = targets % 8 + 4  # ids of the 8-unit dictionary
    keys = torch.tensor([5, 6])
    with torch.no_grad():
        net = model(source, [targets, second], padding, rng_keys=keys)
        sample = {
            "id": torch.arange(2),
            "net_input": {"source": source, "padding_mask": padding, "rng_keys": keys},
            "target_list": [targets, second],
        }
        _, sample_size, log = FastHubertCriterion(SimpleNamespace())(model, sample)
    assert isinstance(net, FastHubertOutput) and net.num_label_sets == 2
    assert [(h.label_set, h.layer) for h in net.heads] == [(0, 2), (0, 4), (1, 2), (1, 4)]
    n_masked = int((net.mask_indices & ~net.padding_mask).sum())
    for h in net.heads:
        assert h.unmasked is None and h.masked.logits.shape == (n_masked, 24 if h.label_set == 0 else 12)
        want = (targets, second)[h.label_set][:, ::2][:, : net.mask_indices.size(1)][
            net.mask_indices & ~net.padding_mask
        ]
        assert torch.equal(h.masked.targets, want)
        name = f"t{h.label_set}_L{h.layer}"
        assert log[f"count_m_{name}"] == n_masked
        ce = F.cross_entropy(h.masked.logits, h.masked.targets, reduction="sum").item()
        assert log[f"loss_m_{name}"] == pytest.approx(ce, rel=1e-6)
    assert sample_size == 4 * n_masked
    assert len(model.get_logits(net)) == 4 and model.get_logits(net, is_masked=False) == []


def test_too_short_for_masking_names_the_fewest_frames_and_the_setting():
    """fairseq's compute_mask_indices refuses an utterance its spans would cover whole; the model says
    which task.min_sample_size avoids it. At the computed fewest frames no key fails (checked over 600
    keys for several mask settings when the bound was written); one frame fewer, some keys do."""
    from fast_hubert_plugin.data.span_masks import fewest_maskable_frames

    model = tiny_model(mask_prob=0.8, mask_length=10).train()
    need = fewest_maskable_frames(0.8, 10)
    assert need == 13
    dim = model.cfg.encoder_embed_dim
    for key in range(200):  # no failure at `need` frames
        model.apply_mask(torch.zeros(1, need, dim), None, None, rng_keys=torch.tensor([key]))
    failures = []
    for key in range(200):
        try:
            model.apply_mask(torch.zeros(1, need - 1, dim), None, None, rng_keys=torch.tensor([key]))
        except ValueError as e:
            failures.append(str(e))
    factor = model.subsampler.downsample_factor
    assert 20 < len(failures) < 200, len(failures)
    assert failures[0].startswith(
        "an utterance of 12 model frames is too short for masking spans of model.mask_length=10"
    )
    assert failures[0].endswith(f"set task.min_sample_size to at least {13 * factor} fbank frames")


def loss_and_grads(model, lengths, seed):
    """The masked CE of one training step on a random batch, and every parameter's gradient."""
    source, padding, targets = batch(lengths, seed=seed)
    model.zero_grad()
    net = model.train()(source, [targets], padding, rng_keys=torch.arange(len(lengths)) + seed)
    loss = sum(F.cross_entropy(p.logits, p.targets, reduction="sum") for p in net.predictions())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def check_compiled_matches_eager(compiled, atol):
    eager = tiny_model(encoder_layers=1, supervised_layers="[]")
    compiled.load_state_dict(eager.state_dict())
    for lengths, seed in (([120, 97], 0), ([88, 64, 75], 1)):  # two shapes: compiled with dynamic sizes
        (want, want_grads), (got, got_grads) = (
            loss_and_grads(eager, lengths, seed),
            loss_and_grads(compiled, lengths, seed),
        )
        torch.testing.assert_close(got, want, atol=atol, rtol=atol)
        assert got_grads.keys() == want_grads.keys() and len(want_grads) > 20
        for name in want_grads:
            torch.testing.assert_close(got_grads[name], want_grads[name], atol=atol, rtol=atol, msg=name)


def test_compile_encoder_compiles_each_block_in_place():
    """model.compile_encoder compiles the Transformer blocks themselves: parameter names, and so checkpoints,
    do not change (whether the compiled blocks compute what eager ones do: the e2e test below)."""
    model = tiny_model(compile_encoder=True)
    assert all(layer._compiled_call_impl is not None for layer in model.encoder.layers)
    assert list(model.state_dict()) == list(tiny_model().state_dict())
    assert tiny_model().encoder.layers[0]._compiled_call_impl is None  # off by default


@pytest.mark.e2e  # inductor compiles C++ kernels: minutes on a busy 2-core machine
def test_compiled_encoder_gives_eager_loss_and_gradients():
    """Two batch shapes through one compilation (dynamic shapes), within fp32 tolerance: inductor fuses and
    reorders float sums (measured: loss equal, gradients within 2e-6)."""
    check_compiled_matches_eager(tiny_model(encoder_layers=1, supervised_layers="[]", compile_encoder=True), atol=1e-4)
