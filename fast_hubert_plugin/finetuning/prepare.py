"""fast-hubert-prepare-ctc: a transcribed TSV -> fairseq manifest + letter CTC labels.

Reads a tab-separated file with a header line naming at least the columns ``path`` (audio,
relative to the TSV's folder or absolute) and ``text`` (the transcript), optionally
``num_samples`` (samples at 16 kHz, see below; checked against the audio; read from the audio
header when absent). Other columns (``id``, ``speaker``...) are ignored. Writes, into --output-dir:

  {split}.tsv    fairseq manifest: the audio files' common folder, then path<TAB>num_samples
  {split}.ltr    letters separated by spaces, '|' ending every word ("H I | T H E R E |"),
                 as fairseq's wav2vec ``libri_labels.py``
  {split}.wrd    the words, one utterance per line
  dict.ltr.txt   letter dictionary (fairseq format, 'letter count' lines), built from this split
                 when --write-dict is given or no dict.ltr.txt exists yet; --dict-from copies one

Audio at any sample rate and channel count is accepted: it is down-mixed and resampled to 16 kHz
mono whenever it is read (features/audio.py), and ``num_samples`` in the manifest counts samples
*after* that conversion (a 3 s file at 44.1 kHz: 48000, not fairseq's 132300), the size every later
stage computes fbank frames, label lengths and crops from. One line says how many files will be
converted; --no-resample refuses them instead.

Transcripts are taken as they are (only runs of spaces collapse): normalise case and
punctuation before. Every row is checked: audio present, readable, convertible, non-empty, same
length as ``num_samples``; text not empty; letters all in the dictionary when the dictionary was
not built from this split (a dev/test split). Errors name the TSV file and line. Every output is
written atomically. With --no-text only the manifest is written (pretraining audio).

Typical use: ``--split train --write-dict`` on the training TSV, then ``--split valid`` on the
dev TSV into the same folder. That folder is then both task.data and task.label_dir.
"""

import argparse
import filecmp
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tqdm import tqdm

from ..data.labels import check_symbols_in_dictionary, dictionary_symbols, load_dictionary
from ..features.audio import AudioFormat, audio_format
from ..features.kaldi_fbank import SAMPLE_RATE, check_at_least_one_frame
from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.cli import HelpFormatter, add_no_resample_argument, console_script
from ..utils.errors import DataError
from .ctc import WORD_BOUNDARY, words_to_letters

logger = logging.getLogger("fast_hubert.prepare")

DICT_NAME = "dict.ltr.txt"


@dataclass
class Row:
    line: int  # 1-based line in the input TSV
    audio: str  # absolute path
    num_samples: int  # at 16 kHz, after any resampling
    words: List[str]
    format: AudioFormat = field(default=None, compare=False)  # the file's own rate, channels and frames


def text_to_words(text: str) -> List[str]:
    return text.split()


