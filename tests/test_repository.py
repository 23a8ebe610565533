"""What a fresh clone promises: console scripts that start quietly, and a suite that cannot go green
while skipping tests."""

import importlib.metadata
import logging
import os
import re
import subprocess
import sys

import pytest

from conftest import BIN, CONSOLE_SCRIPTS, REPO


def test_every_declared_console_script_is_installed():
    installed = {
        e.name for e in importlib.metadata.distribution("fast-hubert").entry_points if e.group == "console_scripts"
    }
    assert installed == set(CONSOLE_SCRIPTS) and "fast-hubert-dump" in installed


# what the warnings module prints: "FILE:LINE: CATEGORY: message", then the source line, indented
WARNING_LINE = re.compile(r"^(?P<file>.+?):\d+: (?P<category>\w+): ")


def without_dependency_warnings(stderr: str) -> list:
    """The lines of ``stderr`` left once the warnings that other packages raise are taken out: a library's
    DeprecationWarning or FutureWarning is theirs to fix, a log line or a warning of this package is ours."""
    kept, in_warning = [], False
    for line in stderr.splitlines():
        m = WARNING_LINE.match(line)
        if m and m["category"].endswith("Warning") and not m["file"].startswith(str(REPO / "fast_hubert_plugin")):
            in_warning = True
            continue
        if in_warning and line.startswith("  "):  # the source line the warning points at
            continue
        in_warning = False
        kept.append(line)
    return kept


def test_dependency_warnings_are_told_apart_from_log_lines():
    torch_warning = (
        "/venv/lib/python3.11/site-packages/torch/jit/_script.py:1488: DeprecationWarning: `torch.jit.script` is "
        "deprecated.\n  warnings.warn(\n"
    )
    ours = f"{REPO}/fast_hubert_plugin/data/labels.py:12: UserWarning: ours\n  warnings.warn('ours')\n"
    log = "2026-01-01 12:00:00 | INFO | fairseq.tasks.text_to_speech | Please install tensorboardX\n"
    assert without_dependency_warnings(torch_warning * 3) == []
    assert without_dependency_warnings(torch_warning + log + torch_warning) == [log.strip()]
    assert without_dependency_warnings(ours) == ours.splitlines()


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_script_help_prints_only_its_own_usage(script):
    # every warning shown, as a future release of a dependency may show them by default
    env = dict(os.environ, PYTHONWARNINGS="always")
    proc = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: "), proc.stdout[:300]
    # no library log lines (e.g. "Please install tensorboardX")
    assert without_dependency_warnings(proc.stderr) == [], proc.stderr[-500:]


def run_pytest(tmp_path, body):
    (tmp_path / "test_x.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "skip_guard",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_x.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_skipped_test_fails_the_run(tmp_path):
    proc = run_pytest(
        tmp_path, "import pytest\n\ndef test_a():\n    pass\n\ndef test_b():\n    pytest.skip('no data')\n"
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 test(s) skipped" in proc.stdout and "1 passed, 1 skipped" in proc.stdout


def test_a_run_without_skips_passes(tmp_path):
    proc = run_pytest(tmp_path, "def test_a():\n    pass\n")
    assert proc.returncode == 0, proc.stdout


def test_importing_the_plugin_leaves_the_root_logger_alone():
    """fairseq's import calls logging.basicConfig(level=DEBUG): a fresh process that imports the plugin
    keeps the root logger's WARNING level and gets no handler, so no library prints DEBUG records."""
    code = (
        "import logging; import fast_hubert_plugin; import fairseq.models.wav2vec.wav2vec2_classification; "
        "r = logging.getLogger(); print(r.level, len(r.handlers)); "
        "logging.getLogger('matplotlib.font_manager').debug('SHOULD NOT PRINT')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == [str(logging.WARNING), "0"], out.stdout
    assert "SHOULD NOT PRINT" not in out.stderr and "DEBUG:" not in out.stderr


def test_transformers_pipelines_import_in_the_venv_without_the_plugin():
    """No package in the environment fails to load: transformers imports torchaudio whenever it is
    installed, and the torchaudio fairseq declares could not load beside torch 2.13 (make setup leaves it out)."""
    code = "from transformers import pipeline, AutoFeatureExtractor; import fairseq; print('imported')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip().endswith("imported"), out.stderr[-2000:]
