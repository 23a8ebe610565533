"""fast-hubert-export: checkpoints -> Hugging Face transformers folders that work without fairseq.

The exported folders are loaded in a subprocess of this venv where ``fairseq`` and
``fast_hubert_plugin`` cannot be imported: an import hook (``BLOCK_FAIRSEQ``) refuses them, as if
they were not installed, and the subprocess checks that ``import fairseq`` fails before it starts.
torchaudio, there only because fairseq declares it, is hidden as well. Its Hugging Face caches
point into a temporary folder and it runs offline (``HF_HUB_OFFLINE``). The fairseq side (reference outputs, ``fast-hubert-decode``) runs in the test process.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from fast_hubert_plugin.export.cli import export
from fast_hubert_plugin.features.kaldi_fbank import compute_fbank, float32_log_mel_tolerance
from fast_hubert_plugin.finetuning.ctc import cer

from conftest import FINETUNE_UPDATES, FINETUNED_TRAIN_CER_BELOW, cli, read_corpus_tsv

BLOCK_FAIRSEQ = textwrap.dedent("""
    import importlib.abc, sys

    # torchaudio is in this venv only because fairseq declares it, and it cannot load beside CPU torch:
    # without fairseq it would not be installed, so it is hidden too (transformers then skips it)
    sys.modules["torchaudio"] = None

    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("fairseq", "fast_hubert_plugin"):
                raise ImportError(f"{name} is not installed here (blocked by the test)")
            return None

    sys.meta_path.insert(0, _Blocked())
    try:
        import fairseq  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("fairseq is importable: the test would not prove anything")