def read_transcribed_tsv(path: str, need_text: bool = True, progress: bool = True, resample: bool = True) -> List[Row]:
    """Rows of the input TSV, each checked against its audio file (``resample``: audio that is not
    16 kHz mono is accepted, else refused)."""
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, "input TSV not found", "pass a tab-separated file with a 'path' and a 'text' column")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise DataError(path, "empty file", "the first line must be a header naming the columns, e.g. 'path<TAB>text'")
    header = lines[0].split("\t")
    required = ["path"] + (["text"] if need_text else [])
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            path,
            f"header {header} lacks column(s) {missing}",
            "the first line must name the tab-separated columns, including 'path' and 'text' "
            "(or pass --no-text for audio without transcripts)",
            line=1,
        )
    col = {name: i for i, name in enumerate(header)}
    root = os.path.dirname(os.path.abspath(path))
    rows = []
    for n, line in enumerate(tqdm(lines[1:], desc=f"check {os.path.basename(path)}", disable=not progress), start=2):
        if not line.strip():
            raise DataError(path, "empty line", "remove it", line=n)
        items = line.split("\t")
        if len(items) < len(header):
            items += [""] * (len(header) - len(items))
        if len(items) > len(header):
            raise DataError(
                path,
                f"{len(items)} tab-separated fields but the header has {len(header)}",
                "remove the extra tabs (tabs are not allowed inside a transcript)",
                line=n,
            )
        rel = items[col["path"]].strip()
        if not rel:
            raise DataError(path, "empty path", "give every row an audio file", line=n)
        audio = os.path.normpath(os.path.join(root, rel))
        fmt = check_audio(audio, path, n, resample)
        num_samples = fmt.num_samples()
        if "num_samples" in col and items[col["num_samples"]].strip():
            try:
                declared = int(items[col["num_samples"]])
            except ValueError:
                raise DataError(
                    path,
                    f"num_samples {items[col['num_samples']]!r} is not an integer",
                    "fix it or drop the column (it is then read from the audio)",
                    line=n,
                ) from None
            if declared != num_samples:
                native = f" (its {fmt.frames} frames at {fmt.sample_rate} Hz)" if fmt.is_converted() else ""
                raise DataError(
                    path,
                    f"num_samples says {declared} but {audio} has {num_samples} samples at 16 kHz{native}",
                    "fix the column (samples at 16 kHz after resampling) or drop it (it is then read from the audio)",
                    line=n,
                )
        words = text_to_words(items[col["text"]]) if need_text else []
        if need_text and not words:
            raise DataError(
                path, "empty transcript", "drop the row, or pass --no-text to write a manifest only", line=n
            )
        if any(WORD_BOUNDARY in w for w in words):
            raise DataError(
                path,
                f"transcript contains the word-boundary symbol '{WORD_BOUNDARY}'",
                "remove it from the text",
                line=n,
            )
        rows.append(Row(line=n, audio=audio, num_samples=num_samples, words=words, format=fmt))
    if not rows:
        raise DataError(path, "no rows after the header", "add one line per utterance")
    log_conversions(rows, path)
    return rows


def check_audio(audio: str, tsv: str, line: int, resample: bool = True) -> AudioFormat:
    """The header of ``audio``; DataError naming the TSV line if unusable."""
    try:
        fmt = audio_format(audio, SAMPLE_RATE, resample=resample)
        check_at_least_one_frame(fmt.num_samples(), audio)
    except DataError as e:  # the row of the TSV is what to fix
        raise DataError(tsv, f"{e.problem}: {audio}", e.fix, line=line) from None
    except ValueError as e:
        raise DataError(tsv, str(e), "drop the row", line=line) from None
    return fmt


def log_conversions(rows: List[Row], tsv: str) -> None:
    """One line for the whole TSV: how many files are converted on load, by format."""
    formats = Counter((r.format.sample_rate, r.format.channels) for r in rows if r.format.is_converted())
    if formats:
        by_format = "; ".join(
            f"{n} at {AudioFormat(rate, channels, 0).describe()}" for (rate, channels), n in sorted(formats.items())
        )
        logger.info(
            f"{tsv}: {sum(formats.values())} of {len(rows)} files are not 16 kHz mono ({by_format}): they are "
            "down-mixed and resampled to 16 kHz on load, and the manifest counts their samples at 16 kHz"
        )


def manifest_text(rows: List[Row]) -> str:
    """fairseq manifest: the audio files' common folder, then path relative to it<TAB>num_samples."""
    root = os.path.commonpath([os.path.dirname(r.audio) for r in rows])
    out = [root] + [f"{os.path.relpath(r.audio, root)}\t{r.num_samples}" for r in rows]
    return "\n".join(out) + "\n"


def build_letter_dictionary(rows: List[Row]) -> Dict[str, int]:
    """Letter -> count over the rows' letter labels (including '|'), most frequent first."""
    counts = Counter()
    for r in rows:
        counts.update(words_to_letters(r.words).split())
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def dictionary_text(counts: Dict[str, int]) -> str:
    return "".join(f"{sym} {n}\n" for sym, n in counts.items())


