"""Speed benchmarks' training data: real speech with random unit labels (the cost of a step does not
depend on the label values). Shared by the speed benchmarks; it is a helper, not a benchmark."""

import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABEL_RATE = 50  # HuBERT's label rate; fast_hubert uses every second label with its 25 Hz frames


def speech_rows(speech_dir: Path, manifests: Sequence[str], min_seconds: float) -> List[Dict[str, str]]:
    """The rows (id, path, num_samples, ...) of speech-folder manifests, utterances of at least ``min_seconds``."""
    rows = []
    for name in manifests:
        lines = (Path(speech_dir) / name).read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        rows += [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    rows = [r for r in rows if int(r["num_samples"]) >= min_seconds * 16000]
    if not rows:
        raise SystemExit(f"{', '.join(manifests)}: no utterance of at least {min_seconds} s in {speech_dir}")
    return rows


def write_random_unit_data(
    data: Path, speech_dir: Path, splits: Dict[str, List[Dict[str, str]]], num_units: int, cmvn_split: str = "valid"
) -> Path:
    """A fairseq data folder: ``{split}.tsv`` and ``{split}.km`` (random units at 50 Hz, the same labels for
    a row listed twice), ``dict.km.txt`` and the ``cmvn.npz`` of ``cmvn_split`` (fast-hubert-cmvn)."""
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = {}
    for split, rows in splits.items():
        for r in rows:
            if r["path"] not in labels:
                n = round(int(r["num_samples"]) / 16000 * LABEL_RATE)
                labels[r["path"]] = " ".join(map(str, rng.integers(0, num_units, n)))
        root = Path(speech_dir).resolve()
        (data / f"{split}.tsv").write_text(
            f"{root}\n" + "".join(f"{r['path']}\t{r['num_samples']}\n" for r in rows), encoding="utf-8"
        )
        (data / f"{split}.km").write_text("".join(labels[r["path"]] + "\n" for r in rows), encoding="utf-8")
    (data / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(num_units)), encoding="utf-8")
    cmd = [sys.executable, "-m", "fast_hubert_plugin.cli.cmvn", str(data / f"{cmvn_split}.tsv")]
    subprocess.run(cmd + ["--output", str(data / "cmvn.npz")], check=True, cwd=REPO)
    return data
