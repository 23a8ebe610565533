"""Every console script reports bad input the same way: one line on stderr naming the file (and the
line) and the fix, exit status 2, no traceback."""

import subprocess
from pathlib import Path

import pytest

from conftest import BIN
from conftest import CONSOLE_SCRIPTS as SCRIPTS


def bad_inputs(tmp: Path):
    """For each console script: arguments naming an input that is missing or wrong, and the file
    that the error line must name."""
    bad_manifest = tmp / "bad.tsv"
    bad_manifest.write_text(f"{tmp}\nutt1.flac\tnot-a-number\n")
    return {
        "fast-hubert-cmvn": ([bad_manifest, "--output", tmp / "cmvn.npz"], f"{bad_manifest}, line 2"),
        "fast-hubert-store-fbank": ([tmp / "missing.tsv", "--output-dir", tmp / "store"], tmp / "missing.tsv"),
        "fast-hubert-dump": ([bad_manifest, tmp / "feats", "--feature", "mfcc"], f"{bad_manifest}, line 2"),
        "fast-hubert-learn-kmeans": ([tmp / "nofeats", "train", tmp / "km.npy", "--n-clusters", "10"], tmp / "nofeats"),
        "fast-hubert-apply-kmeans": ([tmp / "nofeats", "train", tmp / "km.npy", tmp / "labels"], tmp / "nofeats"),
        "fast-hubert-label": (
            [bad_manifest, tmp / "km.npy", tmp / "labels", "--feature", "mfcc"],
            f"{bad_manifest}, line 2",
        ),
        "fast-hubert-cluster-report": ([tmp / "missing.km", tmp / "report", "--label-rate", "50"], tmp / "missing.km"),
        "fast-hubert-prepare-ctc": (
            [tmp / "missing.tsv", "--split", "train", "--output-dir", tmp / "ft"],
            tmp / "missing.tsv",
        ),
        "fast-hubert-decode": (
            [tmp / "missing.pt", "--data", tmp, "--results-dir", tmp / "dec", "--device", "cpu"],
            tmp / "missing.pt",
        ),
        "fast-hubert-export": ([tmp / "missing.pt", tmp / "exported"], tmp / "missing.pt"),
        "fast-hubert-hydra-train": (["--config-dir", tmp, "--config-name", "missing"], tmp / "missing.yaml"),
        "fast-hubert-probe": (
            ["--upstream", "fbank", "--data", tmp, "--output-dir", tmp / "probe"],
            tmp / "dict.ltr.txt",
        ),
    }


def test_every_console_script_is_covered(tmp_path):
    assert SCRIPTS and sorted(SCRIPTS) == sorted(bad_inputs(tmp_path))


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_input_is_one_line_exit_2_no_traceback(script, tmp_path):
    args, names = bad_inputs(tmp_path)[script]
    proc = subprocess.run(
        [str(BIN / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(BIN), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
    )
    errors = [line for line in proc.stderr.splitlines() if f"{script}: error:" in line]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert line.startswith(f"{script}: error: {names}") and "Fix: " in line, line
