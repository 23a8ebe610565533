"""End to end: `fairseq-hydra-train` with the plugin on real speech, checkpoint reload and resume."""

import math
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from fast_hubert_plugin.config import config_dir

from conftest import REPO, learning_controls, pretrain_like_the_benchmark, run_hydra_train, train_log_records


@pytest.fixture(scope="module")
def pretrained_shuffled(pretraining_data, tmp_path_factory):
    """The control: pretrained_tiny's run on training units shuffled across utterances (the same units in
    the same proportions, unrelated to the audio); validated on the true units. Its train log text."""
    root = tmp_path_factory.mktemp("shuffled")
    labels = learning_controls.shuffled_label_dir(pretraining_data, root / "labels")
    return pretrain_like_the_benchmark(root / "run", pretraining_data, labels)


# Margins on the held-out masked frames (block 4), about half the smallest that benchmarks/results/
# learning_controls_cpu.md measured for this run over seeds 1-5: below the unigram CE by 0.82-1.07 bits,
# below the shuffled control's by 0.75-1.35 bits, accuracy above both by 5.6-9.9 points (0.120-0.164
# against at most 0.067).
MARGINS = {"unigram_bits": 0.4, "shuffled_bits": 0.4, "accuracy": 0.025}


def test_pretraining_learns_from_the_audio(pretrained_tiny, pretrained_shuffled, pretraining_data):
    """In the same updates, the model trained on the true units predicts held-out masked units better than
    the unit frequencies alone (unigram) and than the same run on units shuffled across utterances: what
    a model learns from the audio, which one that learns only how often each unit occurs, or one whose
    labels do not match its audio, does not."""
    _, log = pretrained_tiny
    records = train_log_records(log)
    assert int(records[-1]["num_updates"]) == learning_controls.UPDATES
    # ILS: the tiny config supervises blocks 2 and 4, both logged with their own accuracy
    assert {"acc_m_L2", "acc_m_L4", "loss_m_L2", "loss_m_L4"} <= set(records[-1])
    for text in (log, pretrained_shuffled):
        assert int(train_log_records(text, "valid")[-1]["valid_num_updates"]) == learning_controls.UPDATES
    true, shuffled = learning_controls.last_valid(log), learning_controls.last_valid(pretrained_shuffled)
    unigram = learning_controls.unigram_baseline(pretraining_data)
    print(f"held-out masked CE (bits) / accuracy: true {true}, shuffled {shuffled}, unigram {unigram}")
    assert true["loss"] < unigram["ce_bits"] - MARGINS["unigram_bits"], (true, unigram)
    assert true["loss"] < shuffled["loss"] - MARGINS["shuffled_bits"], (true, shuffled)
    assert true["acc"] > max(shuffled["acc"], unigram["majority_acc"]) + MARGINS["accuracy"], (true, shuffled, unigram)


def test_checkpoint_reloads_with_identical_outputs(pretrained_tiny, pretraining_data):
    """Two loaders, one checkpoint: fairseq's load_model_ensemble_and_task and the plugin's load_checkpoint
    (a model built by the checkpoint's task from its config, the weights loaded into it) give the file's
    weights and the same outputs; the reloaded model scores the held-out set as the run's own last
    validation did."""
    from fairseq import checkpoint_utils

    import fast_hubert_plugin  # noqa: F401  (allowlists fairseq types for torch.load)
    from fast_hubert_plugin.data.manifest import read_manifest
    from fast_hubert_plugin.features import compute_fbank, read_audio
    from fast_hubert_plugin.models.checkpoints import load_checkpoint

    run_dir, log = pretrained_tiny
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
    other, _, _ = load_checkpoint(ckpt, "cpu", {"data": str(pretraining_data), "label_dir": str(pretraining_data)})
    assert other is not model
    with torch.no_grad():
        a, _ = model.extract_features(fb, None, mask=False)
        b, _ = other.eval().extract_features(fb, None, mask=False)
    assert a.shape == (1, math.ceil(math.ceil(fb.shape[1] / 2) / 2), 256)
    assert torch.equal(a, b)

    # the held-out set through the task's batches and the criterion, as fairseq's validation runs it
    task.load_dataset("valid")
    batches = task.get_batch_iterator(
        dataset=task.dataset("valid"),
        max_tokens=cfg.dataset.max_tokens,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple,
        ignore_invalid_inputs=True,
        seed=cfg.common.seed,
    ).next_epoch_itr(shuffle=False)
    criterion = task.build_criterion(cfg.criterion)
    loss = count = 0.0
    with torch.no_grad():
        for sample in batches:
            _, _, logging_output = criterion(model, sample)
            loss += float(logging_output["loss_m_L4"])
            count += float(logging_output["count_m_L4"])
    logged = float(train_log_records(log, "valid")[-1]["valid_loss_m_L4"])
    assert count > 300 and abs(loss / count / math.log(2) - logged) <= 5e-4 + 1e-6, (loss / count / math.log(2), logged)


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
