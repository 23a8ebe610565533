"""Shared fixtures: real speech from the shared corpus (../shared/speech beside the repo, or
$FAST_HUBERT_SPEECH_DIR), turned into fairseq manifests in a temporary folder."""
import csv
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def speech_dir() -> Path:
    return Path(os.environ.get("FAST_HUBERT_SPEECH_DIR", REPO.parent / "shared" / "speech")).resolve()


def read_corpus_tsv(name: str):
    with open(speech_dir() / name, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_manifest(path: Path, rows, root: Path) -> Path:
    """fairseq manifest: root line, then path<TAB>num_samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{root}\n")
        for r in rows:
            f.write(f"{r['path']}\t{r['num_samples']}\n")
    return path


@pytest.fixture(scope="session")
def speech_root() -> Path:
    d = speech_dir()
    if not (d / "so762_train.tsv").is_file():
        pytest.skip(f"real speech corpus not found at {d}: set FAST_HUBERT_SPEECH_DIR")
    return d


@pytest.fixture(scope="session")
def small_manifests(speech_root, tmp_path_factory):
    """train: 48 so762 + 16 LibriSpeech utterances; valid: 16 so762 dev utterances."""
    out = tmp_path_factory.mktemp("manifests")
    train = read_corpus_tsv("so762_train.tsv")[:48] + read_corpus_tsv("librispeech_train_clean_100.tsv")[:16]
    valid = read_corpus_tsv("so762_dev.tsv")[:16]
    write_manifest(out / "train.tsv", train, speech_root)
    write_manifest(out / "valid.tsv", valid, speech_root)
    return out
