"""HuBERT-format label files: ``{split}.{label}`` (one line per manifest row, space-separated
units) and ``dict.{label}.txt`` (fairseq dictionary). Validated in full when loaded, so that a
wrong file fails at start-up with its line number instead of deep inside training."""

import os
from typing import Iterable, List, Optional, Sequence

from fairseq.data import Dictionary

from ..features.kaldi_fbank import SAMPLE_RATE
from ..utils.errors import DataError

# fairseq's HuBERT accepts labels whose duration differs from the audio's by up to 0.1 s.
DEFAULT_LENGTH_TOLERANCE_S = 0.1


def expected_num_labels(num_samples: int, label_rate: float, sample_rate: int = SAMPLE_RATE) -> float:
    """Labels a frame-level label file should have for an utterance (duration x label rate)."""
    return num_samples / sample_rate * label_rate


def load_dictionary(path) -> Dictionary:
    path = str(path)
    fix = "write one 'unit count' line per unit, e.g. with fast-hubert-apply-kmeans"
    if not os.path.isfile(path):
        raise DataError(path, "dictionary not found", fix)
    try:
        d = Dictionary.load(path)
    except Exception as e:  # fairseq raises ValueError/RuntimeError with its own text
        raise DataError(path, f"not a fairseq dictionary ({e})", fix) from None
    if len(d) <= d.nspecial:
        raise DataError(path, "dictionary is empty: every label would silently become <unk>", fix)
    return d


def read_label_lines(
    path,
    num_rows: int,
    manifest_path: str,
    what: str = "label file",
    missing_fix: str = "check task.label_dir and task.labels",
    mismatch_fix: str = "labels must have exactly one line per manifest row, in the same order; "
    "regenerate them from this manifest",
) -> List[str]:
    """The lines of a label file (k-means units, letters, words), one per manifest row.
    ``what`` names the file and the fixes say how it is made, in the errors."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, f"{what} not found", missing_fix)
    with open(path, "rb") as f:
        data = f.read()
    # fairseq reads a label line by its byte offsets, counted over lines read in text mode, where
    # "\r\n" is one character: with Windows line endings every line after the first is misread.
    if b"\r" in data:
        line = data[: data.index(b"\r")].count(b"\n") + 1
        raise DataError(
            path,
            f"line {line} ends with a carriage return (Windows line endings)",
            f"convert the file to '\\n' line endings, e.g. sed -i 's/\\r$//' {path}",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(path, f"line {line} is not UTF-8 text", "write the labels as UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the last line's newline
        lines.pop()
    if len(lines) != num_rows:
        raise DataError(path, f"{len(lines)} lines but the manifest {manifest_path} has {num_rows} rows", mismatch_fix)
    return lines


def check_symbols_in_dictionary(
    lines: Sequence[str],
    symbols: Iterable[str],
    path,
    dict_path,
    fix: str,
    symbol: str = "unit",
    line_numbers: Optional[Sequence[int]] = None,
    empty_fix: Optional[str] = None,
) -> None:
    """Every space-separated symbol of every line must be one of ``symbols`` (a dictionary's):
    fairseq would silently map any other to <unk>. Errors name ``path`` and the line, 1-based or
    ``line_numbers[i]`` for ``lines[i]``; with ``empty_fix`` an empty line is an error too (a CTC
    target needs a symbol)."""
    known = set(symbols)
    for i, line in enumerate(lines):
        n = line_numbers[i] if line_numbers is not None else i + 1
        units = line.split()
        if not units and empty_fix is not None:
            raise DataError(path, "empty transcript", empty_fix, line=n)
        missing = sorted(set(units) - known)
        if missing:
            raise DataError(path, f"{symbol}(s) {missing[:5]} not in the dictionary {dict_path}", fix, line=n)


def dictionary_symbols(dictionary: Dictionary) -> List[str]:
    """The symbols of a fairseq dictionary without its specials (<s>, <pad>, </s>, <unk>)."""
    return dictionary.symbols[dictionary.nspecial :]


def check_units_in_dictionary(lines: Sequence[str], dictionary: Dictionary, path, dict_path) -> None:
    """k-means unit labels against their dictionary."""
    check_symbols_in_dictionary(
        lines,
        dictionary_symbols(dictionary),
        path,
        dict_path,
        "regenerate the dictionary from the same k-means model as the labels",
    )


def check_label_lengths(
    lines: Sequence[str],
    num_samples: Sequence[int],
    label_rate: float,
    path,
    manifest_path: str,
    tolerance_s: float = DEFAULT_LENGTH_TOLERANCE_S,
    sample_rate: int = SAMPLE_RATE,
) -> None:
    for i, (line, n) in enumerate(zip(lines, num_samples)):
        got = len(line.split())
        want = expected_num_labels(n, label_rate, sample_rate)
        if abs(got - want) / label_rate > tolerance_s:
            raise DataError(
                path,
                f"{got} labels for {n} samples ({n / sample_rate:.2f} s, row {i + 2} of {manifest_path}); "
                f"at label_rate={label_rate:g} Hz about {want:.0f} are expected",
                "check model.label_rate (it must be the rate the labels were written at) and that the "
                "labels were made from this manifest",
                line=i + 1,
            )