def read_letter_dictionary(path: str) -> List[str]:
    return dictionary_symbols(load_dictionary(path))


def check_letters(rows: List[Row], letters: List[str], tsv: str, dict_path: str) -> None:
    """The rows' letters against a dictionary; errors name the line of the input TSV."""
    check_symbols_in_dictionary(
        [words_to_letters(r.words) for r in rows],
        letters,
        tsv,
        dict_path,
        "normalise the transcript to the training alphabet, or rebuild the dictionary with "
        "--write-dict on a training split that has these characters",
        symbol="character",
        line_numbers=[r.line for r in rows],
    )


def prepare_split(
    tsv: str,
    split: str,
    output_dir: str,
    need_text: bool = True,
    write_dict: bool = False,
    dict_from: Optional[str] = None,
    progress: bool = True,
    resample: bool = True,
) -> Dict[str, str]:
    """Write {split}.tsv (+ .ltr, .wrd and dict.ltr.txt with text). Returns {kind: path written}."""
    rows = read_transcribed_tsv(tsv, need_text=need_text, progress=progress, resample=resample)
    os.makedirs(output_dir, exist_ok=True)
    written = {}
    dict_path = os.path.join(output_dir, DICT_NAME)
    if need_text:
        if dict_from is not None:
            check_letters(rows, read_letter_dictionary(dict_from), tsv, dict_from)
            if not os.path.isfile(dict_path):
                with atomic_path(dict_path) as tmp:
                    shutil.copyfile(dict_from, tmp)
                written["dict"] = dict_path
            elif not filecmp.cmp(dict_from, dict_path, shallow=False):
                raise DataError(
                    dict_path,
                    f"exists and differs from --dict-from {dict_from}",
                    "remove it, or drop --dict-from to check against the dictionary already there",
                )
        elif write_dict or not os.path.isfile(dict_path):
            atomic_write_text(dict_path, dictionary_text(build_letter_dictionary(rows)))
            written["dict"] = dict_path
        else:
            check_letters(rows, read_letter_dictionary(dict_path), tsv, dict_path)
        for ext, text in (
            ("ltr", [words_to_letters(r.words) for r in rows]),
            ("wrd", [" ".join(r.words) for r in rows]),
        ):
            p = os.path.join(output_dir, f"{split}.{ext}")
            atomic_write_text(p, "\n".join(text) + "\n")
            written[ext] = p
    manifest = os.path.join(output_dir, f"{split}.tsv")
    atomic_write_text(manifest, manifest_text(rows))
    written["manifest"] = manifest
    return written


@console_script("fast-hubert-prepare-ctc")
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="fast-hubert-prepare-ctc", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("tsv", help="input TSV with a header: columns 'path' and 'text' (+ optional 'num_samples')")
    parser.add_argument(
        "--split", required=True, help="split name of the outputs: {split}.tsv/.ltr/.wrd (e.g. train, valid)"
    )
    parser.add_argument("--output-dir", required=True, help="folder to write into (task.data and task.label_dir)")
    parser.add_argument(
        "--write-dict",
        action="store_true",
        help=f"(re)build {DICT_NAME} from this split; by default it is built only when absent",
    )
    parser.add_argument("--dict-from", metavar="DICT", help=f"use this existing {DICT_NAME} (copied into --output-dir)")
    parser.add_argument("--no-text", action="store_true", help="write the manifest only (audio without transcripts)")
    add_no_resample_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.write_dict and args.dict_from:
        parser.error("--write-dict and --dict-from exclude each other")
    written = prepare_split(
        args.tsv,
        args.split,
        args.output_dir,
        need_text=not args.no_text,
        write_dict=args.write_dict,
        dict_from=args.dict_from,
        progress=not args.quiet,
        resample=not args.no_resample,
    )
    with open(written["manifest"], encoding="utf-8") as f:
        n = sum(1 for _ in f) - 1
    print(f"{args.split}: {n} utterances; wrote " + ", ".join(written[k] for k in sorted(written)))


if __name__ == "__main__":
    main()
