"""fast-hubert-decode: transcribe a manifest split with a fine-tuned checkpoint; WER and CER.

Reads {data}/{split}.tsv (fairseq manifest) and, when present, the references
{label_dir}/{split}.ltr (letters, '|' word ends, as written by fast-hubert-prepare-ctc).
Every row of the manifest is decoded (nothing is cropped or skipped), in batches of at most
--max-tokens fbank frames (100 per second), padding handled exactly. Writes into --results-dir,
one line per manifest row, in manifest order, each file atomically:

  hypo.word / ref.word   words
  hypo.ltr  / ref.ltr    letters ('H I | T H E R E |')
  scores.json            WER, CER and their counts (with references only)

and prints "WER x (errors/words), CER y (errors/chars)". CER is the character edit distance
between the word sequences joined by single spaces.

Decoding is greedy CTC (Viterbi: best unit per frame, repeats collapsed, blank '<s>' dropped),
or, with --lm, a beam search with a KenLM word LM (flashlight-text: pip install flashlight-text).
"""

import argparse
import json
import logging
import math
import os
from typing import Dict, List, Optional

import torch
from fairseq.models.hubert.hubert_asr import HubertCtc
from tqdm import tqdm

from ..data.batching import fbank_batches
from ..data.labels import read_label_lines
from ..data.manifest import read_manifest
from ..models.checkpoints import load_checkpoint
from ..utils.atomic import atomic_write_text
from ..utils.cli import HelpFormatter, add_no_resample_argument, console_script
from ..utils.errors import DataError
from .ctc import ErrorCounts, ViterbiDecoder, letters_to_text, units_to_letters, words_to_letters

logger = logging.getLogger("fast_hubert.decode")


@torch.inference_mode()
def ctc_log_probs(model, source: torch.Tensor, padding_mask: torch.Tensor):
    """source: (B, T, 80) raw fbank, padding_mask: (B, T). -> log-probs (B, T', V), lengths (B,)."""
    out = model(source=source, padding_mask=padding_mask)
    lprobs = model.get_normalized_probs(out, log_probs=True).transpose(0, 1)  # T x B x V -> B x T x V
    pad = out["padding_mask"]
    if pad is None:
        lengths = torch.full((lprobs.shape[0],), lprobs.shape[1], dtype=torch.long)
    else:
        lengths = (~pad).sum(dim=1).cpu()
    return lprobs, lengths


def decode_split(
    model,
    dictionary,
    manifest_path: str,
    decoder=None,
    max_tokens: int = 16000,
    device: str = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    resample: bool = True,
) -> Dict[str, List[str]]:
    """{"letters": [...], "words": [...]} hypotheses, one per manifest row, in manifest order; ``resample``:
    audio that is not 16 kHz mono is converted on load (else refused)."""
    manifest = read_manifest(manifest_path, resample=resample)
    manifest.check_files_exist()
    decoder = decoder or ViterbiDecoder(dictionary)
    letters: List[Optional[str]] = [None] * len(manifest)
    words: List[Optional[str]] = [None] * len(manifest)
    for ids, source, padding_mask in tqdm(
        fbank_batches(manifest, max_tokens, num_workers), desc="decode", disable=not progress
    ):
        lprobs, lengths = ctc_log_probs(model, source.to(device), padding_mask.to(device))
        for b, hyp in enumerate(decoder.decode(lprobs, lengths.tolist())):
            i = int(ids[b])
            units, text = hyp if isinstance(hyp, tuple) else (hyp, None)
            letters[i] = units_to_letters(dictionary, units)
            words[i] = text if text is not None else letters_to_text(letters[i])
    return {"letters": letters, "words": words}


def read_references(label_dir: str, split: str, num_rows: int, manifest_path: str) -> Optional[List[str]]:
    """Reference word strings from {split}.ltr (or {split}.wrd), or None when neither exists."""
    ltr = os.path.join(label_dir, f"{split}.ltr")
    wrd = os.path.join(label_dir, f"{split}.wrd")
    if os.path.isfile(ltr):
        return [letters_to_text(line) for line in read_label_lines(ltr, num_rows, manifest_path)]
    if os.path.isfile(wrd):
        return [" ".join(line.split()) for line in read_label_lines(wrd, num_rows, manifest_path)]
    return None


def build_decoder(args, dictionary):
    if not args.lm:
        return ViterbiDecoder(dictionary)
    from .lm_decoder import BeamOptions, KenLMDecoder

    opts = BeamOptions(
        beam=args.beam,
        beam_threshold=args.beam_threshold,
        lm_weight=args.lm_weight,
        word_score=args.word_score,
        unk_score=args.unk_score,
        sil_score=args.sil_score,
    )
    return KenLMDecoder(dictionary, args.lm, args.lexicon, opts)


