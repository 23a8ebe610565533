"""fast-hubert-probe on the committed speech: a tiny downstream, a few dozen updates at most.

Upstreams: a fast_hubert checkpoint pretrained by the real CLI (conftest's ``pretrained_tiny``), a
randomly initialised 2-layer stock fairseq HuBERT, and plain fbank / MFCC features.
"""

import json
from pathlib import Path

import editdistance
import numpy as np
import pytest
import torch

from fast_hubert_plugin.clustering.extractors import LayerExtractor
from fast_hubert_plugin.features.audio import read_audio
from fast_hubert_plugin.finetuning import prepare
from fast_hubert_plugin.probing import probe as probe_mod
from fast_hubert_plugin.probing.downstream import WeightedLayerSum
from fast_hubert_plugin.probing.upstreams import build_upstream
from fast_hubert_plugin.utils.cli import CommandError

from conftest import SPEECH_DIR, read_corpus_tsv, write_input_tsv

TINY = ["--hidden", "16", "--lstm-layers", "2", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def probe_data(tmp_path_factory):
    """so762: 48 training and 16 dev utterances, prepared by fast-hubert-prepare-ctc."""
    work = tmp_path_factory.mktemp("probe")
    data = work / "data"
    prepare.main(
        [
            str(write_input_tsv(work / "in" / "train.tsv", read_corpus_tsv("so762_train.tsv")[:48], SPEECH_DIR)),
            "--split",
            "train",
            "--output-dir",
            str(data),
            "--write-dict",
            "--quiet",
        ]
    )
    prepare.main(
        [
            str(write_input_tsv(work / "in" / "valid.tsv", read_corpus_tsv("so762_dev.tsv")[:16], SPEECH_DIR)),
            "--split",
            "valid",
            "--output-dir",
            str(data),
            "--quiet",
        ]
    )
    return data


@pytest.fixture(scope="module")
def fast_hubert_ckpt(pretrained_tiny):
    run_dir, _ = pretrained_tiny
    return run_dir / "checkpoints" / "checkpoint_last.pt"


def cer_from_files(hypo_word: Path, ref_word: Path):
    """Character errors and characters, recomputed here from the written word files."""
    hyps = hypo_word.read_text(encoding="utf-8").splitlines()
    refs = ref_word.read_text(encoding="utf-8").splitlines()
    assert len(hyps) == len(refs)
    errors = sum(editdistance.eval(" ".join(h.split()), " ".join(r.split())) for h, r in zip(hyps, refs))
    return errors, sum(len(" ".join(r.split())) for r in refs)


# --------------------------------------------------------------------------- the learned parts


def test_weighted_layer_sum_is_a_softmax_mixture():
    mix = WeightedLayerSum(3)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    layers = torch.stack([torch.full((2, 4, 5), float(v)) for v in (1, 10, 100)])  # (3, B, T, D)
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert torch.allclose(mix(layers), torch.full((2, 4, 5), float(w @ torch.tensor([1.0, 10.0, 100.0]))))
    with pytest.raises(ValueError, match="4 layers but 3 layer weights"):
        mix(torch.zeros(4, 1, 1, 5))


def test_ctc_min_frames_counts_a_blank_between_repeats():
    assert probe_mod.ctc_min_frames(torch.tensor([5, 6, 6, 7, 7, 7])) == 6 + 3


@pytest.fixture(scope="module")
def fast_hubert_probe(fast_hubert_ckpt, probe_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe_fast_hubert")
    cfg = probe_mod.ProbeConfig(hidden=16, batch_size=4, updates=30, log_interval=5, seed=3, lr=1e-2)
    result = probe_mod.run_probe(str(fast_hubert_ckpt), str(probe_data), str(out), cfg=cfg, progress=False)
    return result, out


def test_layer_weights_are_a_softmax_over_every_layer_and_are_learned(fast_hubert_probe, fast_hubert_ckpt):
    result, out = fast_hubert_probe
    n_blocks = len(result["_upstream"].model.encoder.layers)
    assert n_blocks == 4 and result["upstream"]["num_layers"] == n_blocks
    w = np.array(result["layer_weights"])
    assert w.shape == (n_blocks + 1,) and np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-6)
    assert result["initial_layer_weights"] == pytest.approx([1 / (n_blocks + 1)] * (n_blocks + 1))
    assert np.abs(w - 1 / (n_blocks + 1)).max() > 1e-3  # they moved
    assert w == pytest.approx(torch.softmax(result["_probe"].featurizer.weights.detach(), 0).numpy())
    saved = json.loads((out / "probe.json").read_text())
    assert saved["layer_weights"] == result["layer_weights"] and saved["best_layer"] == int(w.argmax())
    assert f"layer  {saved['best_layer']}" in (out / "summary.txt").read_text()
    assert result["upstream"]["frame_rate"] == 25.0 and result["upstream"]["dim"] == 256


def test_upstream_gets_no_gradient_and_does_not_change(fast_hubert_probe, fast_hubert_ckpt):
    result, _ = fast_hubert_probe
    model = result["_upstream"].model
    params = list(model.named_parameters())
    assert params and all(not p.requires_grad and p.grad is None for _, p in params)
    saved = torch.load(fast_hubert_ckpt, map_location="cpu")["model"]
    for name, p in params:
        assert torch.equal(p, saved[name]), name
    assert all(p.grad is not None for p in result["_probe"].parameters())  # the downstream did train


def test_ctc_loss_falls_on_the_training_split(fast_hubert_probe):
    curve = fast_hubert_probe[0]["train"]["curve"]
    assert [c["update"] for c in curve] == [5, 10, 15, 20, 25, 30]
    assert curve[-1]["loss"] < 0.5 * curve[0]["loss"], curve


def test_reported_cer_equals_the_written_hypotheses(fast_hubert_probe, probe_data):
    result, out = fast_hubert_probe
    errors, chars = cer_from_files(out / "hypo.word", probe_data / "valid.wrd")
    dev = result["dev"]
    assert (dev["char_errors"], dev["chars"], dev["utterances"]) == (errors, chars, 16)
    assert dev["cer"] == pytest.approx(100.0 * errors / chars)
    assert (out / "ref.word").read_text() == (probe_data / "valid.wrd").read_text()
    assert len((out / "hypo.ltr").read_text().splitlines()) == 16


# --------------------------------------------------------------------------- every upstream, by the CLI


@pytest.mark.parametrize(
    "kind,layers,dim,rate",
    [("fbank", 0, 80, 100.0), ("mfcc", 0, 39, 100.0), ("fast_hubert", 4, 256, 25.0), ("hubert", 2, 64, 50.0)],
)
@pytest.mark.e2e  # the fast_hubert upstream is pretrained with fairseq-hydra-train first
def test_every_upstream_runs_through_the_cli(kind, layers, dim, rate, probe_data, request, tmp_path, capsys):
    upstream = {"fast_hubert": "fast_hubert_ckpt", "hubert": "tiny_hubert_checkpoint"}.get(kind)
    upstream = str(request.getfixturevalue(upstream)) if upstream else kind
    result = probe_mod.main(
        [
            "--upstream",
            upstream,
            "--data",
            str(probe_data),
            "--output-dir",
            str(tmp_path),
            "--updates",
            "4",
            "--log-interval",
            "2",
            *TINY,
        ]
    )
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["upstream"] | {"source": None} == {
        "kind": kind,
        "num_layers": layers,
        "dim": dim,
        "frame_rate": rate,
        "source": None,
    }
    assert len(saved["layer_weights"]) == layers + 1 and saved["train"]["utterances"] == 48
    assert [c["update"] for c in saved["train"]["curve"]] == [2, 4]
    errors, chars = cer_from_files(tmp_path / "hypo.word", tmp_path / "ref.word")
    assert saved["dev"]["cer"] == pytest.approx(100.0 * errors / chars)
    assert capsys.readouterr().out == (tmp_path / "summary.txt").read_text()


def test_stock_hubert_layers_match_the_clustering_extractor(tiny_hubert_checkpoint):
    """Layer L of the hubert upstream is what fast-hubert-dump writes for --layer L; layer 0 (the
    Transformer input) has the same frames."""
    wav = read_audio(SPEECH_DIR / read_corpus_tsv("so762_dev.tsv")[0]["path"])
    layers = build_upstream(str(tiny_hubert_checkpoint)).layers(wav)
    for layer in (1, 2):
        expected = LayerExtractor(str(tiny_hubert_checkpoint), layer).extract([wav])[0]
        assert torch.allclose(layers[layer], torch.from_numpy(expected), atol=1e-5)
    assert layers.shape[0] == 3 and not torch.allclose(layers[0], layers[1])


def test_same_seed_same_result_other_seed_other_result(probe_data, tmp_path):
    def run(seed, name):
        cfg = probe_mod.ProbeConfig(hidden=8, lstm_layers=1, batch_size=4, updates=3, log_interval=1, seed=seed)
        r = probe_mod.run_probe("fbank", str(probe_data), str(tmp_path / name), cfg=cfg, progress=False)
        return r["train"]["curve"], (tmp_path / name / "hypo.ltr").read_text()

    first, again, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert first == again and first[0] != other[0]


# --------------------------------------------------------------------------- bad input


def probe_error(capsys, *args):
    with pytest.raises(CommandError) as e:
        probe_mod.main([*args, *TINY, "--updates", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("fast-hubert-probe: error: ") and "Fix: " in err
    return err.strip()


def test_missing_letters_is_one_line(probe_data, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.tsv", "valid.tsv", "dict.ltr.txt", "train.ltr"):
        (data / name).write_text((probe_data / name).read_text())
    err = probe_error(capsys, "--upstream", "fbank", "--data", str(data), "--output-dir", str(tmp_path / "out"))
    assert err.startswith(
        f"fast-hubert-probe: error: {data / 'valid.ltr'}: letter labels not found. Fix: run fast-hubert-prepare-ctc"
    )
    assert not (tmp_path / "out" / "probe.json").exists()


def test_wrong_dictionary_names_the_letter_file_and_line(probe_data, tmp_path, capsys):
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("train.ltr", "valid.ltr"):
        (labels / name).write_text((probe_data / name).read_text())
    first_line = (probe_data / "train.ltr").read_text().splitlines()[0]
    dropped = first_line.split()[0]
    kept = [line for line in (probe_data / "dict.ltr.txt").read_text().splitlines() if line.split()[0] != dropped]
    (labels / "dict.ltr.txt").write_text("\n".join(kept) + "\n")
    err = probe_error(
        capsys,
        "--upstream",
        "fbank",
        "--data",
        str(probe_data),
        "--label-dir",
        str(labels),
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert err.startswith(
        f"fast-hubert-probe: error: {labels / 'train.ltr'}, line 1: letter(s) ['{dropped}'] not in "
        f"the dictionary {labels / 'dict.ltr.txt'}. Fix: pass the dict.ltr.txt"
    )


def test_unknown_upstream_is_one_line(probe_data, tmp_path, capsys):
    err = probe_error(capsys, "--upstream", "wav2vec", "--data", str(probe_data), "--output-dir", str(tmp_path))
    assert err.startswith(
        "fast-hubert-probe: error: wav2vec: unknown upstream: neither a feature name nor a "
        "checkpoint file. Fix: pass --upstream fbank or --upstream mfcc"
    )


def test_a_checkpoint_of_another_model_is_one_line(probe_data, tmp_path, capsys):
    bad = tmp_path / "not_a_checkpoint.pt"
    torch.save({"weights": torch.zeros(3)}, bad)
    err = probe_error(capsys, "--upstream", str(bad), "--data", str(probe_data), "--output-dir", str(tmp_path))
    assert err.startswith(f"fast-hubert-probe: error: {bad}: cannot load the checkpoint")


def test_every_layer_is_standardised_with_the_training_frames():
    torch.manual_seed(0)
    train = [torch.randn(3, t, 4) * torch.tensor([1.0, 10.0, 0.1])[:, None, None] + 5 for t in (7, 11)]
    norm = probe_mod.LayerStandardiser([x.to(torch.float16) for x in train])
    x, lengths = norm.batch([x.to(torch.float16) for x in train], "cpu")
    assert x.shape == (3, 2, 11, 4) and lengths.tolist() == [7, 11] and torch.all(x[:, 0, 7:] == 0)
    frames = torch.cat([x[:, 0, :7], x[:, 1]], dim=1)  # (3, 18, 4): every real frame
    assert torch.allclose(frames.mean(1), torch.zeros(3, 4), atol=1e-4)
    assert torch.allclose(frames.std(1, unbiased=False), torch.ones(3, 4), atol=1e-3)


def test_padding_changes_no_valid_frame_of_the_downstream():
    from fast_hubert_plugin.probing.downstream import CtcProbe, reverse_valid

    x = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 1)
    assert reverse_valid(x, torch.tensor([6, 4]))[:, :, 0].tolist() == [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 4, 5]]
    torch.manual_seed(0)
    net = CtcProbe(3, 5, 7, hidden=6, lstm_layers=2).eval()
    short, long = torch.randn(3, 1, 9, 5), torch.randn(3, 1, 20, 5)
    alone = net(short, torch.tensor([9]))
    padded = torch.cat([torch.cat([short, torch.full((3, 1, 11, 5), 50.0)], dim=2), long], dim=1)
    batched = net(padded, torch.tensor([9, 20]))
    assert torch.allclose(batched[0, :9], alone[0], atol=1e-6)
    assert torch.allclose(batched[1], net(long, torch.tensor([20]))[0], atol=1e-6)
