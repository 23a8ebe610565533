"""Which speech the demo and the benchmarks use, and the layouts of the folders they know.

Resolution order: an explicit folder (``--speech-dir`` or ``$FAST_HUBERT_SPEECH_DIR``), then the
project's speech folder beside the repository (``../shared/speech``) when present, otherwise Mini
LibriSpeech, downloaded into the cache (``~/.cache/fast-hubert`` or ``$FAST_HUBERT_CACHE``). The
package reads any folder (``fast_hubert_plugin.recipes.corpus``); the choice of folder is made here,
once, for the demo and the benchmarks (they put ``examples/`` on ``sys.path``).
"""

import os
from pathlib import Path
from typing import Optional

from fast_hubert_plugin.data.mini_librispeech import fetch_mini_librispeech
from fast_hubert_plugin.recipes.corpus import Corpus, Layout, load_corpus

SPEECH_ENV = "FAST_HUBERT_SPEECH_DIR"
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"  # beside the repository

LAYOUTS = {
    # the project's speech folder: speechocean762 train/dev + LibriSpeech excerpts (no transcripts)
    "so762": Layout("so762_train.tsv", "so762_dev.tsv", ("librispeech_train_clean_100.tsv",)),
    # Mini LibriSpeech as fetch_mini_librispeech writes it: 5 h of training speech; 300 of the
    # dev-clean-2 utterances keep validation short
    "mini_librispeech": Layout("train-clean-5.tsv", "dev-clean-2.tsv", max_dev=300),
}


def default_speech_dir() -> Path:
    """``$FAST_HUBERT_SPEECH_DIR``, else the project's speech folder (for benchmarks that read its
    manifests by name and download nothing)."""
    return Path(os.environ.get(SPEECH_ENV) or SHARED_SPEECH)


def resolve_speech_dir(
    speech_dir: Optional[Path] = None,
    shared: Path = SHARED_SPEECH,
    cache_dir: Optional[Path] = None,
    base_url: Optional[str] = None,
) -> Path:
    """The folder to read speech from, downloading Mini LibriSpeech when nothing else is there."""
    explicit = speech_dir or os.environ.get(SPEECH_ENV)
    if explicit:
        folder = Path(explicit).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"speech folder {folder} not found: pass --speech-dir (or ${SPEECH_ENV}) "
                "pointing at a folder of 16 kHz .flac/.wav audio"
            )
        return folder
    if (shared / LAYOUTS["so762"].train).is_file():
        return shared.resolve()
    print(f"no speech folder given and none at {shared}: using Mini LibriSpeech (OpenSLR 31)", flush=True)
    return fetch_mini_librispeech(cache_dir, base_url)


def load_speech(speech: Path, transcripts: Optional[Path] = None) -> Corpus:
    """``speech`` split by the layout of the known folder it is, else every audio file below it
    (with ``transcripts``, a TSV of ``path`` and ``text``, for the CTC rows)."""
    return load_corpus(speech, LAYOUTS.values(), transcripts)