""")


def run_without_fairseq(code: str, tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    script = tmp_path / "no_fairseq.py"
    script.write_text(BLOCK_FAIRSEQ + textwrap.dedent(code))
    env = dict(
        os.environ,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH="",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"subprocess without fairseq failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def load_wavs(speech_root: Path, rows):
    return [sf.read(speech_root / r["path"], dtype="float32")[0] for r in rows]


def fairseq_model(ckpt: Path, data: Path = None):
    from fairseq import checkpoint_utils

    import fast_hubert_plugin  # noqa: F401

    overrides = None if data is None else {"data": str(data), "label_dir": str(data)}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)], arg_overrides=overrides)
    return models[0].eval(), task


@torch.inference_mode()
def fairseq_hidden_states(model, fbanks):
    """Every layer of the fast_hubert model for a padded batch of raw fbanks, with the models' own methods:
    layer 0 the Transformer input, L the output of block L (the FeatureExtractor convention)."""
    lengths = torch.tensor([f.shape[0] for f in fbanks])
    source = torch.zeros(len(fbanks), int(lengths.max()), fbanks[0].shape[1])
    for b, f in enumerate(fbanks):
        source[b, : f.shape[0]] = torch.from_numpy(f)
    pad = torch.arange(source.shape[1])[None, :] >= lengths[:, None]
    features, out_mask = model.forward_features(source, pad)
    x = model.dropout_input(model.post_extract_proj(model.layer_norm(features)))
    n = len(model.encoder.layers)
    _, outputs = model.encoder.extract_features(x, out_mask, return_layers=list(range(1, n + 1)))
    frames = model.subsampler.downsample_factor
    out_len = [int(-(-int(t) // frames)) for t in lengths]  # ceil(T / 4)
    states = [x] + [outputs[i] for i in range(1, n + 1)]
    return [np.stack([s[b, : out_len[b]].numpy() for s in states]) for b in range(len(fbanks))]


# --------------------------------------------------------------------------- refusals


def export_main(*args):
    """fast-hubert-export in this process: (exit code, stderr lines)."""
    from fast_hubert_plugin.export import cli as export_cli

    try:
        export_cli.main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


def test_export_refuses_stock_hubert_pointing_to_transformers_converter(tmp_path, capsys):
    ckpt = tmp_path / "hubert.pt"
    torch.save(
        {
            "cfg": {"model": {"_name": "hubert"}, "task": {"_name": "hubert_pretraining"}},
            "model": {"encoder.layers.0.fc1.weight": torch.zeros(2, 2)},
            "extra_state": {},
            "optimizer_history": [
                {
                    "criterion_name": "HubertCriterion",
                    "optimizer_name": "Adam",
                    "lr_scheduler_state": {},
                    "num_updates": 0,
                }
            ],
        },
        ckpt,
    )
    assert export_main(ckpt, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fast-hubert-export: error:"), err
    assert "stock HuBERT" in err[0] and "convert_hubert_original_pytorch_checkpoint_to_pytorch" in err[0]
    assert str(ckpt) in err[0]
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [ckpt]  # nothing half-written


def test_export_refuses_existing_folder_and_missing_checkpoint(tmp_path, capsys):
    assert export_main(tmp_path / "nope.pt", tmp_path / "out") == 2
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"")
    assert export_main(ckpt, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err


# --------------------------------------------------------------------------- pretrained model


@pytest.fixture(scope="module")
def exported_pretrained(pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "pretrained_hf"
    cli("fast-hubert-export", pretrained, out)
    return out


def test_export_folder_holds_model_code_weights_and_card(exported_pretrained):
    files = {p.name for p in exported_pretrained.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "configuration_fast_hubert.py",
        "modeling_fast_hubert.py",
        "feature_extraction_fast_hubert.py",
        "preprocessor_config.json",
        "README.md",
    } <= files
    assert not any(n.startswith(".") for n in files)
    for name in ("configuration_fast_hubert.py", "modeling_fast_hubert.py", "feature_extraction_fast_hubert.py"):
        code = (exported_pretrained / name).read_text()
        imports = {line.split()[1].split(".")[0] for line in code.splitlines() if line.startswith(("import ", "from "))}
        assert imports <= {"torch", "numpy", "transformers", "typing", "dataclasses", "math", "itertools", ""}, (
            name,
            imports,
        )
    config = json.loads((exported_pretrained / "config.json").read_text())
    assert config["model_type"] == "fast_hubert" and config["num_hidden_layers"] == 4 and config["hidden_size"] == 256
    assert config["subsampler_kernel_sizes"] == [5, 5]
    card = (exported_pretrained / "README.md").read_text()
    assert "hidden_states[0]" in card and "Transformer input" in card and "@inproceedings{yang2023fasthubert" in card


def test_exported_model_equals_fairseq_on_real_speech_without_fairseq(
    pretrained, exported_pretrained, speech_root, tmp_path
):
    """Every hidden state equals fairseq's (fp32, <= 1e-4), a padded batch equals each utterance alone,
    and the exported fbank equals the training fbank within float32 rounding (features/kaldi_fbank.py)."""
    rows = read_corpus_tsv("librispeech_train_clean_100.tsv")[:3] + read_corpus_tsv("so762_dev.tsv")[:3]
    wavs = load_wavs(speech_root, rows)
    model, _ = fairseq_model(pretrained)
    raw = [compute_fbank(w) for w in wavs]  # the training fbank
    normed = [((torch.from_numpy(f) - model.cmvn_mean) * model.cmvn_inv_std).numpy() for f in raw]
    reference = fairseq_hidden_states(model, raw)
    # the convention is FeatureExtractor's (and fast-hubert-dump --layer L's): layer 0 the Transformer input
    from fast_hubert_plugin.models.layer_features import FeatureExtractor

    fx = FeatureExtractor(model).extract_batch([torch.from_numpy(f) for f in raw], layers="all")
    for i, ref in enumerate(reference):
        assert np.array_equal(np.stack([fx[i][layer].numpy() for layer in range(5)]), ref)
    np.savez(
        tmp_path / "inputs.npz",
        **{f"wav{i}": w for i, w in enumerate(wavs)},
        **{f"feat{i}": f for i, f in enumerate(normed)},
    )
    run_without_fairseq(
        f"""
        import numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModel
        folder = {str(exported_pretrained)!r}
        fe = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        z = np.load("inputs.npz")
        n = {len(wavs)}
        wavs = [z[f"wav{{i}}"] for i in range(n)]
        feats = [z[f"feat{{i}}"] for i in range(n)]
        out = {{}}
        with torch.inference_mode():
            # the feature extractor: raw fbank, and normalised + padded batch
            raw, frames = fe.fbank([torch.from_numpy(w) for w in wavs])
            batch = fe(wavs, sampling_rate=16000, return_tensors="pt", padding=True)
            out["fe_frames"] = frames.numpy()
            out["fe_mask"] = batch["attention_mask"].numpy()
            for i in range(n):
                out[f"fe_raw{{i}}"] = raw[i, : int(frames[i])].numpy()
                out[f"fe_norm{{i}}"] = batch["input_features"][i, : int(frames[i])].numpy()
            # the model on the training features: each alone, then all in one padded batch
            T = max(f.shape[0] for f in feats)
            x = torch.zeros(n, T, feats[0].shape[1])
            mask = torch.zeros(n, T, dtype=torch.long)
            for i, f in enumerate(feats):
                x[i, : len(f)] = torch.from_numpy(f)
                mask[i, : len(f)] = 1
                alone = model(input_features=torch.from_numpy(f)[None], output_hidden_states=True)
                out[f"alone{{i}}"] = torch.stack(alone.hidden_states)[:, 0].numpy()
            padded = model(input_features=x, attention_mask=mask, output_hidden_states=True)
            lengths = model.output_lengths(mask.sum(-1))
            hs = torch.stack(padded.hidden_states)
            assert torch.equal(padded.last_hidden_state, hs[-1])
            for i in range(n):
                out[f"padded{{i}}"] = hs[:, i, : int(lengths[i])].numpy()
            # end to end: waveform -> feature extractor -> model, as a user runs it
            e2e = model(**batch, output_hidden_states=True)
            for i in range(n):
                out[f"e2e{{i}}"] = torch.stack(e2e.hidden_states)[:, i, : int(lengths[i])].numpy()
        np.savez("outputs.npz", **out)
    """,
        tmp_path,
    )
    got = np.load(tmp_path / "outputs.npz")
    assert got["fe_frames"].tolist() == [f.shape[0] for f in raw]
    assert got["fe_mask"].sum(1).tolist() == [f.shape[0] for f in raw]
    # The fbank: the training fbank is float32, the exported extractor float64; they differ by float32
    # rounding alone, within the bound stated beside the fbank (wide only in bins far below their frame's
    # energy), and CMVN scales that bound by each bin's inverse std.
    bounds = [float32_log_mel_tolerance(w, f) for w, f in zip(wavs, raw)]
    diffs = np.concatenate([np.abs(got[f"fe_raw{i}"] - raw[i]) for i in range(len(raw))])
    for i, bound in enumerate(bounds):
        assert (np.abs(got[f"fe_raw{i}"] - raw[i]) <= bound).all(), i
        assert (np.abs(got[f"fe_norm{i}"] - normed[i]) <= bound * model.cmvn_inv_std.numpy() + 1e-6).all(), i
    for i, ref in enumerate(reference):
        assert ref.shape[0] == 5  # layer 0 (Transformer input) + 4 blocks
        for kind in ("alone", "padded"):
            assert got[f"{kind}{i}"].shape == ref.shape, (kind, i)
            diff = float(np.abs(got[f"{kind}{i}"] - ref).max())
            assert diff <= 1e-4, (kind, i, diff)
        e2e = float(np.abs(got[f"e2e{i}"] - ref).max())  # waveform -> exported fbank -> model
        assert e2e <= 5e-3, (i, e2e)
        print(
            f"utterance {i}: max |hidden diff| alone {np.abs(got[f'alone{i}'] - ref).max():.1e}, "
            f"padded {np.abs(got[f'padded{i}'] - ref).max():.1e}, end to end {e2e:.1e}"
        )
    print(
        f"fbank: max |diff| {diffs.max():.1e}, bins 12..79 {diffs[:, 12:].max():.1e}, "
        f"share over 1e-3 {(diffs > 1e-3).mean():.1e}, largest share of the float32 bound "
        f"{max(float((np.abs(got[f'fe_raw{i}'] - raw[i]) / b).max()) for i, b in enumerate(bounds)):.2f}"
    )


# --------------------------------------------------------------------------- fine-tuned model


@pytest.fixture(scope="module")
def exported_ctc(finetuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ctc_hf"
    export(finetuned["ckpt"], out)  # the letter dictionary found through the checkpoint's task.label_dir
    return out


def top2_margin(lprobs: np.ndarray) -> np.ndarray:
    """(frames,) gap between the best and the second-best log-probability of each frame."""
    top = np.sort(lprobs, axis=-1)
    return top[:, -1] - top[:, -2]


LPROBS_TOLERANCE = 1e-3  # fairseq vs transformers log-probs (float32 kernels of different shapes)


def test_pipeline_transcripts_equal_fast_hubert_decode_without_fairseq(finetuned, exported_ctc, speech_root, tmp_path):
    """On the utterances the model was fine-tuned on (transcripts that mean something: the model learnt
    them), transformers' ASR pipeline gives fast-hubert-decode's transcripts and fairseq's log-probs.
    Transcripts are compared where no frame's two best log-probs lie within twice the tolerance (there
    the exported model's best letter is fairseq's); elsewhere the log-probs themselves are."""
    files = {p.name for p in exported_ctc.iterdir()}
    assert {"vocab.json", "tokenizer_config.json", "tokenization_fast_hubert.py", "preprocessor_config.json"} <= files
    card = (exported_ctc / "README.md").read_text()
    assert "fine-tuned with letter CTC" in card and "Pretrained (before fine-tuning)" in card
    assert f"Updates: {FINETUNE_UPDATES}" in card
    dec = tmp_path / "dec"
    decode = ["--data", finetuned["data"], "--split", "train", "--results-dir", dec, "--quiet"]
    cli("fast-hubert-decode", finetuned["ckpt"], *decode)
    expected = (dec / "hypo.word").read_text().splitlines()
    refs = (dec / "ref.word").read_text().splitlines()
    rows = finetuned["train"]
    assert len(expected) == len(rows) and cer(expected, refs) < FINETUNED_TRAIN_CER_BELOW  # they mean something
    wavs = load_wavs(speech_root, rows)
    np.savez(tmp_path / "wavs.npz", *wavs)
    model, _ = fairseq_model(finetuned["ckpt"], finetuned["data"])
    with torch.inference_mode():
        ref_lprobs = [
            model.get_normalized_probs(
                model(source=torch.from_numpy(compute_fbank(w))[None], padding_mask=None), log_probs=True
            )[:, 0].numpy()
            for w in wavs
        ]
    proc = run_without_fairseq(
        f"""
        import json
        import numpy as np, torch
        from transformers import AutoModelForCTC, AutoProcessor, pipeline
        folder = {str(exported_ctc)!r}
        z = np.load("wavs.npz")
        wavs = [z[f"arr_{{i}}"] for i in range(len(z.files))]
        asr = pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True)
        texts = [asr({{"raw": w, "sampling_rate": 16000}})["text"] for w in wavs]
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForCTC.from_pretrained(folder, trust_remote_code=True).eval()
        lprobs = []
        with torch.inference_mode():
            for w in wavs:
                inputs = processor([w], sampling_rate=16000, return_tensors="pt")
                lprobs.append(torch.log_softmax(model(**inputs).logits[0], -1).numpy())
        np.savez("lprobs.npz", *lprobs)
        print(json.dumps(texts))
    """,
        tmp_path,
    )
    texts = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(tmp_path / "lprobs.npz") as z:
        lprobs = [z[f"arr_{i}"] for i in range(len(z.files))]
    compared = 0
    for i, (lp, ref) in enumerate(zip(lprobs, ref_lprobs)):
        assert lp.shape == ref.shape and float(np.abs(lp - ref).max()) <= LPROBS_TOLERANCE, i
        clear = top2_margin(ref) > 2 * LPROBS_TOLERANCE
        assert (lp.argmax(-1) == ref.argmax(-1))[clear].all(), i  # the same best letter where it is clear
        if clear.all():
            assert texts[i] == expected[i], (i, texts[i], expected[i])
            compared += 1
    print(f"pipeline == fast-hubert-decode on {compared} of {len(texts)} utterances (the rest: by log-probs)")
    assert compared >= len(texts) // 2


def test_exported_pretrained_model_fine_tunes_with_plain_transformers(exported_pretrained, speech_root, tmp_path):
    """A few CTC steps with transformers + torch only (no fairseq) on real speech: the loss falls."""
    rows = read_corpus_tsv("so762_train.tsv")[:4]
    wavs = load_wavs(speech_root, rows)
    np.savez(tmp_path / "train.npz", *wavs)
    (tmp_path / "texts.json").write_text(json.dumps([r["text"] for r in rows]))
    proc = run_without_fairseq(
        f"""
        import json
        import numpy as np, torch
        from transformers import AutoFeatureExtractor, AutoModelForCTC
        torch.manual_seed(0)
        folder = {str(exported_pretrained)!r}
        z = np.load("train.npz")
        wavs = [z[f"arr_{{i}}"] for i in range(len(z.files))]
        texts = json.load(open("texts.json"))
        letters = sorted(set("".join(texts).replace(" ", "|")))
        vocab = {{c: i + 1 for i, c in enumerate(letters)}}  # 0: blank
        labels = torch.full((len(texts), max(map(len, texts))), -100)
        for b, t in enumerate(texts):
            ids = [vocab[c] for c in t.replace(" ", "|")]
            labels[b, : len(ids)] = torch.tensor(ids)
        fe = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForCTC.from_pretrained(folder, trust_remote_code=True, vocab_size=len(vocab) + 1,
                                                pad_token_id=0, ctc_loss_reduction="mean")
        model.freeze_subsampler()
        model.train()
        batch = fe(wavs, sampling_rate=16000, return_tensors="pt", padding=True)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
        w0 = model.fast_hubert.encoder.layers[0].feed_forward.intermediate_dense.weight.detach().clone()
        losses = []
        for step in range(8):
            loss = model(**batch, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        moved = (model.fast_hubert.encoder.layers[0].feed_forward.intermediate_dense.weight - w0).abs().max().item()
        assert moved > 0, "the Transformer did not train"
        print(json.dumps(losses))
    """,
        tmp_path,
    )
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    print("CTC losses with plain transformers:", [round(x, 2) for x in losses])


def test_ctc_export_refuses_a_letter_dictionary_of_another_size(finetuned, tmp_path):
    from fast_hubert_plugin.export.convert import ExportError

    bad = tmp_path / "dict.ltr.txt"
    bad.write_text("| 10\nE 5\n")
    with pytest.raises(ExportError, match=r"6 symbols .* but the CTC head has \d+ outputs"):
        export(finetuned["ckpt"], tmp_path / "out", dict_path=str(bad))
    assert not (tmp_path / "out").exists()


def test_overwrite_replaces_an_existing_export_whole(pretrained, exported_pretrained, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(exported_pretrained, out)
    (out / "stale.txt").write_text("from an older export")
    (out / "model.safetensors").write_bytes(b"not weights")
    assert export_main(pretrained, out) == 2  # refused without --overwrite, left as it was
    assert "already exists" in capsys.readouterr().err and (out / "model.safetensors").read_bytes() == b"not weights"
    assert export_main(pretrained, out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in exported_pretrained.iterdir())
    for name in ("model.safetensors", "config.json", "preprocessor_config.json"):
        assert (out / name).read_bytes() == (exported_pretrained / name).read_bytes(), name
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left beside it


def test_ctc_export_without_a_readable_letter_dictionary_fails_with_the_fix(finetuned, tmp_path, capsys):
    """The dictionary missing where the checkpoint's task says, missing where --dict says, or malformed:
    one line naming the file (and line) and what to pass; nothing written."""
    moved = tmp_path / "moved.pt"  # a checkpoint whose fine-tuning data folder is gone
    state = torch.load(finetuned["ckpt"], map_location="cpu", weights_only=False)
    state["cfg"]["task"]["data"] = state["cfg"]["task"]["label_dir"] = str(tmp_path / "gone")
    torch.save(state, moved)
    assert export_main(moved, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "dict.ltr.txt of the fine-tuning data was not found" in err and "pass --dict PATH/dict.ltr.txt" in err
    assert export_main(finetuned["ckpt"], tmp_path / "out", "--dict", tmp_path / "absent.txt") == 2
    assert f"{tmp_path / 'absent.txt'}: letter dictionary not found. Fix: pass --dict" in capsys.readouterr().err
    bad = tmp_path / "dict.ltr.txt"
    lines = (finetuned["data"] / "dict.ltr.txt").read_text().splitlines()
    bad.write_text("\n".join(lines[:3] + [lines[3].split()[0]] + lines[4:]) + "\n")  # line 4 without its count
    assert export_main(finetuned["ckpt"], tmp_path / "out", "--dict", bad) == 2
    assert f"{bad}, line 4: expected 'symbol count'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "dict.ltr.txt",
        "moved.pt",
    ]


def test_feature_extractor_frames_and_input_errors():
    from fast_hubert_plugin.export.hf.feature_extraction_fast_hubert import FastHubertFeatureExtractor
    from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames

    fe = FastHubertFeatureExtractor()
    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-0.1, 0.1, n).astype(np.float32) for n in (400, 559, 560, 16000, 41280)]
    out = fe(wavs, sampling_rate=16000, return_tensors="pt")
    frames = [num_fbank_frames(len(w)) for w in wavs]
    assert out["attention_mask"].sum(1).tolist() == frames == [1, 1, 2, 98, 256]
    assert out["input_features"].shape == (5, 256, 80)
    assert float(out["input_features"][0, 1:].abs().max()) == 0.0  # padding frames are zeros
    single = fe(wavs[3], sampling_rate=16000, return_tensors="pt")["input_features"]
    assert torch.equal(single[0], out["input_features"][3, :98])
    with pytest.raises(ValueError, match="8000"):
        fe(wavs, sampling_rate=8000)
    with pytest.raises(ValueError, match="shorter than one 25 ms"):
        fe([np.zeros(399, dtype=np.float32)], sampling_rate=16000)
    with pytest.raises(ValueError, match="mono"):
        fe([np.zeros((2, 800), dtype=np.float32)], sampling_rate=16000)
