"""torchrun on machines without GPUs (fairseq_patches/torchrun_on_cpu.py): fairseq's torchrun detection
divides the rank by the GPU count; the patch gives device 0 without GPUs and leaves the GPU path to
fairseq's own function. The launch itself (two torchrun "nodes") is tested in test_distributed.py."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq.dataclass.configs import DistributedTrainingConfig
from fairseq.distributed import utils as distributed_utils

import fast_hubert_plugin  # noqa: F401  (registers: the patch is applied)
from fast_hubert_plugin.fairseq_patches import torchrun_on_cpu

TORCHRUN_ENV = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "8", "RANK": "6", "LOCAL_RANK": "2"}


@pytest.fixture
def under_torchrun(monkeypatch):
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)

    def gpus(count):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return gpus


def launched(init, **fields) -> dict:
    cfg = DistributedTrainingConfig(**fields)
    init(cfg)
    return dataclasses.asdict(cfg)


@pytest.mark.parametrize("gpus", [1, 4, 8])
def test_with_gpus_fairseqs_own_detection_runs_unchanged(under_torchrun, gpus):
    under_torchrun(gpus)
    ours = launched(torchrun_on_cpu.infer_torchrun_init)
    assert ours == launched(torchrun_on_cpu._fairseq_launch_init)  # fairseq's function, field for field
    assert (ours["distributed_rank"], ours["distributed_world_size"], ours["device_id"]) == (6, 8, 6 % gpus)


def test_without_gpus_device_0_where_fairseq_divides_by_zero(under_torchrun):
    under_torchrun(0)
    with pytest.raises(ZeroDivisionError):
        launched(torchrun_on_cpu._fairseq_launch_init)
    ours = launched(torchrun_on_cpu.infer_torchrun_init)
    expected = dict(distributed_init_method="env://", distributed_world_size=8, distributed_rank=6)
    expected.update(device_id=0, distributed_no_spawn=True)
    assert {k: ours[k] for k in expected} == expected
    fairseq_fields = dataclasses.asdict(DistributedTrainingConfig())
    assert {k for k in ours if ours[k] != fairseq_fields[k]} <= set(expected)  # nothing else set


def test_registering_puts_the_patch_where_fairseqs_launcher_looks(under_torchrun):
    """fairseq's infer_init_method, as fairseq-hydra-train calls it, takes the patched path after register()."""
    assert distributed_utils._infer_torch_distributed_launch_init is torchrun_on_cpu.infer_torchrun_init
    under_torchrun(0)
    # world size > 1: fairseq looks at the environment; tpu resolved (a bare dataclass holds "${common.tpu}")
    cfg = DistributedTrainingConfig(distributed_world_size=2, tpu=False)
    distributed_utils.infer_init_method(cfg)
    assert (cfg.distributed_init_method, cfg.distributed_rank, cfg.distributed_world_size) == ("env://", 6, 8)
    assert cfg.device_id == 0 and cfg.distributed_no_spawn


def test_the_entry_point_prints_its_usage_without_starting_fairseq():
    script = Path(sys.executable).parent / "fast-hubert-hydra-train"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: fast-hubert-hydra-train"), proc.stdout
    assert "torchrun" in proc.stdout and proc.stderr == ""
