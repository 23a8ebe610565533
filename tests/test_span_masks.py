"""Span masks drawn in the loader workers: the mask the model drew itself before (fairseq's
compute_mask_indices from the utterance keys, on the model's own frames), the same in every process
and after a restart, with the statistics of fairseq's unkeyed draw."""

import shutil

import numpy as np
import pytest
import torch
from fairseq.data.data_utils import compute_mask_indices

from fast_hubert_plugin.cli.store_fbank import main as store_fbank
from fast_hubert_plugin.data.span_masks import MASK_RNG_STREAM, SpanMasking
from fast_hubert_plugin.models.fast_hubert import FastHubertOutput

from test_data import make_task

MASK_FIELDS = ("time_mask", "masked_frames", "unmasked_frames")


def model_cfg(**kw):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {"_name": "fast_hubert", "label_rate": 50.0, "encoder_layers": 2, "encoder_embed_dim": 32}
        | {"encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "conv_pos": 8, "conv_pos_groups": 4}
        | {"conv_channels": 32, "fbank_encoder_dim": 16, "mask_prob": 0.8, "mask_length": 10, "dropout": 0.0}
        | {"attention_dropout": 0.0, "activation_dropout": 0.0, "dropout_input": 0.0, "encoder_layerdrop": 0.0}
        | kw
    )


@pytest.fixture(scope="module")
def data(pretraining_data, tmp_path_factory):
    """The tiny pretraining data, a second label set ``km2`` and the fbank store of the train split."""
    d = tmp_path_factory.mktemp("masks") / "data"
    shutil.copytree(pretraining_data, d)
    for name in ("train.km", "dict.km.txt"):
        shutil.copy(d / name, d / name.replace("km", "km2"))
    store_fbank([str(d / "train.tsv"), "--output-dir", str(d / "fbank")])
    return d


def loaded(data, *, labels=("km",), model=None, **task_kw):
    """A task whose model was built (the train split loaded after it, as fairseq does) and the model."""
    task = make_task(data, **task_kw)
    task.cfg.labels = list(labels)
    torch.manual_seed(0)
    built = task.build_model(model_cfg(**(model or {})))
    task.load_dataset("train")
    return task, built.eval()


def models_own_mask(model, net_input, target_list):
    """What FastHubertModel.apply_mask drew before masks moved to the loader, on the model's own frames
    and padding: fairseq's compute_mask_indices keyed by (MASK_RNG_STREAM, 0, key)."""
    c = model.cfg
    with torch.no_grad():
        feats, padding = model.forward_features(net_input["source"], net_input["padding_mask"])
        feats, _, padding = model.forward_targets(feats, target_list, padding)
    mask = compute_mask_indices(
        feats.shape[:2],
        padding,
        c.mask_prob,
        c.mask_length,
        c.mask_selection,
        c.mask_other,
        min_masks=2,
        no_overlap=c.no_mask_overlap,
        min_space=c.mask_min_space,
        seed=MASK_RNG_STREAM,
        epoch=0,
        indices=net_input["rng_keys"],
    )
    return torch.from_numpy(mask), padding


