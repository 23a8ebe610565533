"""HuBERT-format label files: ``{split}.{label}`` (one line per manifest row, space-separated
units) and ``dict.{label}.txt`` (fairseq dictionary). Validated in full when loaded, so that a
wrong file fails at start-up with its line number instead of deep inside training."""

import os
from typing import List, Sequence

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


def read_label_lines(path, num_rows: int, manifest_path: str) -> List[str]:
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, "label file not found", "check task.label_dir and task.labels")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) != num_rows:
        raise DataError(
            path,
            f"{len(lines)} lines but the manifest {manifest_path} has {num_rows} rows",
            "labels must have exactly one line per manifest row, in the same order; regenerate them from this manifest",
        )
    return lines


def check_units_in_dictionary(lines: Sequence[str], dictionary: Dictionary, path, dict_path) -> None:
    """Every unit must be in the dictionary: fairseq would silently map it to <unk>."""
    known = set(dictionary.symbols[dictionary.nspecial :])
    for n, line in enumerate(lines, start=1):
        units = set(line.split())
        missing = units - known
        if missing:
            example = sorted(missing)[:5]
            raise DataError(
                path,
                f"unit(s) {example} not in the dictionary {dict_path}",
                "regenerate the dictionary from the same k-means model as the labels",
                line=n,
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
