"""Greedy (Viterbi) CTC decoding and word / character error rates.

fairseq's ``ctc`` criterion trains with the blank at the target dictionary's ``<s>`` (bos)
index (``task.blank_symbol``), so that is the blank here too. Letter units map back to words
as in fairseq's ``post_process(..., "letter")``: drop the spaces, '|' becomes a space.
"""

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

import editdistance
import torch
from fairseq.data import Dictionary

BLANK_SYMBOL = "<s>"
WORD_BOUNDARY = "|"  # fairseq's letter targets (libri_labels.py): '|' ends every word


def words_to_letters(words: List[str]) -> str:
    """["HELLO", "WORLD"] -> "H E L L O | W O R L D |" (fairseq's libri_labels.py format)."""
    return " ".join(list(" ".join(words).replace(" ", WORD_BOUNDARY))) + f" {WORD_BOUNDARY}" if words else ""


def ctc_blank(dictionary: Dictionary) -> int:
    return dictionary.index(BLANK_SYMBOL)


def ctc_greedy(emissions: torch.Tensor, blank: int) -> List[int]:
    """emissions: (frames, vocab) scores of one utterance (padding removed).
    Best unit per frame, repeats collapsed, blanks dropped."""
    best = emissions.argmax(dim=-1)
    best = torch.unique_consecutive(best)
    return best[best != blank].tolist()


def units_to_letters(dictionary: Dictionary, ids: Iterable[int]) -> str:
    """Unit ids -> space-separated letters; special symbols (<s>, <pad>, </s>, <unk>) dropped."""
    return " ".join(dictionary[i] for i in ids if i >= dictionary.nspecial)


def letters_to_text(letters: str) -> str:
    """ "H I | T H E R E |" -> "HI THERE"."""
    return " ".join("".join(letters.split()).replace(WORD_BOUNDARY, " ").split())


class ViterbiDecoder:
    """Greedy CTC decoding of a batch of log-probabilities."""

    def __init__(self, dictionary: Dictionary):
        self.dictionary = dictionary
        self.blank = ctc_blank(dictionary)

    def decode(self, lprobs: torch.Tensor, lengths: Sequence[int]) -> List[List[int]]:
        """lprobs: (B, T, V); lengths: valid frames per row. -> unit ids per row."""
        return [ctc_greedy(lprobs[b, : lengths[b]], self.blank) for b in range(lprobs.shape[0])]


@dataclass
class ErrorCounts:
    """Edit distances summed over a corpus. CER counts characters of the word sequence joined by
    single spaces (spaces included), WER counts words; both in percent of the reference."""

    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    utterances: int = 0

    @property
    def wer(self) -> float:
        return 100.0 * self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return 100.0 * self.char_errors / max(self.chars, 1)

    def add(self, hyp: str, ref: str) -> None:
        hw, rw = hyp.split(), ref.split()
        hc, rc = " ".join(hw), " ".join(rw)
        self.word_errors += editdistance.eval(hw, rw)
        self.words += len(rw)
        self.char_errors += editdistance.eval(hc, rc)
        self.chars += len(rc)
        self.utterances += 1

    def summary(self) -> str:
        return (
            f"WER {self.wer:.2f} ({self.word_errors}/{self.words} words), "
            f"CER {self.cer:.2f} ({self.char_errors}/{self.chars} chars), {self.utterances} utterances"
        )


def error_counts(hyps: Sequence[str], refs: Sequence[str], counts: Optional[ErrorCounts] = None) -> ErrorCounts:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    counts = counts or ErrorCounts()
    for h, r in zip(hyps, refs):
        counts.add(h, r)
    return counts


def wer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return error_counts(hyps, refs).wer


def cer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    return error_counts(hyps, refs).cer