CASES = {
    "40ms": dict(),
    "40ms-padded-two-label-sets": dict(pad_audio=True, labels=("km", "km2")),
    "40ms-store-padded": dict(pad_audio=True, store=True),
    "20ms-padded": dict(pad_audio=True, model={"conv_kernel_sizes": "5"}),
    "80ms-padded": dict(pad_audio=True, model={"conv_kernel_sizes": "5,5,5"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_loaders_masks_are_the_ones_the_model_drew(data, case):
    kw = dict(CASES[case])
    if kw.pop("store", False):
        kw["feature_dir"] = str(data / "fbank")
    task, model = loaded(data, **kw)
    ds = task.datasets["train"]
    padded = False
    for seed, rows in ((1, [0, 5, 9, 30]), (2, [3, 17, 40, 41, 50]), (3, [44, 12])):
        ds.set_seed(seed)
        batch = ds.collater([ds[i] for i in rows])
        net_input, targets = batch["net_input"], batch["target_list"]
        want, padding = models_own_mask(model, net_input, targets)
        padded |= padding is not None and bool(padding.any())
        assert torch.equal(net_input["time_mask"], want)
        counts = want.sum(dim=1)
        assert counts.min() == counts.max() > 0  # every row the same: the batch's count is known on the host
        valid = torch.ones_like(want) if padding is None else ~padding
        assert torch.equal(net_input["masked_frames"], (want & valid).flatten().nonzero().squeeze(1))
        assert torch.equal(net_input["unmasked_frames"], (~want & valid).flatten().nonzero().squeeze(1))
        # the model applies the loader's mask exactly as the mask it draws from the keys itself
        with torch.no_grad():
            given = model(target_list=targets, compute_unmasked=True, **net_input)
            drawn = model(
                target_list=targets,
                compute_unmasked=True,
                **{k: v for k, v in net_input.items() if k not in MASK_FIELDS},
            )
        assert isinstance(given, FastHubertOutput) and torch.equal(given.mask_indices, drawn.mask_indices)
        for a, b in zip(given.heads, drawn.heads):
            assert torch.equal(a.masked.logits, b.masked.logits) and torch.equal(a.unmasked.targets, b.unmasked.targets)
    assert padded == ("padded" in case)


def test_masks_come_from_seed_epoch_and_utterance_in_any_process(data):
    """fairseq's batch iterator with a loader worker process gives the batches, masks included, of the
    main process; a fresh task (a restarted run) gives them again; another epoch other masks."""
    task, _ = loaded(data)

    def batches(task, workers, epoch=1):
        itr = task.get_batch_iterator(
            task.datasets["train"],
            max_tokens=2400,
            seed=5,
            num_workers=workers,
            epoch=epoch,
            max_positions=None,
            disable_iterator_cache=True,
        )
        return [b["net_input"] for b in itr.next_epoch_itr(shuffle=True)]

    np.random.seed(0)
    main = batches(task, 0)
    np.random.seed(123)
    worker = batches(task, 1)
    restarted = batches(loaded(data)[0], 0)
    assert len(main) == len(worker) == len(restarted) > 3
    for a, b, c in zip(main, worker, restarted):
        for key in ("rng_keys",) + MASK_FIELDS:
            assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
    other = batches(task, 0, epoch=2)
    assert not any(torch.equal(a["rng_keys"], b["rng_keys"]) for a, b in zip(main, other))


def test_a_model_built_later_reaches_the_datasets_loaded_before(data):
    """fairseq loads the valid splits before it builds the model."""
    task = make_task(data)
    task.load_dataset("valid")
    assert task.datasets["valid"].span_masking is None
    model = task.build_model(model_cfg())
    assert task.datasets["valid"].span_masking == model.span_masking()
    ds = task.datasets["valid"]
    assert set(MASK_FIELDS) <= set(ds.collater([ds[0], ds[1]])["net_input"])


def run_lengths(mask: np.ndarray):
    """Lengths of the runs of masked frames, row by row."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    return np.flatnonzero(edges.ravel() == -1) - np.flatnonzero(edges.ravel() == 1)


def test_keyed_masks_have_the_statistics_of_fairseqs_unkeyed_draw(monkeypatch):
    """1,200 batches of 4 utterances of 40..150 frames (40 ms Base masking: p 0.8, spans of 10), keyed by
    random utterance keys, against fairseq's compute_mask_indices without keys (fresh generators, seeded
    here so that the test is deterministic): the masked fraction and the spans per utterance agree
    within 4 standard errors, and the distribution of span lengths within 0.03 (total variation)."""
    spec = SpanMasking(subsampling_convs=2, label_stride=2, mask_prob=0.8, mask_length=10)
    rng = np.random.default_rng(0)
    shapes = []
    for _ in range(1200):
        lengths = rng.integers(40, 151, size=4)
        padding = torch.arange(lengths.max())[None, :] >= torch.from_numpy(lengths)[:, None]
        shapes.append((padding, torch.from_numpy(rng.integers(0, 2**62, size=4))))

    keyed = [spec.draw(p.shape, p, keys).numpy() for p, keys in shapes]
    real_rng, stream = np.random.default_rng, np.random.default_rng(1)
    monkeypatch.setattr(
        np.random, "default_rng", lambda seed=None: real_rng(stream.integers(2**63) if seed is None else seed)
    )
    unkeyed = [compute_mask_indices(p.shape, p, 0.8, 10, min_masks=2) for p, _ in shapes]
    monkeypatch.undo()

    def stats(masks):
        fraction, spans, lengths = [], [], []
        for (padding, _), m in zip(shapes, masks):
            assert not (m & padding.numpy()).any() and len(set(m.sum(axis=1))) == 1
            fraction += list(m.sum(axis=1) / (~padding).sum(dim=1).numpy())
            runs = [run_lengths(row[None, :]) for row in m]
            spans += [len(r) for r in runs]
            lengths += [x for r in runs for x in r]
        return np.array(fraction), np.array(spans), np.bincount(np.minimum(lengths, 30), minlength=31)

    (fk, sk, lk), (fu, su, lu) = stats(keyed), stats(unkeyed)
    for a, b in ((fk, fu), (sk, su)):
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)
    # measured: 39 % of the frames masked, in 11 runs per utterance (thinning rows to the batch's smallest
    # masked count breaks spans), half the runs 1 frame long; the two draws differ by 0.2 % and 0.006 (TV)
    assert 0.3 < fk.mean() < 0.5 and sk.mean() > 2
    assert 0.5 * np.abs(lk / lk.sum() - lu / lu.sum()).sum() < 0.03


def test_an_utterance_too_short_for_masking_fails_in_the_loader_with_the_setting_to_change(data):
    task, _ = loaded(data)
    ds = task.datasets["train"]
    ds.max_sample_size = 40  # crops of 40 fbank frames: 10 model frames for spans of 10
    ds.set_seed(1)
    with pytest.raises(ValueError) as e:
        ds.collater([ds[i] for i in range(8)])
    message = str(e.value)
    assert message.startswith("an utterance of 10 model frames is too short for masking spans of model.mask_length=10")
    assert message.endswith(
        "Keep utterances of at least 13 model frames: set task.min_sample_size to at least 52 fbank frames"
    )
