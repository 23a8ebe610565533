"""Distributed training and exact resume on a CPU: summable logs, 2 ranks over gloo through
`fairseq-hydra-train` (started by hand, and as two torchrun "nodes"), torch DDP with
find_unused_parameters=False, and a run killed with SIGKILL that continues with the losses of an
uninterrupted run."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fairseq import metrics
from test_model import batch, tiny_model

from fast_hubert_plugin.config import config_dir
from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion

from conftest import train_log_records

PROBE = Path(__file__).resolve().parent / "rank_probe"


def hydra_command(
    run_dir: Path,
    overrides,
    user_dir: Path = PROBE,
    kind: str = "pretraining",
    config: str = "fast_hubert_tiny_cpu",
    entry_point: str = "fairseq-hydra-train",
):
    return [
        str(Path(sys.executable).parent / entry_point),
        "--config-dir",
        str(config_dir(kind)),
        "--config-name",
        config,
        f"common.user_dir={user_dir}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]


def run_env():
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def probe_overrides(data: Path, probe_dir: Path, max_update: int, probe_update: int = -1):
    probe_dir.mkdir(parents=True, exist_ok=True)
    return [
        f"task.data={data}",
        f"task.label_dir={data}",
        "model.label_rate=50",
        "task._name=fast_hubert_pretraining_rank_probe",
        f"+task.probe_dir={probe_dir}",
        f"+task.probe_update={probe_update}",
        f"optimization.max_update={max_update}",
        "common.log_interval=1",
        "dataset.validate_interval=1000",
        "dataset.validate_interval_updates=0",
    ]


def losses_per_update(probe_dir: Path):
    """{update: loss summed over micro-batches and ranks / their sample sizes} from the probe records."""
    rows = {}
    for path in sorted(probe_dir.glob("losses_rank*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows[(r["update"], r["micro"], path.name)] = r  # a re-run update overwrites the earlier record
    out = {}
    for (update, _, _), r in rows.items():
        loss, size = out.get(update, (0.0, 0))
        out[update] = (loss + r["loss"], size + r["sample_size"])
    return {u: loss / size for u, (loss, size) in sorted(out.items())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- 1. summable logging outputs ------------------------------------------------------------------


def test_logging_outputs_are_summable_and_give_the_same_metrics():
    model = tiny_model(supervised_layers="[2]").train()
    crit = FastHubertCriterion(None, pred_masked_weight=1.0, pred_nomask_weight=0.5)
    logs = []
    for seed in (0, 1, 2):
        source, padding, targets = batch([90, 71, 64], seed=seed)
        sample = {
            "id": torch.arange(3),
            "net_input": {"source": source, "padding_mask": padding},
            "target_list": [targets],
        }
        logs.append(crit(model, sample)[2])
    assert FastHubertCriterion.logging_outputs_can_be_summed()
    # losses and correct counts stay detached tensors (nothing waits for the device); counts are sizes
    assert torch.is_tensor(logs[0]["loss"]) and not logs[0]["loss"].requires_grad
    assert torch.is_tensor(logs[0]["correct_m_L4"]) and isinstance(logs[0]["count_m_L4"], int)
    # what fairseq's fast stat sync hands to reduce_metrics: one dict of sums
    summed = {k: sum(log[k] for log in logs) for k in logs[0]}

    def reduced(logging_outputs):
        with metrics.aggregate() as agg:
            FastHubertCriterion.reduce_metrics(logging_outputs)
        return agg.get_smoothed_values()

    per_batch, one = reduced(logs), reduced([summed])
    assert set(per_batch) == set(one) >= {"loss", "loss_m_L2", "loss_m_L4", "loss_u_L4", "acc_m_L4"}
    for key in per_batch:
        assert one[key] == pytest.approx(per_batch[key], abs=1e-9), key
    by_hand = float(sum(log["loss"] for log in logs)) / sum(log["sample_size"] for log in logs) / np.log(2)
    assert per_batch["loss"] == pytest.approx(by_hand, abs=1e-3) and by_hand > 0


# ---- 3. keyed crops and masks -----------------------------------------------------------------------


def test_crops_and_masks_come_from_seed_epoch_and_utterance_not_global_state(pretraining_data):
    from test_data import make_task

    task = make_task(pretraining_data)
    task.load_dataset("train")
    ds = task.datasets["train"]
    longest = sorted(range(len(ds)), key=lambda i: -ds.sizes[i])[:3]

    def collate(seed, epoch, global_seed):
        np.random.seed(global_seed)
        ds.set_seed(seed)
        ds.set_epoch(epoch)
        return ds.collater([ds[i] for i in longest])

    a, b = collate(1, 1, 0), collate(1, 1, 123)
    assert torch.equal(a["net_input"]["source"], b["net_input"]["source"])
    assert torch.equal(a["net_input"]["rng_keys"], b["net_input"]["rng_keys"])
    from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames

    assert num_fbank_frames(a["net_input"]["source"].shape[1]) < min(ds.sizes[i] for i in longest)  # really cropped
    # another epoch or seed: other keys, other crops (6 s windows out of longer utterances)
    c = collate(1, 2, 0)
    assert not torch.equal(a["net_input"]["rng_keys"], c["net_input"]["rng_keys"])
    assert not torch.equal(a["net_input"]["source"], c["net_input"]["source"])
    assert not torch.equal(a["net_input"]["rng_keys"], collate(2, 1, 0)["net_input"]["rng_keys"])

    model = tiny_model().train()
    x = torch.randn(3, 60, 64)
    keys = a["net_input"]["rng_keys"]
    np.random.seed(0)
    _, m1 = model.apply_mask(x.clone(), None, None, keys)
    np.random.seed(99)
    _, m2 = model.apply_mask(x.clone(), None, None, keys)
    assert torch.equal(m1, m2) and m1.any()
    _, m3 = model.apply_mask(x.clone(), None, None, c["net_input"]["rng_keys"])
    assert not torch.equal(m1, m3)
    # without keys (direct calls) masks still come from numpy's global state, as in fairseq
    np.random.seed(0)
    _, g1 = model.apply_mask(x.clone(), None, None)
    np.random.seed(1)
    _, g2 = model.apply_mask(x.clone(), None, None)
    assert not torch.equal(g1, g2)


# ---- 2. two ranks over gloo through fairseq-hydra-train -----------------------------------------------

UPDATES = 2  # parameters compared after 2 updates; losses at updates 1..3 (6 batches: within epoch 1)
GLOO = [
    "common.cpu=true",
    "distributed_training.distributed_backend=gloo",
    "distributed_training.ddp_backend=legacy_ddp",
    "distributed_training.distributed_world_size=2",
    "distributed_training.distributed_no_spawn=true",
    "dataset.num_workers=0",
    "checkpoint.save_interval_updates=1000",
]


@pytest.fixture(scope="module")
def one_rank_update_freq_2(pretraining_data, tmp_path_factory):
    """The reference: one process, 2 batches per update; its probe folder and log."""
    root = tmp_path_factory.mktemp("one_rank")
    (root / "run").mkdir()
    proc = subprocess.run(
        hydra_command(
            root / "run",
            probe_overrides(pretraining_data, root / "probe", UPDATES + 1, UPDATES)
            + ["optimization.update_freq=[2]", "dataset.num_workers=0", "checkpoint.save_interval_updates=1000"],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=run_env(),
        cwd=root,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return root / "probe", proc.stdout


def check_two_ranks_match_one(probe2: Path, log2: str, reference):
    """Both ranks hold the same parameters, and the run equals one rank with update_freq 2."""
    probe1, log1 = reference
    r0, r1 = torch.load(probe2 / "rank0.pt"), torch.load(probe2 / "rank1.pt")
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    # the same batches reached each update: 2 ranks x 1 batch == 1 rank x 2 batches
    two, one = losses_per_update(probe2), losses_per_update(probe1)
    assert sorted(two) == sorted(one) == list(range(1, UPDATES + 2))
    loss_diff = max(abs(two[u] - one[u]) for u in two)
    assert loss_diff <= 1e-6, (two, one)  # measured: 0
    assert len(set(round(v, 3) for v in one.values())) > 1  # the model trained
    s = torch.load(probe1 / "rank0.pt")
    assert s.keys() == r0.keys()
    param_diff = max((s[k].float() - r0[k].float()).abs().max().item() for k in s)
    print(f"2 ranks vs update_freq 2: max |loss diff| {loss_diff:.3g}, max |parameter diff| {param_diff:.3g}")
    assert param_diff <= 1e-6  # measured: 0
    # fairseq's own logs (rank 0, summed over ranks) agree too
    logged2 = {int(r["num_updates"]): r["loss"] for r in train_log_records(log2)}
    logged1 = {int(r["num_updates"]): r["loss"] for r in train_log_records(log1)}
    assert logged2 == logged1 and len(logged1) == UPDATES + 1


def test_two_ranks_over_gloo_match_one_rank_with_update_freq_2(pretraining_data, tmp_path, one_rank_update_freq_2):
    """Each rank started by hand (tcp init), as on machines without a launcher."""
    port = free_port()
    procs = []
    for rank in (0, 1):
        run_dir = tmp_path / f"rank{rank}"
        run_dir.mkdir()
        overrides = probe_overrides(pretraining_data, tmp_path / "probe", UPDATES + 1, UPDATES) + GLOO
        cmd = hydra_command(
            run_dir,
            overrides
            + [
                f"distributed_training.distributed_rank={rank}",
                f"distributed_training.distributed_init_method=tcp://127.0.0.1:{port}",
            ],
        )
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(), cwd=tmp_path
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank}:\n{out[-4000:]}"
    assert "distributed init (rank 1)" in outs[1]
    # only rank 0 wrote checkpoints
    assert (tmp_path / "rank0" / "checkpoints" / "checkpoint_last.pt").is_file()
    assert not list((tmp_path / "rank1").rglob("*.pt"))
    check_two_ranks_match_one(tmp_path / "probe", outs[0], one_rank_update_freq_2)


def test_two_torchrun_nodes_of_one_process_train_together(pretraining_data, tmp_path, one_rank_update_freq_2):
    """The README's multi-node launch on one machine: two torchrun launchers (--nnodes 2, one process each,
    the same master address and port), each starting fast-hubert-hydra-train, whose ranks come from fairseq's
    own torchrun detection (the plugin's patch gives device 0 without GPUs); gloo on the CPU."""
    port, procs = free_port(), []
    for node in (0, 1):
        (tmp_path / f"node{node}").mkdir()
        overrides = probe_overrides(pretraining_data, tmp_path / "probe", UPDATES + 1, UPDATES) + GLOO
        launcher = [str(Path(sys.executable).parent / "torchrun"), "--nnodes", "2", "--nproc-per-node", "1"]
        launcher += ["--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port", str(port)]
        cmd = hydra_command(tmp_path / f"node{node}", overrides, entry_point="fast-hubert-hydra-train")
        procs.append(
            subprocess.Popen(
                launcher + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(), cwd=tmp_path
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for node, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"node {node}:\n{out[-4000:]}"
        assert f"distributed init (rank {node}): env://" in out  # torchrun's environment, read by fairseq
    # one checkpoint, written by rank 0 on node 0
    assert (tmp_path / "node0" / "checkpoints" / "checkpoint_last.pt").is_file()
    assert not list((tmp_path / "node1").rglob("*.pt"))
    check_two_ranks_match_one(tmp_path / "probe", outs[0], one_rank_update_freq_2)


# ---- 2. torch DDP (c10d, gloo) with find_unused_parameters=False ------------------------------------


def _ddp_steps(rank: int, world: int, extra_param: bool) -> torch.Tensor:
    """3 Adam steps of the tiny ILS model (layerdrop 0) under DDP; the flattened parameters."""
    model = tiny_model(supervised_layers="[2]", encoder_layerdrop=0.0).train()
    if extra_param:
        model.unused = torch.nn.Parameter(torch.zeros(3))
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    crit = FastHubertCriterion(None)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    for step in range(3):
        source, padding, targets = batch([80, 64], seed=10 * step + rank)
        keys = torch.tensor([100 * step + 2 * rank, 100 * step + 2 * rank + 1])
        sample = {
            "id": torch.arange(2),
            "target_list": [targets],
            "net_input": {"source": source, "padding_mask": padding, "rng_keys": keys},
        }
        opt.zero_grad()
        loss, _, _ = crit(ddp, sample)
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _ddp_worker(rank: int, world: int, port: int, result_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    result = {}
    try:
        flat = _ddp_steps(rank, world, extra_param=False)
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        result["same_parameters"] = all(torch.equal(gathered[0], g) for g in gathered)
        try:  # the check can fail: one parameter outside the loss makes DDP raise
            _ddp_steps(rank, world, extra_param=True)
            result["unused_error"] = None
        except RuntimeError as e:
            result["unused_error"] = str(e)
    except Exception as e:  # reported to the test through the result file
        result["error"] = f"{type(e).__name__}: {e}"
    torch.save(result, os.path.join(result_dir, f"rank{rank}.pt"))


def test_ddp_without_find_unused_parameters_trains_ils_model(tmp_path):
    """torch DDP (c10d, gloo, find_unused_parameters=False) over the model with ILS: every parameter
    gets a gradient at every step (DDP raises at the next step otherwise), ranks stay identical."""
    mp.start_processes(_ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="fork")
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert "error" not in result, result["error"]
        assert result["same_parameters"]
        assert result["unused_error"] and "unused" in result["unused_error"], result["unused_error"]


# ---- 3. a run killed with SIGKILL continues as if never stopped ---------------------------------------

MAX_UPDATE, SAVE_EVERY, KILL_AT = 12, 4, 7
RESUMED_FROM = (KILL_AT // SAVE_EVERY) * SAVE_EVERY
# dropout and layerdrop on: their draws must be restored too
RESUME = [f"checkpoint.save_interval_updates={SAVE_EVERY}", "model.dropout=0.1", "model.encoder_layerdrop=0.2"]


def run_to_the_end(cmd, cwd: Path) -> str:
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(), cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def kill_and_resume(cmd, probe: Path, cwd: Path):
    """Run ``cmd``, SIGKILL it (the trainer and its loader workers) when it logs update KILL_AT, run it again
    to MAX_UPDATE: (losses of the killed run, losses of the resumed run, the resumed run's log)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(), cwd=cwd, start_new_session=True
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        records = train_log_records(line)
        if records and int(records[0]["num_updates"]) == KILL_AT:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-50:])
    killed = losses_per_update(probe)
    assert max(killed) >= KILL_AT and max(killed) < MAX_UPDATE
    for f in probe.glob("losses_rank*.jsonl"):
        f.rename(f.with_suffix(".killed"))
    log = run_to_the_end(cmd, cwd)
    assert f"@ {RESUMED_FROM} updates" in log and "Loaded checkpoint" in log
    return killed, losses_per_update(probe), log


def check_resumed_as_uninterrupted(killed, resumed, reference, what: str):
    assert sorted(resumed) == list(range(RESUMED_FROM + 1, MAX_UPDATE + 1))
    diffs = [abs(resumed[u] - reference[u]) for u in resumed]
    print(
        f"{what}: resumed vs uninterrupted, max |loss diff| {max(diffs):.3g} over updates {min(resumed)}-{max(resumed)}"
    )
    assert max(diffs) <= 1e-4, list(zip(resumed, diffs))
    # the killed run itself matched the reference before it died
    assert max(abs(killed[u] - reference[u]) for u in killed) <= 1e-4


@pytest.fixture(scope="module")
def uninterrupted_losses(pretraining_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    run_dir = root / "run"
    run_dir.mkdir()
    cmd = hydra_command(
        run_dir, probe_overrides(pretraining_data, root / "probe", MAX_UPDATE) + ["dataset.num_workers=0"] + RESUME
    )
    log = run_to_the_end(cmd, root)
    return losses_per_update(root / "probe"), log


@pytest.mark.parametrize("num_workers", [0, 2])
def test_run_killed_with_sigkill_resumes_with_identical_losses(
    pretraining_data, tmp_path, uninterrupted_losses, num_workers
):
    reference, reference_log = uninterrupted_losses
    assert sorted(reference) == list(range(1, MAX_UPDATE + 1))
    assert "end of epoch 1" in reference_log  # the run crosses an epoch boundary: new epoch, new crops

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    probe = tmp_path / "probe"
    cmd = hydra_command(
        run_dir, probe_overrides(pretraining_data, probe, MAX_UPDATE) + [f"dataset.num_workers={num_workers}"] + RESUME
    )
    killed, resumed, _ = kill_and_resume(cmd, probe, tmp_path)
    check_resumed_as_uninterrupted(killed, resumed, reference, f"num_workers={num_workers}")


def finetuning_command(run_dir: Path, probe: Path, data: Path, pretrained: Path):
    """The tiny letter-CTC fine-tuning through the probe task: SpecAugment, activation dropout and an
    encoder frozen for the first 6 updates, so the resumed run must restore their state too."""
    probe.mkdir(parents=True, exist_ok=True)
    overrides = [
        f"task.data={data}",
        f"task.label_dir={data}",
        f"model.w2v_path={pretrained}",
        "task._name=fast_hubert_pretraining_rank_probe",
        f"+task.probe_dir={probe}",
        f"optimization.max_update={MAX_UPDATE}",
        "model.freeze_finetune_updates=6",
        "dataset.max_tokens=1500",  # small batches: the 20 utterances make several per epoch
        "common.log_interval=1",
        "dataset.validate_interval=1000",
        f"checkpoint.save_interval_updates={SAVE_EVERY}",
        "checkpoint.save_interval=1000",
    ]
    return hydra_command(run_dir, overrides, kind="finetuning", config="tiny_cpu")


def test_finetuning_killed_with_sigkill_resumes_with_identical_losses(finetuned, pretrained, tmp_path):
    """As pretraining: a fine-tuning run killed after its update-4 checkpoint continues with the losses
    of a run that was never stopped."""
    reference_dir = tmp_path / "uninterrupted"
    (reference_dir / "run").mkdir(parents=True)
    reference_log = run_to_the_end(
        finetuning_command(reference_dir / "run", reference_dir / "probe", finetuned["data"], pretrained), reference_dir
    )
    reference = losses_per_update(reference_dir / "probe")
    assert sorted(reference) == list(range(1, MAX_UPDATE + 1)) and "end of epoch 1" in reference_log
    assert len({round(v, 3) for v in reference.values()}) == MAX_UPDATE  # a loss that moves

    (tmp_path / "run").mkdir()
    cmd = finetuning_command(tmp_path / "run", tmp_path / "probe", finetuned["data"], pretrained)
    killed, resumed, _ = kill_and_resume(cmd, tmp_path / "probe", tmp_path)
    check_resumed_as_uninterrupted(killed, resumed, reference, "fine-tuning")