def write_results(results_dir: str, hyps: Dict[str, List[str]], refs: Optional[List[str]]) -> Optional[ErrorCounts]:
    os.makedirs(results_dir, exist_ok=True)

    def lines(items):
        return "".join(f"{x}\n" for x in items)

    atomic_write_text(os.path.join(results_dir, "hypo.word"), lines(hyps["words"]))
    atomic_write_text(os.path.join(results_dir, "hypo.ltr"), lines(hyps["letters"]))
    if refs is None:
        return None
    atomic_write_text(os.path.join(results_dir, "ref.word"), lines(refs))
    atomic_write_text(os.path.join(results_dir, "ref.ltr"), lines(words_to_letters(r.split()) for r in refs))
    counts = ErrorCounts()
    for h, r in zip(hyps["words"], refs):
        counts.add(h, r)
    scores = {
        "wer": counts.wer,
        "cer": counts.cer,
        "word_errors": counts.word_errors,
        "words": counts.words,
        "char_errors": counts.char_errors,
        "chars": counts.chars,
        "utterances": counts.utterances,
        # a CTC model still in its all-blank stage outputs nothing: a CER near 100 % then means no output
        "empty_hypotheses": sum(1 for h in hyps["words"] if not h.strip()),
    }
    atomic_write_text(os.path.join(results_dir, "scores.json"), json.dumps(scores, indent=1) + "\n")
    return counts


@console_script("fast-hubert-decode")
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="fast-hubert-decode", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="fine-tuned checkpoint (hubert_ctc), e.g. checkpoint_best.pt")
    parser.add_argument("--data", required=True, help="folder holding {split}.tsv")
    parser.add_argument("--split", default="valid", help="split to decode (default: valid)")
    parser.add_argument("--label-dir", help="folder holding {split}.ltr references (default: --data)")
    parser.add_argument("--results-dir", required=True, help="folder for hypo.*/ref.* and scores.json")
    parser.add_argument("--max-tokens", type=int, default=16000, help="fbank frames (100 per second) per batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader processes computing fbank")
    parser.add_argument(
        "--w2v-path",
        help="pretrained checkpoint, only for fine-tuned checkpoints saved without "
        "the pretrained config (made outside this plugin)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_no_resample_argument(parser)
    lm = parser.add_argument_group("KenLM beam search (needs flashlight-text)")
    lm.add_argument("--lm", help="KenLM word language model (.arpa or .bin); without it: Viterbi")
    lm.add_argument("--lexicon", help="'word<TAB>l e t t e r s |' lines (default for .arpa: its unigrams)")
    lm.add_argument("--beam", type=int, default=500, help="beam size")
    lm.add_argument("--beam-threshold", type=float, default=25.0, help="prune hypotheses this far below the best")
    lm.add_argument("--lm-weight", type=float, default=2.0, help="LM score weight")
    lm.add_argument("--word-score", type=float, default=-1.0, help="score added per word")
    lm.add_argument("--unk-score", type=float, default=-math.inf, help="score of out-of-lexicon words")
    lm.add_argument("--sil-score", type=float, default=0.0, help="score of the word boundary '|'")
    args = parser.parse_args(argv)
    if args.lm:  # fail before loading the model
        from .lm_decoder import import_flashlight

        try:
            import_flashlight()
        except ImportError as e:
            raise SystemExit(str(e)) from None
    label_dir = args.label_dir or args.data
    overrides = {"data": os.path.abspath(args.data), "label_dir": os.path.abspath(label_dir)}
    if args.w2v_path:
        overrides["w2v_path"] = os.path.abspath(args.w2v_path)
    model, cfg, task = load_checkpoint(args.checkpoint, args.device, overrides)
    # a pretraining task has no target dictionary at all: ask for the model type first
    dictionary = task.target_dictionary if isinstance(model, HubertCtc) else None
    if dictionary is None:
        raise DataError(
            args.checkpoint,
            "not a fine-tuned CTC checkpoint (hubert_ctc)",
            "decode a hubert_ctc checkpoint; for a pretrained one use fast-hubert-dump --feature layer",
        )
    decoder = build_decoder(args, dictionary)

    manifest_path = os.path.join(args.data, f"{args.split}.tsv")
    num_rows = len(read_manifest(manifest_path))
    refs = read_references(label_dir, args.split, num_rows, manifest_path)
    hyps = decode_split(
        model,
        dictionary,
        manifest_path,
        decoder,
        args.max_tokens,
        args.device,
        args.num_workers,
        progress=not args.quiet,
        resample=not args.no_resample,
    )
    counts = write_results(args.results_dir, hyps, refs)
    kind = "KenLM beam search" if args.lm else "Viterbi"
    if counts is None:
        print(
            f"{args.split}: {num_rows} utterances decoded ({kind}) into {args.results_dir}; "
            f"no references ({args.split}.ltr) in {label_dir}: no WER"
        )
    else:
        print(f"{args.split} ({kind}): {counts.summary()}; results in {args.results_dir}")


if __name__ == "__main__":
    main()
