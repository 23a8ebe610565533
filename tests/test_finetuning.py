"""Fine-tuning (hubert_ctc + letter CTC), decoding and layer features, on real speech.

The end-to-end tests pretrain the tiny CPU model for a few updates, fine-tune it through the real
``fairseq-hydra-train`` CLI and decode with the real ``fast-hubert-decode``.
"""

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import editdistance
import numpy as np
import pytest
import soundfile as sf
import torch

import fast_hubert_plugin.features.spec_augment as spec_augment_module
from fast_hubert_plugin.data.batching import length_batches
from fast_hubert_plugin.features.kaldi_fbank import compute_fbank
from fast_hubert_plugin.finetuning import prepare
from fast_hubert_plugin.finetuning.ctc import (
    ErrorCounts,
    ViterbiDecoder,
    cer,
    ctc_greedy,
    letters_to_text,
    units_to_letters,
    wer,
    words_to_letters,
)
from fast_hubert_plugin.finetuning.decode import ctc_log_probs
from fast_hubert_plugin.models import fast_hubert as fast_hubert_module
from fast_hubert_plugin.models.checkpoints import load_checkpoint
from fast_hubert_plugin.models.family import fast_hubert_of
from fast_hubert_plugin.models.layer_features import FeatureExtractor
from fast_hubert_plugin.utils.errors import DataError

from conftest import (
    FINETUNE_UPDATES,
    FINETUNED_EXACT_AT_LEAST,
    FINETUNED_TRAIN_CER_BELOW,
    cli,
    learning_controls,
    read_corpus_tsv,
    train_log_records,
    write_input_tsv,
)

# --------------------------------------------------------------------------- CTC and error rates


def test_words_to_letters_matches_fairseq_libri_labels():
    assert words_to_letters(["HELLO", "WORLD"]) == "H E L L O | W O R L D |"
    assert words_to_letters(["IT'S"]) == "I T ' S |"
    assert letters_to_text("H E L L O | W O R L D |") == "HELLO WORLD"


def test_ctc_greedy_collapses_repeats_and_drops_blank():
    blank = 0
    frames = [0, 5, 5, 0, 5, 6, 6, 0, 0, 7]  # 5 5 | blank | 5 6 6 | blank | 7 -> 5 5 6 7
    emissions = torch.nn.functional.one_hot(torch.tensor(frames), 8).float()
    assert ctc_greedy(emissions, blank) == [5, 5, 6, 7]
    assert ctc_greedy(torch.nn.functional.one_hot(torch.tensor([0, 0]), 8).float(), blank) == []


def test_viterbi_blank_is_the_dictionary_bos_as_in_fairseq_ctc():
    from fairseq.data import Dictionary

    d = Dictionary()
    for c in "|AB":
        d.add_symbol(c)
    dec = ViterbiDecoder(d)
    assert dec.blank == d.bos() == d.index("<s>")
    a, b, bar = d.index("A"), d.index("B"), d.index("|")
    frames = torch.tensor([[a, a, d.bos(), a, bar, b, b, bar, 0]])
    lprobs = torch.nn.functional.one_hot(frames, len(d)).float().log()
    ids = dec.decode(lprobs, [8])[0]  # the 9th frame is padding
    assert units_to_letters(d, ids) == "A A | B |"
    assert letters_to_text(units_to_letters(d, ids)) == "AA B"


def test_error_rates_on_hand_made_cases():
    assert wer(["A B C"], ["A B C"]) == 0.0
    # one substitution + one insertion over 3 reference words
    assert wer(["A X C D"], ["A B C"]) == pytest.approx(200 / 3)
    assert wer([""], ["A B"]) == 100.0
    # "CAT" vs "CUT": 1 char of 3; spaces count: "A CAT" vs "A CUT" 1 of 5
    assert cer(["CUT"], ["CAT"]) == pytest.approx(100 / 3)
    assert cer(["A  CUT"], ["A CAT"]) == pytest.approx(20.0)  # runs of spaces normalised
    c = ErrorCounts()
    for h, r in [("A B", "A B C"), ("X", "Y")]:
        c.add(h, r)
    assert (c.word_errors, c.words, c.char_errors, c.chars, c.utterances) == (2, 4, 3, 6, 2)


