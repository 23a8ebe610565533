"""End to end: `fairseq-hydra-train` with the plugin on real speech, checkpoint reload and resume."""

import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from fast_hubert_plugin.config import config_dir

from conftest import REPO, run_hydra_train, train_log_records


def test_masked_loss_falls(pretrained_tiny):
    _, log = pretrained_tiny
    records = train_log_records(log)
    assert [int(r["num_updates"]) for r in records][-1] == 60
    first, last = float(records[0]["loss"]), float(records[-1]["loss"])
    # log2(54 classes) = 5.75 bits is chance level for a uniform guess
    assert last < 0.6 * first, (first, last)
    assert last < 6.5
    # ILS: the tiny config supervises blocks 2 and 4, both logged with their own accuracy
    assert {"acc_m_L2", "acc_m_L4", "loss_m_L2", "loss_m_L4"} <= set(records[-1])
    valid = train_log_records(log, "valid")
    assert valid and float(valid[-1]["valid_loss"]) < float(records[0]["loss"])


def test_checkpoint_reloads_with_identical_outputs(pretrained_tiny, pretraining_data):
    from fairseq import checkpoint_utils

    import fast_hubert_plugin  # noqa: F401  (allowlists fairseq types for torch.load)
    from fast_hubert_plugin.data.manifest import read_manifest
    from fast_hubert_plugin.features import compute_fbank, read_audio

    run_dir, _ = pretrained_tiny
    ckpt = run_dir / "checkpoints" / "checkpoint_last.pt"
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)])
    model = models[0].eval()
    assert cfg.model._name == "fast_hubert" and cfg.task._name == "fast_hubert_pretraining"

    # the same weights as in the file, CMVN buffers included
    state = torch.load(ckpt, map_location="cpu")["model"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert not torch.equal(model.cmvn_mean, torch.zeros_like(model.cmvn_mean))

    m = read_manifest(pretraining_data / "valid.tsv")
    fb = torch.from_numpy(compute_fbank(read_audio(m.audio_path(0))))[None]
    models2, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(ckpt)])
    with torch.no_grad():
        a, _ = model.extract_features(fb, None, mask=False)
        b, _ = models2[0].eval().extract_features(fb, None, mask=False)
    assert a.shape == (1, math.ceil(math.ceil(fb.shape[1] / 2) / 2), 256)
    assert torch.equal(a, b)


def test_checkpoint_needs_the_allowlist_on_recent_torch(pretrained_tiny):
    """Without the plugin torch>=2.6 refuses fairseq's checkpoint; with it, it loads."""
    run_dir, _ = pretrained_tiny
    ckpt = run_dir / "checkpoints" / "checkpoint_last.pt"
    code = "import sys, torch\n{imp}\ntorch.load(sys.argv[1], map_location='cpu')\nprint('LOADED')"
    plain = subprocess.run([sys.executable, "-c", code.format(imp=""), str(ckpt)], capture_output=True, text=True)
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6):
        assert plain.returncode != 0 and "Dictionary" in plain.stderr
    # The plugin registers (allowlist included) when fairseq is loaded, or when asked to without it.
    for imp in (
        "import fast_hubert_plugin; import fairseq",
        "import fast_hubert_plugin; fast_hubert_plugin.register()",
    ):
        ours = subprocess.run(
            [sys.executable, "-c", code.format(imp=imp), str(ckpt)], capture_output=True, text=True, cwd=REPO
        )
        assert "LOADED" in ours.stdout, (imp, ours.stderr[-2000:])
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt))
    from fast_hubert_plugin.fairseq_patches.checkpoint_safety import FAIRSEQ_CHECKPOINT_GLOBALS

    allowed = {f"{t.__module__}.{t.__qualname__}" for t in FAIRSEQ_CHECKPOINT_GLOBALS}
    assert set(unsafe) <= allowed, unsafe


def test_interrupted_run_resumes_from_checkpoint_last(pretraining_data, tmp_path):
    """Stop at 20 updates, restart with max_update=30: it must continue at update 21 with the
    saved optimizer state, as if never stopped."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    common = [
        f"task.data={pretraining_data}",
        f"task.label_dir={pretraining_data}",
        "model.label_rate=50",
        "common.log_interval=1",
        "dataset.validate_interval=1000",
        "dataset.validate_interval_updates=0",
        "checkpoint.save_interval_updates=10",
    ]
    run_hydra_train(config_dir("pretraining"), "fast_hubert_tiny_cpu", run_dir, common + ["optimization.max_update=20"])
    ckpt = run_dir / "checkpoints" / "checkpoint_last.pt"
    import fast_hubert_plugin  # noqa: F401

    saved = torch.load(ckpt, map_location="cpu")
    assert saved["optimizer_history"][-1]["num_updates"] == 20
    opt_state = saved["last_optimizer_state"]["state"]

    proc = run_hydra_train(
        config_dir("pretraining"), "fast_hubert_tiny_cpu", run_dir, common + ["optimization.max_update=30"]
    )
    log = proc.stdout + proc.stderr
    assert "Loaded checkpoint" in log and "@ 20 updates" in log
    updates = [int(r["num_updates"]) for r in train_log_records(log)]
    assert updates[0] == 21 and updates[-1] == 30
    resumed = torch.load(ckpt, map_location="cpu")
    assert resumed["optimizer_history"][-1]["num_updates"] == 30
    # Adam's step counters continued from the saved state instead of restarting at 0
    key = next(iter(opt_state))
    assert int(resumed["last_optimizer_state"]["state"][key]["step"]) == int(opt_state[key]["step"]) + 10
    # the learning-rate schedule continued too (warmup 30: lr at update 30 is the peak)
    peak = OmegaConf.load(config_dir("pretraining") / "fast_hubert_tiny_cpu.yaml").optimization.lr[0]
    assert float(train_log_records(log)[-1]["lr"]) == pytest.approx(peak, rel=1e-3)


def test_official_fasthubert_names_run(pretraining_data, tmp_path):
    """A YAML written for the official code (task/model/criterion 'fasthubert*', stats_npz_path,
    ils + 0-based predict_layers, loss_weights) trains here."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = run_hydra_train(
        config_dir("pretraining"),
        "fast_hubert_tiny_cpu",
        run_dir,
        [
            f"task.data={pretraining_data}",
            f"task.label_dir={pretraining_data}",
            "task._name=fasthubert_pretraining",
            f"+task.stats_npz_path={pretraining_data}/cmvn.npz",
            "task.cmvn_stats_path=null",
            "model._name=fasthubert",
            "model.label_rate=50",
            "~model.supervised_layers",
            "+model.ils=true",
            '+model.predict_layers="[1,3]"',
            "criterion._name=fasthubert",
            "+criterion.loss_weights=[10]",
            "optimization.max_update=3",
            "common.log_interval=1",
            "dataset.validate_interval=1000",
        ],
    )
    records = train_log_records(proc.stdout + proc.stderr)
    assert {"acc_m_L2", "acc_m_L4"} <= set(records[-1])
    assert "loss_weights=[10.0] has no effect" in proc.stdout + proc.stderr
