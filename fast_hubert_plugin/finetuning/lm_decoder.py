"""CTC beam search with a KenLM word language model, through flashlight-text.

fairseq's own wrapper (``examples/speech_recognition/w2l_decoder.py``) is not part of the pip
package, so flashlight-text's ``LexiconDecoder`` is driven here directly, with fairseq's
defaults: the blank is ``<s>``, the word boundary (silence) is ``|``, every word of the lexicon
is spelled with letters of the CTC dictionary and ends with ``|``.

Install: ``pip install flashlight-text`` (its wheels include KenLM). The LM is an ARPA (``.arpa``)
or KenLM binary file. The lexicon (``word<TAB>l e t t e r s |`` lines, fairseq/flashlight format)
may be omitted for an ARPA LM: it is then built from the LM's unigrams.
"""

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
from fairseq.data import Dictionary

from ..utils.errors import DataError
from .ctc import BLANK_SYMBOL, WORD_BOUNDARY

INSTALL_HINT = "pip install flashlight-text (its wheels include KenLM)"
SPECIAL_WORDS = {"<s>", "</s>", "<unk>"}


def import_flashlight():
    try:
        from flashlight.lib.text import decoder, dictionary
    except ImportError:
        raise ImportError(
            f"KenLM beam search (--lm) needs flashlight-text: {INSTALL_HINT}; or decode without --lm (Viterbi)"
        ) from None
    return decoder, dictionary


def kenlm_class(decoder):
    try:  # flashlight-text >= 0.0.7 moved it; the old path warns
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        KenLM = decoder.KenLM
    return KenLM


def arpa_unigrams(path: str) -> List[str]:
    """Words of the \\1-grams: section of an ARPA file (sentence markers and <unk> left out)."""
    words, inside = [], False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and line.startswith("\\"):
                break
            elif inside and line:
                parts = line.split()
                if len(parts) >= 2 and parts[1] not in SPECIAL_WORDS:
                    words.append(parts[1])
    if not words:
        raise DataError(path, "no unigrams found", "pass an ARPA language model, or a lexicon with --lexicon")
    return words


def spell(word: str) -> List[str]:
    return list(word) + [WORD_BOUNDARY]


def read_lexicon(path: str) -> Dict[str, List[List[str]]]:
    """word -> spellings (lists of letters) from 'word<TAB>l e t t e r s |' lines."""
    if not os.path.isfile(path):
        raise DataError(path, "lexicon not found", "pass a file of 'word<TAB>l e t t e r s |' lines")
    lexicon: Dict[str, List[List[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise DataError(path, "a word without a spelling", "write 'word<TAB>l e t t e r s |'", line=n)
            lexicon.setdefault(parts[0], []).append(parts[1:])
    return lexicon


@dataclass
class BeamOptions:
    beam: int = 500
    beam_threshold: float = 25.0
    lm_weight: float = 2.0
    word_score: float = -1.0
    unk_score: float = -math.inf
    sil_score: float = 0.0


class KenLMDecoder:
    """Lexicon-constrained beam search; ``decode`` returns (unit ids, words) per utterance."""

    def __init__(self, dictionary: Dictionary, lm_path: str, lexicon_path: str = None, options: BeamOptions = None):
        fl, fl_dict = import_flashlight()
        if not os.path.isfile(lm_path):
            raise DataError(lm_path, "language model not found", "pass a KenLM .arpa or .bin file with --lm")
        options = options or BeamOptions()
        self.dictionary = dictionary
        self.blank = dictionary.index(BLANK_SYMBOL)
        if WORD_BOUNDARY not in dictionary.indices:
            raise DataError(
                lm_path,
                f"the CTC dictionary has no word boundary '{WORD_BOUNDARY}'",
                "LM decoding needs letter units with '|' word boundaries (fast-hubert-prepare-ctc)",
            )
        self.silence = dictionary.index(WORD_BOUNDARY)
        if lexicon_path:
            lexicon = read_lexicon(lexicon_path)
        elif lm_path.endswith(".arpa"):
            lexicon = {w: [spell(w)] for w in arpa_unigrams(lm_path)}
        else:
            raise DataError(
                lm_path,
                "a binary KenLM model needs a lexicon",
                "pass --lexicon (word<TAB>l e t t e r s | lines) or an .arpa model",
            )
        self.word_dict = fl_dict.Dictionary()
        for word in lexicon:
            self.word_dict.add_entry(word)
        if "<unk>" not in lexicon:
            self.word_dict.add_entry("<unk>")
        self.word_dict.set_default_index(self.word_dict.get_index("<unk>"))
        self.unk_word = self.word_dict.get_index("<unk>")
        self.lm = kenlm_class(fl)(lm_path, self.word_dict)
        self.trie = fl.Trie(len(dictionary), self.silence)
        start = self.lm.start(False)
        inserted = 0
        for word, spellings in lexicon.items():
            word_idx = self.word_dict.get_index(word)
            _, score = self.lm.score(start, word_idx)
            for letters in spellings:
                ids = [dictionary.index(t) for t in letters]
                if dictionary.unk() in ids:
                    continue  # a letter the acoustic model cannot emit
                self.trie.insert(ids, word_idx, score)
                inserted += 1
        if inserted == 0:
            raise DataError(
                lexicon_path or lm_path,
                "no word of the lexicon can be spelled with the CTC dictionary",
                "use a lexicon/LM in the same alphabet (and case) as dict.ltr.txt",
            )
        self.trie.smear(fl.SmearingMode.MAX)
        opts = fl.LexiconDecoderOptions(
            beam_size=options.beam,
            beam_size_token=len(dictionary),
            beam_threshold=options.beam_threshold,
            lm_weight=options.lm_weight,
            word_score=options.word_score,
            unk_score=options.unk_score,
            sil_score=options.sil_score,
            log_add=False,
            criterion_type=fl.CriterionType.CTC,
        )
        self.decoder = fl.LexiconDecoder(opts, self.trie, self.lm, self.silence, self.blank, self.unk_word, [], False)

    def decode(self, lprobs: torch.Tensor, lengths: Sequence[int]):
        """lprobs: (B, T, V) log-probabilities. -> per row (unit ids, words string) of the best beam."""
        out = []
        for b in range(lprobs.shape[0]):
            em = lprobs[b, : lengths[b]].detach().float().cpu().contiguous()
            best = self.decoder.decode(em.data_ptr(), em.shape[0], em.shape[1])[0]
            tokens = torch.unique_consecutive(torch.tensor(best.tokens, dtype=torch.long))
            ids = [t for t in tokens.tolist() if t != self.blank and t >= 0]
            words = " ".join(self.word_dict.get_entry(w) for w in best.words if w >= 0)
            out.append((ids, words))
        return out