def test_length_batches_cover_every_row_under_max_tokens():
    frames = [300, 120, 999, 50, 301, 298, 5000]
    batches = length_batches(frames, 1000)
    assert sorted(i for b in batches for i in b) == list(range(len(frames)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(frames[i] for i in b) <= 1000


# --------------------------------------------------------------------------- data preparation


def test_prepare_writes_manifest_letters_words_and_dict(speech_root, tmp_path):
    rows = read_corpus_tsv("so762_train.tsv")[:4]
    dev = rows[2:]  # letters all in the training dictionary
    out = tmp_path / "out"
    prepare.main(
        [
            str(write_input_tsv(tmp_path / "in" / "train.tsv", rows, speech_root)),
            "--split",
            "train",
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    # num_samples column absent: read from the audio
    prepare.main(
        [
            str(write_input_tsv(tmp_path / "in" / "dev.tsv", dev, speech_root, columns=("path", "text"))),
            "--split",
            "valid",
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    lines = (out / "train.tsv").read_text().splitlines()
    root = Path(lines[0])
    assert len(lines) == 5 and root.is_absolute()
    for line, r in zip(lines[1:], rows):
        name, n = line.split("\t")
        assert (root / name).resolve() == (speech_root / r["path"]).resolve() and int(n) == int(r["num_samples"])
    assert (out / "train.wrd").read_text().splitlines() == [" ".join(r["text"].split()) for r in rows]
    assert (out / "train.ltr").read_text().splitlines() == [words_to_letters(r["text"].split()) for r in rows]
    valid_sizes = [int(line.split("\t")[1]) for line in (out / "valid.tsv").read_text().splitlines()[1:]]
    assert valid_sizes == [int(r["num_samples"]) for r in dev]
    d = dict(line.split() for line in (out / "dict.ltr.txt").read_text().splitlines())
    letters = [c for r in rows for c in words_to_letters(r["text"].split()).split()]
    assert d == {c: str(letters.count(c)) for c in set(letters)}
    counts = [int(v) for v in d.values()]
    assert counts == sorted(counts, reverse=True)


def test_prepare_no_text_writes_manifest_only(speech_root, tmp_path):
    rows = [dict(r, text="") for r in read_corpus_tsv("librispeech_train_clean_100.tsv")[:2]]
    prepare.main(
        [
            str(write_input_tsv(tmp_path / "in.tsv", rows, speech_root)),
            "--split",
            "pre",
            "--output-dir",
            str(tmp_path / "out"),
            "--no-text",
            "--quiet",
        ]
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pre.tsv"]


def _bad(tmp_path, speech_root, rows, **kw):
    return write_input_tsv(tmp_path / "bad.tsv", rows, speech_root, **kw)


@pytest.mark.parametrize(
    "case,problem,line",
    [
        ("missing_audio", "not found", 3),
        ("empty_text", "empty transcript", 2),
        ("unreadable_audio", "cannot read audio", 3),
        ("wrong_num_samples", "num_samples says", 2),
        ("no_text_column", "lacks column", 1),
    ],
)
def test_prepare_rejects_bad_rows_naming_file_and_line(speech_root, tmp_path, case, problem, line):
    rows = [dict(r) for r in read_corpus_tsv("so762_train.tsv")[:2]]
    columns = ("id", "path", "num_samples", "text")
    if case == "missing_audio":
        rows[1]["path"] = "so762/train/none/missing.flac"
    elif case == "empty_text":
        rows[0]["text"] = "  "
    elif case == "unreadable_audio":
        (tmp_path / "junk.flac").write_bytes(b"not audio at all" * 10)
        rows[1]["path"] = os.path.relpath(tmp_path / "junk.flac", speech_root)
    elif case == "wrong_num_samples":
        rows[0]["num_samples"] = int(rows[0]["num_samples"]) + 1
    elif case == "no_text_column":
        columns = ("id", "path")
    tsv = _bad(tmp_path, speech_root, rows, columns=columns)
    with pytest.raises(DataError) as e:
        prepare.prepare_split(str(tsv), "train", str(tmp_path / "out"), progress=False)
    assert problem in str(e.value) and e.value.path == str(tsv) and e.value.line == line
    assert not (tmp_path / "out" / "train.tsv").exists()


def test_prepare_dev_split_with_unknown_characters_fails(speech_root, tmp_path):
    rows = read_corpus_tsv("so762_train.tsv")[:3]
    out = tmp_path / "out"
    prepare.prepare_split(
        str(write_input_tsv(tmp_path / "train.tsv", rows, speech_root)), "train", str(out), progress=False
    )
    dev = [dict(r) for r in rows[:2]]
    dev[1]["text"] = "NAÏVE CAFÉ"
    with pytest.raises(DataError) as e:
        prepare.prepare_split(
            str(write_input_tsv(tmp_path / "dev.tsv", dev, speech_root)), "valid", str(out), progress=False
        )
    assert "not in the dictionary" in str(e.value) and e.value.line == 3
    assert not (out / "valid.ltr").exists()
    # the dictionary is kept, not rebuilt from the dev split; --dict-from reuses it elsewhere
    before = (out / "dict.ltr.txt").read_text()
    prepare.prepare_split(
        str(write_input_tsv(tmp_path / "dev2.tsv", rows[:1], speech_root)), "valid", str(out), progress=False
    )
    assert (out / "dict.ltr.txt").read_text() == before
    prepare.main(
        [
            str(tmp_path / "dev2.tsv"),
            "--split",
            "valid",
            "--output-dir",
            str(tmp_path / "o2"),
            "--dict-from",
            str(out / "dict.ltr.txt"),
            "--quiet",
        ]
    )
    assert (tmp_path / "o2" / "dict.ltr.txt").read_text() == before


def test_prepare_cli_error_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        prepare.main([str(tmp_path / "absent.tsv"), "--split", "x", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"fast-hubert-prepare-ctc: error: {tmp_path / 'absent.tsv'}: input TSV not found. Fix:")


# --------------------------------------------------------------------------- end to end


def test_finetuning_cli_trains_ctc_with_frozen_subsampler(finetuned):
    log = finetuned["log"]
    assert "fine-tuning SpecAugment on the fbank: spec_aug_freq_masks=2" in log
    train = train_log_records(log)
    assert train and all(math.isfinite(float(r["loss"])) for r in train)
    assert int(train[-1]["num_updates"]) == FINETUNE_UPDATES
    state = torch.load(finetuned["ckpt"], map_location="cpu")
    assert state["cfg"]["model"]["w2v_args"] is not None  # self-contained: no w2v_path needed to reload
    model, pre = state["model"], finetuned["pretrained_state"]
    prefix = "w2v_encoder.w2v_model."
    # feature_grad_mult 0: the subsampler never changes; the Transformer does after the freeze
    for k in (k for k in pre if k.startswith("subsampler.")):
        assert torch.equal(model[prefix + k], pre[k]), k
    assert not torch.equal(model[prefix + "encoder.layers.0.fc1.weight"], pre["encoder.layers.0.fc1.weight"])
    assert torch.equal(model[prefix + "cmvn_mean"], pre["cmvn_mean"])
    assert not any(k.startswith(prefix + "label_heads") for k in model)


def test_decode_cli_writes_hypotheses_and_matching_scores(finetuned, tmp_path):
    out = tmp_path / "dec"
    proc = cli(
        "fast-hubert-decode",
        finetuned["ckpt"],
        "--data",
        finetuned["data"],
        "--split",
        "valid",
        "--results-dir",
        out,
        "--max-tokens",
        1200,
        "--quiet",
    )
    n = len(finetuned["dev"])
    files = {name: (out / name).read_text().splitlines() for name in ("hypo.word", "ref.word", "hypo.ltr", "ref.ltr")}
    assert all(len(v) == n for v in files.values())
    assert files["ref.word"] == [" ".join(r["text"].split()) for r in finetuned["dev"]]
    m = re.search(r"WER ([\d.]+) \((\d+)/(\d+) words\), CER ([\d.]+) \((\d+)/(\d+) chars\)", proc.stdout)
    assert m, proc.stdout
    hyp, ref = files["hypo.word"], files["ref.word"]
    w_err = sum(editdistance.eval(h.split(), r.split()) for h, r in zip(hyp, ref))
    words = sum(len(r.split()) for r in ref)
    c_err = sum(editdistance.eval(h, r) for h, r in zip(hyp, ref))
    chars = sum(len(r) for r in ref)
    assert (int(m[2]), int(m[3]), int(m[5]), int(m[6])) == (w_err, words, c_err, chars)
    assert float(m[1]) == pytest.approx(100 * w_err / words, abs=0.005)
    assert float(m[4]) == pytest.approx(100 * c_err / chars, abs=0.005)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["word_errors"] == w_err
    assert scores["empty_hypotheses"] == sum(1 for h in hyp if not h.strip())
    # fairseq's own validation of the same weights (whole utterances, same greedy decoding)
    valid = train_log_records(finetuned["log"], "valid")[-1]
    assert float(valid["valid_wer"]) == pytest.approx(100 * w_err / words, abs=0.01)


def decode(finetuned, out: Path, *extra, split: str = "train", checkpoint=None):
    """fast-hubert-decode of a split of the fine-tuning data: the completed process."""
    ckpt = checkpoint or finetuned["ckpt"]
    return cli(
        "fast-hubert-decode",
        ckpt,
        "--data",
        finetuned["data"],
        "--split",
        split,
        "--results-dir",
        out,
        "--quiet",
        *extra,
    )


def test_audio_free_cer_is_the_best_constant_transcript():
    assert learning_controls.audio_free_cer(["AB", "AB"]) == pytest.approx(50.0)  # "A" for both: one deletion of 2
    assert learning_controls.audio_free_cer(["XYZ"]) == pytest.approx(100 * 2 / 3)  # "X": 2 of 3
    assert learning_controls.audio_free_cer(["A B C D"]) == pytest.approx(100 * 6 / 7)


def test_finetuning_learns_the_training_letters(finetuned, tmp_path):
    """On the utterances it was fine-tuned on, the model's Viterbi transcripts are far better than any
    transcript that ignores the audio: letter targets that do not match the audio, a letter dictionary
    off by one symbol or a model that learns nothing fail here. The same transcripts with 2 loader
    workers and with the references read from another folder (--num-workers, --label-dir)."""
    out = tmp_path / "train"
    decode(finetuned, out)
    refs = (out / "ref.word").read_text().splitlines()
    assert refs == [" ".join(r["text"].split()) for r in finetuned["train"]]
    scores = json.loads((out / "scores.json").read_text())
    baseline = learning_controls.audio_free_cer(refs)
    print(
        f"training-set CER {scores['cer']:.1f} % (audio-free transcripts: {baseline:.1f} %), WER {scores['wer']:.1f} %"
    )
    assert baseline > 85  # recorded 88.9 %; random letters (a 2-update model) scored 82 %
    assert scores["cer"] < FINETUNED_TRAIN_CER_BELOW, scores
    assert scores["empty_hypotheses"] == 0
    hyps = (out / "hypo.word").read_text().splitlines()
    assert sum(h == r for h, r in zip(hyps, refs)) >= FINETUNED_EXACT_AT_LEAST  # whole sentences right
    elsewhere = tmp_path / "refs"
    elsewhere.mkdir()
    for name in ("train.ltr", "dict.ltr.txt"):
        shutil.copy(finetuned["data"] / name, elsewhere / name)
    decode(finetuned, tmp_path / "workers", "--num-workers", 2, "--label-dir", elsewhere)
    for name in ("hypo.word", "hypo.ltr", "ref.word", "ref.ltr", "scores.json"):
        assert (tmp_path / "workers" / name).read_text() == (out / name).read_text(), name


def test_decode_of_a_pretrained_checkpoint_is_a_clear_error(pretrained, finetuned, tmp_path):
    proc = cli(
        "fast-hubert-decode",
        pretrained,
        "--data",
        finetuned["data"],
        "--results-dir",
        tmp_path / "out",
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{pretrained}: not a fine-tuned CTC checkpoint (hubert_ctc). Fix: " in proc.stderr
    assert not (tmp_path / "out").exists()


def test_w2v_path_decodes_a_checkpoint_saved_without_its_pretrained_config(finetuned, pretrained, tmp_path):
    """A hubert_ctc checkpoint written elsewhere carries only w2v_path (here: a file that is gone); the
    pretrained checkpoint given with --w2v-path rebuilds the model, whose fine-tuned weights then decode as
    the self-contained checkpoint does."""
    state = torch.load(finetuned["ckpt"], map_location="cpu", weights_only=False)
    state["cfg"]["model"]["w2v_args"] = None
    assert not Path(state["cfg"]["model"]["w2v_path"]).exists()
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    missing = cli(
        "fast-hubert-decode", bare, "--data", finetuned["data"], "--results-dir", tmp_path / "no", check=False
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr[-2000:]
    assert "needs a file that is missing" in missing.stderr and "pass --w2v-path PRETRAINED.pt" in missing.stderr
    decode(finetuned, tmp_path / "ref")
    decode(finetuned, tmp_path / "bare", "--w2v-path", pretrained, checkpoint=bare)
    for name in ("hypo.ltr", "scores.json"):
        assert (tmp_path / "bare" / name).read_text() == (tmp_path / "ref" / name).read_text(), name


def test_decode_with_lm_without_flashlight_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from fast_hubert_plugin.finetuning import decode

    monkeypatch.setitem(sys.modules, "flashlight.lib.text", None)
    monkeypatch.setitem(sys.modules, "flashlight", None)
    with pytest.raises(SystemExit) as e:
        decode.main(
            [
                str(tmp_path / "ckpt.pt"),
                "--data",
                str(tmp_path),
                "--results-dir",
                str(tmp_path),
                "--lm",
                str(tmp_path / "lm.arpa"),
            ]
        )
    assert e.value.code == 2
    assert "needs flashlight-text: pip install flashlight-text" in capsys.readouterr().err


def write_bigram_arpa(path: Path, words):
    """A KenLM-loadable ARPA (KenLM needs bigrams): any word may start or end a sentence."""
    p = math.log10(1 / (len(words) + 1))
    uni = [f"{p:.4f}\t</s>", "-99\t<s>\t0", f"{p:.4f}\t<unk>\t0"] + [f"{p:.4f}\t{w}\t0" for w in words]
    bi = [f"{p:.4f}\t<s> {w}" for w in words] + [f"{math.log10(0.5):.4f}\t{w} </s>" for w in words]
    path.write_text(
        f"\\data\\\nngram 1={len(uni)}\nngram 2={len(bi)}\n\n\\1-grams:\n"
        + "\n".join(uni)
        + "\n\n\\2-grams:\n"
        + "\n".join(bi)
        + "\n\n\\end\\\n"
    )


def test_decode_with_kenlm_beam_search(finetuned, tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder", reason="flashlight-text not installed")
    from fast_hubert_plugin.finetuning import decode

    words = sorted({w for r in finetuned["dev"] for w in r["text"].split()})
    arpa = tmp_path / "lm.arpa"
    write_bigram_arpa(arpa, words)
    decode.main(
        [
            str(finetuned["ckpt"]),
            "--data",
            str(finetuned["data"]),
            "--results-dir",
            str(tmp_path / "lm"),
            "--lm",
            str(arpa),
            "--beam",
            "20",
            "--quiet",
        ]
    )
    hyps = (tmp_path / "lm" / "hypo.word").read_text().splitlines()
    assert len(hyps) == len(finetuned["dev"])
    assert all(w in words for h in hyps for w in h.split())  # lexicon-constrained: only LM words


def test_decode_with_a_lexicon_spells_only_its_words(finetuned, tmp_path):
    """--lexicon: the beam search writes only the lexicon's words. Given the words of the first 10 training
    sentences (the LM knows all 20 sentences' words), the fine-tuned model gets those sentences right
    (measured: 9 of 10, CER 1.0 %), and spells the other 10 with lexicon words only."""
    from fast_hubert_plugin.finetuning import decode as decode_module

    refs = [" ".join(r["text"].split()) for r in finetuned["train"]]
    covered = refs[:10]
    lexicon_words = sorted({w for r in covered for w in r.split()})
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("".join(f"{w}\t{words_to_letters([w])}\n" for w in lexicon_words))
    arpa = tmp_path / "lm.arpa"
    write_bigram_arpa(arpa, sorted({w for r in refs for w in r.split()}))
    out = tmp_path / "lm"
    args = [str(finetuned["ckpt"]), "--data", str(finetuned["data"]), "--split", "train", "--results-dir", str(out)]
    decode_module.main(args + ["--lm", str(arpa), "--lexicon", str(lexicon), "--beam", "20", "--quiet"])
    hyps = (out / "hypo.word").read_text().splitlines()
    assert len(hyps) == len(refs) and all(w in lexicon_words for h in hyps for w in h.split())
    assert sum(h == r for h, r in zip(hyps[:10], covered)) >= 6 and cer(hyps[:10], covered) < 10


# --------------------------------------------------------------------------- model behaviour


@pytest.fixture(scope="module")
def ctc_model(finetuned):
    model, _, task = load_checkpoint(
        finetuned["ckpt"], "cpu", {"data": str(finetuned["data"]), "label_dir": str(finetuned["data"])}
    )
    return model, task


def dev_fbanks(speech_root, lengths):
    """Real fbank of so762 dev utterances cut to the given frame counts (not multiples of 4)."""
    rows = read_corpus_tsv("so762_dev.tsv")[: len(lengths)]
    out = []
    for r, n in zip(rows, lengths):
        wav, _ = sf.read(speech_root / r["path"], dtype="float32")
        f = torch.from_numpy(compute_fbank(wav))
        assert f.shape[0] >= n
        out.append(f[:n])
    return out


def pad(fbanks):
    lengths = torch.tensor([f.shape[0] for f in fbanks])
    source = torch.zeros(len(fbanks), int(lengths.max()), 80)
    for b, f in enumerate(fbanks):
        source[b, : f.shape[0]] = f
    return source, torch.arange(source.shape[1])[None, :] >= lengths[:, None]


def test_padding_does_not_change_encoder_output_or_decoding(ctc_model, speech_root):
    model, task = ctc_model
    fbanks = dev_fbanks(speech_root, [301, 157, 230])
    source, padding_mask = pad(fbanks)
    lprobs, lengths = ctc_log_probs(model, source, padding_mask)
    assert lengths.tolist() == [math.ceil(f.shape[0] / 4) for f in fbanks]
    dec = ViterbiDecoder(task.target_dictionary)
    batched = dec.decode(lprobs, lengths.tolist())
    inner = fast_hubert_of(model)
    with torch.inference_mode():
        x_batch, _ = inner.extract_features(source, padding_mask, mask=False)
    for b, f in enumerate(fbanks):
        alone, n = ctc_log_probs(model, f[None], torch.zeros(1, f.shape[0], dtype=torch.bool))
        assert n.item() == lengths[b]
        torch.testing.assert_close(lprobs[b, : n.item()], alone[0], atol=1e-5, rtol=1e-5)
        assert dec.decode(alone, n.tolist())[0] == batched[b]
        with torch.inference_mode():
            x_alone, _ = inner.extract_features(f[None], None, mask=False)
        torch.testing.assert_close(x_batch[b, : n.item()], x_alone[0], atol=1e-5, rtol=1e-5)


def test_spec_augment_only_in_training(ctc_model, speech_root, monkeypatch):
    model, _ = ctc_model
    inner = fast_hubert_of(model)
    assert (inner.cfg.spec_aug_freq_masks, inner.cfg.spec_aug_freq_width) == (2, 30)
    assert (inner.cfg.spec_aug_time_masks, inner.cfg.spec_aug_time_width) == (2, 40)
    assert model.w2v_encoder.apply_mask and inner.mask_prob == 0 and inner.mask_channel_prob == 0
    calls = []
    real = spec_augment_module.spec_augment

    def spy(x, lengths, *args, **kw):
        calls.append((x.shape, args))
        return real(x, lengths, *args, **kw)

    monkeypatch.setattr(fast_hubert_module, "spec_augment", spy)
    source, padding_mask = pad(dev_fbanks(speech_root, [203, 150]))
    try:
        model.train()
        model(source=source, padding_mask=padding_mask)
        assert calls == [(source.shape, (2, 30, 2, 40))]
        model.eval()
        ctc_log_probs(model, source, padding_mask)
        model(source=source, padding_mask=padding_mask)
        FeatureExtractor(model).forward_layers(source, padding_mask, "all")
        assert len(calls) == 1
    finally:
        model.eval()


def runs(mask: torch.Tensor):
    """(start, width) of each run of True in a 1-d bool tensor."""
    out, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


def test_spec_augment_masks_stay_inside_each_utterance():
    """2 time masks of < 40 frames and 2 frequency masks of < 30 bins per utterance, drawn anew each call:
    applied (not only bounded), inside each utterance's own frames, as bands of the drawn widths."""
    torch.manual_seed(0)
    x = torch.ones(3, 120, 80)
    lengths = torch.tensor([120, 57, 9])
    time_masked = {b: [] for b in range(3)}
    freq_masked = []
    draws = 200
    for _ in range(draws):
        y = spec_augment_module.spec_augment(x, lengths, 2, 30, 2, 40)
        for b, n in enumerate(lengths.tolist()):
            masked_frames = (y[b] == 0).all(dim=1)
            assert not masked_frames[n:].any()  # padding is never a time mask
            frame_runs = runs(masked_frames)
            assert len(frame_runs) <= 2 and all(w <= 2 * 39 for _, w in frame_runs)
            time_masked[b].append(int(masked_frames.sum()))
            unmasked_frames = y[b, :n][~masked_frames[:n]]
            if len(unmasked_frames):
                masked_bins = (unmasked_frames == 0).all(dim=0)
                assert len(runs(masked_bins)) <= 2 and int(masked_bins.sum()) <= 2 * 29
                assert (unmasked_frames[:, ~masked_bins] == 1).all()  # every other value is untouched
                freq_masked.append(int(masked_bins.sum()))
    # the masks are applied: two spans of a uniform width in 0..39 cover up to 2 x 19.5 frames (their
    # overlap less), 34.5-36.1 of 120 frames over 200 draws of seeds 0-2; frequency: 24.9-25.7 of 80 bins.
    # A no-op gives 0, one mask about half, three masks about 1.5 times as many.
    mean_time = sum(time_masked[0]) / draws
    mean_freq = sum(freq_masked) / len(freq_masked)
    assert 26 < mean_time < 46, mean_time
    assert 18 < mean_freq < 33, mean_freq
    assert sum(w > 0 for w in time_masked[0]) > 0.9 * draws
    # a short utterance's masks are cut to its length, and it is still masked
    assert max(time_masked[2]) <= 9 and sum(time_masked[2]) > 0
    assert time_masked[0] != time_masked[1]  # each utterance draws its own


def test_freeze_finetune_updates_keeps_encoder_without_gradients(ctc_model, speech_root):
    model, _ = ctc_model
    enc = model.w2v_encoder
    source, padding_mask = pad(dev_fbanks(speech_root, [150, 121]))
    inner_params = [p for p in enc.w2v_model.parameters()]
    old = enc.freeze_finetune_updates
    try:
        model.train()
        enc.freeze_finetune_updates = 3
        for updates, trained in ((2, False), (3, True)):
            model.zero_grad(set_to_none=True)
            model.set_num_updates(updates)
            out = model(source=source, padding_mask=padding_mask)
            out["encoder_out"].float().pow(2).mean().backward()
            assert enc.proj.weight.grad is not None
            assert any(p.grad is not None for p in inner_params) == trained
            # the subsampler stays frozen (feature_grad_mult 0) either way
            assert all(p.grad is None for p in enc.w2v_model.subsampler.parameters())
    finally:
        enc.freeze_finetune_updates = old
        model.zero_grad(set_to_none=True)
        model.eval()


def test_feature_grad_mult_scales_subsampler_gradients(ctc_model, speech_root):
    inner = fast_hubert_of(ctc_model[0])
    source, padding_mask = pad(dev_fbanks(speech_root, [150, 121]))
    grads = {}
    old = inner.feature_grad_mult
    try:
        inner.eval()  # no dropout: the same forward for every setting
        for mult in (1.0, 0.1, 0.0):
            inner.feature_grad_mult = mult
            inner.zero_grad(set_to_none=True)
            x, _ = inner.extract_features(source, padding_mask, mask=False)
            x.pow(2).mean().backward()
            grads[mult] = [p.grad for p in inner.subsampler.parameters()]
            assert inner.encoder.layers[0].fc1.weight.grad is not None
    finally:
        inner.feature_grad_mult = old
        inner.zero_grad(set_to_none=True)
    assert all(g is None for g in grads[0.0])
    for g1, g01 in zip(grads[1.0], grads[0.1]):
        torch.testing.assert_close(g01, 0.1 * g1, rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------- layer features


@pytest.mark.parametrize("kind", ["pretrained", "finetuned"])
def test_feature_extractor_layers_match_extract_features(kind, pretrained, finetuned, speech_root):
    ckpt = pretrained if kind == "pretrained" else finetuned["ckpt"]
    fx = FeatureExtractor.from_checkpoint(ckpt)
    assert fx.frame_rate == 25.0 and fx.num_layers == 4
    row = read_corpus_tsv("so762_dev.tsv")[0]
    wav, _ = sf.read(speech_root / row["path"], dtype="float32")
    feats = fx.extract(speech_root / row["path"], layers="all")
    T = compute_fbank(wav).shape[0]
    assert sorted(feats) == list(range(fx.num_layers + 1))
    assert all(f.shape == (math.ceil(T / 4), fx.dim) for f in feats.values())
    source = torch.from_numpy(compute_fbank(wav))[None]
    with torch.inference_mode():
        for layer in range(1, fx.num_layers + 1):
            want, _ = fx.model.extract_features(source, None, mask=False, output_layer=layer)
            torch.testing.assert_close(feats[layer], want[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fx.extract(wav, layers=[2])[2], feats[2])
    # batched with padding: the same frames
    fbanks = dev_fbanks(speech_root, [T - 3, 141])
    batch = fx.extract_batch(fbanks, layers=[0, 3])
    alone = fx.extract_batch(fbanks[:1], layers=[0, 3])[0]
    assert batch[1][3].shape == (math.ceil(141 / 4), fx.dim)
    for layer in (0, 3):
        torch.testing.assert_close(batch[0][layer], alone[layer], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="outside 0..4"):
        fx.extract(wav, layers=[5])


def test_layer_dump_of_a_finetuned_checkpoint_is_memory_mappable(finetuned, speech_root, tmp_path):
    """One CLI writes layer shards for every checkpoint kind: fast-hubert-dump --feature layer."""
    from fast_hubert_plugin.clustering import dump

    manifest = finetuned["data"] / "valid.tsv"
    dump.main(
        [
            str(manifest),
            str(tmp_path),
            "--feature",
            "layer",
            "--checkpoint",
            str(finetuned["ckpt"]),
            "--layer",
            "3",
            "--batch-seconds",
            "10",
            "--device",
            "cpu",
        ]
    )
    feats = np.load(tmp_path / "valid_0_1.npy", mmap_mode="r")
    lengths = np.loadtxt(tmp_path / "valid_0_1.len", dtype=np.int64)
    meta = json.loads((tmp_path / "valid_0_1.json").read_text())
    assert meta["layer"] == 3 and meta["frame_rate"] == 25.0 and meta["model"] == "fast_hubert"
    assert len(lengths) == len(finetuned["dev"]) and feats.shape == (lengths.sum(), meta["dim"])
    fx = FeatureExtractor.from_checkpoint(finetuned["ckpt"])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i in (0, len(lengths) - 1):
        want = fx.extract(speech_root / finetuned["dev"][i]["path"], layers=[3])[3].numpy()
        np.testing.assert_allclose(feats[offsets[i] : offsets[i + 1]], want, atol=1e-5, rtol=1e-5)


def test_no_pretrained_weights_still_normalises_with_the_pretrained_cmvn(pretrained, finetuned):
    """model.no_pretrained_weights: fresh weights, but never an identity CMVN on raw fbank."""
    from fairseq import checkpoint_utils, tasks
    from omegaconf import open_dict

    cfg = checkpoint_utils.load_checkpoint_to_cpu(str(finetuned["ckpt"]))["cfg"]
    with open_dict(cfg):
        cfg.model.w2v_args = None
        cfg.model.w2v_path = str(pretrained)
        cfg.model.no_pretrained_weights = True
        cfg.task.data = cfg.task.label_dir = str(finetuned["data"])
    task = tasks.setup_task(cfg.task)
    inner = fast_hubert_of(task.build_model(cfg.model))
    pre = torch.load(pretrained, map_location="cpu")["model"]
    assert not torch.equal(inner.encoder.layers[0].fc1.weight, pre["encoder.layers.0.fc1.weight"])  # not restored
    assert pre["cmvn_mean"].abs().sum() > 0
    torch.testing.assert_close(inner.cmvn_mean, pre["cmvn_mean"])
    torch.testing.assert_close(inner.cmvn_inv_std, pre["cmvn_inv_std"])


def test_bf16_autocast_finetuning_step_matches_fp32(ctc_model, speech_root):
    """A hubert_ctc training step (HuBERT masking, dropout) under torch.autocast bf16 (common.amp) runs
    and gives fp32's CTC loss within 2 %, with the same random draws."""
    from fairseq.criterions.ctc import CtcCriterion, CtcCriterionConfig

    model, task = ctc_model
    rows = read_corpus_tsv("so762_dev.tsv")[:3]
    wavs = [torch.from_numpy(sf.read(speech_root / r["path"], dtype="float32")[0]) for r in rows]
    source = torch.zeros(len(wavs), max(len(w) for w in wavs))
    for i, w in enumerate(wavs):
        source[i, : len(w)] = w
    padding_mask = torch.arange(source.shape[1])[None, :] >= torch.tensor([len(w) for w in wavs])[:, None]
    d = task.target_dictionary
    letters = [
        d.encode_line(" ".join(r["text"].replace(" ", "|")), append_eos=False, add_if_not_exist=False).long()
        for r in rows
    ]
    target = torch.full((len(letters), max(len(t) for t in letters)), d.pad())
    for i, t in enumerate(letters):
        target[i, : len(t)] = t
    sample = {
        "id": torch.arange(len(rows)),
        "net_input": {"source": source, "padding_mask": padding_mask},
        "target": target,
        "target_lengths": torch.tensor([len(t) for t in letters]),
        "ntokens": sum(len(t) for t in letters),
    }
    crit = CtcCriterion(CtcCriterionConfig(), task)
    losses = []
    try:
        model.train()
        for amp in (False, True):
            np.random.seed(0)  # HuBERT's time and channel masks
            torch.manual_seed(0)  # dropout
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss, _, _ = crit(model, sample)
            loss.backward()
            assert model.w2v_encoder.proj.weight.grad.isfinite().all()
            losses.append(loss.item())
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert abs(losses[1] - losses[0]) / losses[0] < 0.02, losses
