"""Interruptions lose nothing: a process killed with SIGKILL while saving a checkpoint, dumping
features or writing labels leaves the previous outputs usable and nothing that looks finished;
running the same command again completes."""

import hashlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_clustering import manifest20, pipeline  # noqa: F401  (fixtures)

from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.clustering.feature_shards import ShardPaths, load_split

from conftest import REPO, learning_controls


def run_killed(script: str, *args) -> subprocess.CompletedProcess:
    """Run a Python script that SIGKILLs itself midway; it must have died of the signal."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return proc


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# fairseq saves checkpoint_E_U.pt atomically, then copies it onto checkpoint_last.pt with
# PathManager.copy; here the process is killed when half of the copy is on disk.
KILLED_DURING_COPY = r"""
import os, shutil, signal, sys
if sys.argv[3] == "plugin":
    import fast_hubert_plugin  # what fairseq-hydra-train imports for common.user_dir
from fairseq.file_io import PathManager

def copy_then_die(src, dst, *args, **kwargs):
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

shutil.copyfile = copy_then_die
PathManager.copy(sys.argv[1], sys.argv[2], overwrite=True)  # as fairseq.checkpoint_utils.save_checkpoint
"""


@pytest.mark.parametrize("with_plugin", [True, False])
def test_kill_while_saving_keeps_the_previous_checkpoint_last(pretrained_tiny, tmp_path, with_plugin):
    from fairseq import checkpoint_utils

    import fast_hubert_plugin  # noqa: F401

    run_dir, _ = pretrained_tiny
    last = tmp_path / "checkpoint_last.pt"
    shutil.copyfile(run_dir / "checkpoints" / "checkpoint_last.pt", last)
    before = sha(last)
    state = torch.load(last, map_location="cpu")
    state["optimizer_history"][-1]["num_updates"] += 30
    new = tmp_path / "checkpoint_2_90.pt"
    torch.save(state, new)

    run_killed(KILLED_DURING_COPY, new, last, "plugin" if with_plugin else "fairseq")
    if with_plugin:
        assert sha(last) == before  # untouched: the restarted job resumes from it
        loaded = checkpoint_utils.load_checkpoint_to_cpu(str(last))
        assert loaded["optimizer_history"][-1]["num_updates"] == learning_controls.UPDATES
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert all(".tmp" in name for name in leftovers)  # at most a hidden temporary, never a *.pt fairseq reads
    else:  # fairseq alone: a truncated checkpoint_last.pt that cannot be loaded
        assert last.stat().st_size == new.stat().st_size // 2
        with pytest.raises(Exception):  # noqa: B017  (torch raises one of several types for a truncated zip)
            checkpoint_utils.load_checkpoint_to_cpu(str(last))


KILLED_DURING_DUMP = r"""
import os, signal, sys
from fast_hubert_plugin.clustering import dump as dump_mod
from fast_hubert_plugin.data.manifest import AudioManifest
real, calls = AudioManifest.read_audio, []

def read_then_die(manifest, i):
    calls.append(i)
    if len(calls) == 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(manifest, i)

AudioManifest.read_audio = read_then_die
dump_mod.main([sys.argv[1], sys.argv[2], "--feature", "mfcc", "--workers", "1"])
"""


def test_dump_killed_midway_leaves_nothing_finished_and_reruns(pipeline, manifest20, tmp_path):  # noqa: F811
    out = tmp_path / "feat"
    run_killed(KILLED_DURING_DUMP, manifest20, out)
    paths = ShardPaths.of(out, "train", 0, 1)
    assert not paths.is_finished()
    assert not any(name.endswith((".len", ".npy")) for name in visible(out)), visible(out)
    dump_mod.main([str(manifest20), str(out), "--feature", "mfcc"])  # the same command again
    assert paths.is_finished()
    (again,), (reference,) = load_split(out, "train"), load_split(pipeline / "feat1", "train")
    np.testing.assert_array_equal(again.feats, reference.feats)
    assert list(again.lengths) == list(reference.lengths)


KILLED_DURING_APPLY = r"""
import os, signal, sys
from fast_hubert_plugin.clustering import apply as apply_mod
from fast_hubert_plugin.clustering import units  # writes the label files of apply-kmeans and label
from fast_hubert_plugin.utils.atomic import atomic_path

def write_half_then_die(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text[: len(text) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

units.atomic_write_text = write_half_then_die
apply_mod.main(sys.argv[1:])
"""


def test_apply_killed_while_writing_leaves_no_finished_looking_labels(pipeline, tmp_path):  # noqa: F811
    labels = tmp_path / "labels"
    shutil.copytree(pipeline / "feat1_labels", labels)  # outputs of an earlier run are there
    args = [pipeline / "feat1", "train", pipeline / "feat1_km.npy", labels, "--label-rate", "50"]
    run_killed(KILLED_DURING_APPLY, *args)
    # neither the old pair nor a new label file beside an old dictionary: nothing the task would accept
    assert "dict.km.txt" not in visible(labels), visible(labels)
    apply_mod.main([str(a) for a in args])  # the same command again
    for name in ("train.km", "dict.km.txt"):
        assert (labels / name).read_text() == (pipeline / "feat1_labels" / name).read_text()
