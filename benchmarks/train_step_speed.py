"""Training-step speed: fairseq HuBERT Base vs fast_hubert Base (and + ILS), with the levers that made it.

One training step = forward + loss + backward + gradient clipping (clip_norm 10) + Adam step
(betas 0.9/0.98, eps 1e-6, decoupled weight decay 0.01, as the recipes) + zero_grad, in train
mode with every recipe dropout and layerdrop 0.05. All systems run in ONE process on the SAME
real-speech utterances, cropped to the same length (HuBERT's pad_audio=false collation: no
padding), interleaved A,B,C,A,B,C,... so that background load hits every system alike. Every
system drops the same blocks at a given repeat: fairseq's encoder (stock HuBERT, the official
code) draws layerdrop from numpy's global generator and the plugin's from torch's, so here the
plugin draws from numpy too, and numpy is reseeded right before every system's Transformer layers.
Reported: median and min step time, audio seconds trained per second, ratio vs stock HuBERT, peak
memory of the step.

Systems (rows):
  stock            fairseq HubertModel, hubert_base_librispeech settings, HubertCriterion, fairseq's
                   own adam (its recipe; waveform in, its CNN front-end inside the step)
  fast             fast_hubert Base as the package is: waveform in, the Kaldi fbank computed on the
                   device INSIDE the step, torch_adamw (fused on CUDA), positional conv as one
                   matrix product on CUDA
  fast_ils         fast_hubert Base + ILS (supervised_layers [4] + last)
Levers (first shape only): one lever at a time
  stock +torch_adamw   stock HuBERT with the optimizer fast_hubert uses (isolates the optimizer)
  fast fairseq-adam    fast with fairseq's adam (a Python loop over parameters without apex)
  fast cudnn-posconv   fast with the positional conv through cuDNN's grouped convolution (fairseq's module)
  fast +compile        (--compile) fast with torch.compile(dynamic=True) of each Transformer block
``--official DIR`` times the official Fast-HuBERT code (and its ILS variant) against stock HuBERT instead.
bf16 autocast on CPU (``--dtype bf16``) is a separate run. Under autocast, fairseq's
HubertModel.apply_mask puts an fp32 mask_emb into a bf16 tensor and fails: the stock model (and
the official code, which inherits it) mask a float32 copy here, a copy that costs well under 1 %
of their step; fast_hubert's own masking is dtype-safe.

``--largest SECONDS`` also finds each main system's largest batch of SECONDS-long utterances
within ``--memory-cap-gb`` (default 80, an H100's memory) by doubling and bisection, and times it.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during the step, minus the allocation
before it; on CPU, in the untimed warmup step (in every step with ``--warmup 0``), the process's
peak resident set (VmHWM, reset through /proc/self/clear_refs, free heap given back with
malloc_trim first) minus the resident set just before the step: the memory the step adds on top of
the models and optimizer states that all systems keep resident (it includes the gradients, which
are freed after each step).

    python benchmarks/train_step_speed.py --output benchmarks/results/train_step_cpu.md
    python benchmarks/train_step_speed.py --device cuda --dtype bf16 --shapes 4x9,8x11,16x9 --largest 9
"""

import argparse
import ctypes
import importlib.util
import logging
import math
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import MethodType, ModuleType
from typing import Callable, Dict, List, Optional, Tuple

import fairseq
import numpy as np
import soundfile as sf
import torch
from fairseq.criterions.hubert_criterion import HubertCriterion
from fairseq.data.dictionary import Dictionary
from fairseq.models.hubert.hubert import HubertConfig, HubertModel
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
from omegaconf import OmegaConf

from common import (
    HUBERT_BASE_MODEL,
    OFFICIAL_BASE_MODEL,
    SPEECH_DIR,
    DummyTask,
    Log,
    import_official,
    reproduce,
    speech_rows,
    unit_dictionary,
)

# The plugin is imported only where a fast_hubert system is built: with --official the process must not
# import it (the official code registers the same fairseq names as the plugin's official aliases).

SAMPLE_RATE = 16000
LABEL_RATE = 50
NUM_UNITS = 500
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

STOCK_MODEL = HUBERT_BASE_MODEL  # fairseq's hubert_base_librispeech.yaml (model section)
# config/pretraining/fast_hubert_base_librispeech.yaml (model section)
FAST_MODEL = dict(
    label_rate=LABEL_RATE,
    conv_kernel_sizes="5,5",
    conv_channels=1024,
    fbank_encoder_dim=512,
    mask_prob=0.80,
    mask_length=10,
    encoder_layerdrop=0.05,
    dropout_input=0.1,
    dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.0,
    feature_grad_mult=1.0,
)
# The official code's Base model section (HuBERT's, plus the subsampler), its subsampler sizes written out.
OFFICIAL_MODEL = dict(OFFICIAL_BASE_MODEL, conv_channels=1024, fbank_encoder_dim=512, input_feat_per_channel=80)
# The recipes' optimizer settings (both Base configs); fairseq's adam is decoupled weight decay, as AdamW.
ADAM = dict(adam_betas="(0.9, 0.98)", adam_eps=1e-6, weight_decay=0.01, lr=[5e-4])


def plugin_module(relative: str) -> ModuleType:
    """A module of the plugin loaded from its file without importing the package (whose import registers the
    names the official code registers too): for modules that import nothing of the plugin."""
    package = Path(importlib.util.find_spec("fast_hubert_plugin").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location(Path(relative).stem, package / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- data
@dataclass
class Batch:
    name: str
    seconds: float  # audio seconds in the batch
    wave: torch.Tensor  # (B, N) float32: both models take waveforms (fast_hubert computes its fbank)
    labels: torch.Tensor  # (B, L) int64 dictionary indices at 50 Hz


def read_audio(path: Path) -> np.ndarray:
    wav, sr = sf.read(str(path), dtype="float32")
    assert sr == SAMPLE_RATE and wav.ndim == 1, (path, sr, wav.shape)
    return wav


def make_batch(speech_dir: Path, manifest: str, size: int, seconds: float, seed: int, dictionary: Dictionary) -> Batch:
    """``size`` random crops of ``seconds`` from distinct utterances; when the manifest has fewer long
    enough utterances (the largest-batch search), crops of the same utterances at other offsets."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    rows = speech_rows(speech_dir, [manifest], n / SAMPLE_RATE)
    picked = rng.permutation(np.resize(rng.permutation(len(rows)), size))
    audio = {i: read_audio(speech_dir / rows[i]["path"]) for i in set(picked.tolist())}
    waves = []
    for i in picked:
        w = audio[i]
        start = int(rng.integers(0, len(w) - n + 1))  # random_crop: true
        waves.append(w[start : start + n])
    n_labels = int(math.floor(seconds * LABEL_RATE))
    # Unit ids are random (the loss cost does not depend on their values), mapped like the task does.
    labels = torch.from_numpy(rng.integers(0, NUM_UNITS, size=(size, n_labels))) + dictionary.nspecial
    return Batch(f"{size}x{seconds:g}s", size * n / SAMPLE_RATE, torch.from_numpy(np.stack(waves)), labels.long())


def make_batches(args, dictionary: Dictionary) -> List[Batch]:
    """One batch per ``--shapes`` entry (BATCHxSECONDS), each from its own seed."""
    batches = []
    for i, spec in enumerate(args.shapes.split(",")):
        size, sec = spec.lower().split("x")
        batches.append(
            make_batch(
                Path(args.speech_dir), args.manifest, int(size), float(sec.rstrip("s")), args.seed + i, dictionary
            )
        )
    return batches


# ----------------------------------------------------------------------------- systems
@dataclass
class System:
    name: str
    what: str
    model: torch.nn.Module
    criterion: torch.nn.Module
    make_sample: Callable[[Batch], dict]
    optimizer_name: str = "torch_adamw"
    group: str = "main"
    optimizer: Optional[object] = None
    scaler: Optional[torch.amp.GradScaler] = None  # fp16 only
    layerdrop_seed: int = 0  # numpy's seed right before the Transformer layers
    # (batch, the criterion's sample size) -> the analytic StepFlops of one of the batch's utterances
    analytic: Optional[Callable[[Batch, int], object]] = None
    times: List[float] = field(default_factory=list)
    mems: List[float] = field(default_factory=list)
    flops: Dict[str, Tuple[float, int]] = field(default_factory=dict)  # batch name -> (counted, sample size)


def make_optimizer(name: str, model: torch.nn.Module):
    """fairseq's ``adam`` (its Python loop without apex) or the plugin's ``torch_adamw`` (fused on CUDA)."""
    if name == "adam":
        return FairseqAdam(OmegaConf.structured(FairseqAdamConfig(**ADAM, tpu=False)), model.parameters())
    from fast_hubert_plugin.optim.torch_adamw import TorchAdamW, TorchAdamWConfig

    return TorchAdamW(OmegaConf.structured(TorchAdamWConfig(**ADAM)), model.parameters())


def mask_float32_copy(model: HubertModel) -> None:
    """fairseq's HubertModel.apply_mask fails under autocast (fp32 mask_emb into a bf16 tensor): mask a
    float32 copy and cast back (a no-op without autocast)."""
    inherited = type(model).apply_mask

    def apply_mask(self, x, padding_mask, target_list):
        dtype = x.dtype
        x, mask_indices = inherited(self, x.float(), padding_mask, target_list)
        return x.to(dtype), mask_indices

    model.apply_mask = MethodType(apply_mask, model)


def waveform_sample(b: Batch, **net_input) -> dict:
    return {
        "id": torch.arange(b.wave.size(0)),
        "net_input": {"source": b.wave, **net_input},
        "target_list": [b.labels],
    }


def stock_system(
    dictionary: Dictionary,
    name="stock",
    optimizer="adam",
    group="main",
    what="fairseq `hubert` Base (waveform CNN, cosine logits on masked + unmasked frames), fairseq's adam",
) -> System:
    cfg = HubertConfig(**STOCK_MODEL)
    task_cfg = HubertPretrainingConfig(data="-", sample_rate=SAMPLE_RATE, label_rate=LABEL_RATE, labels=["km"])
    model = HubertModel(cfg, task_cfg, [dictionary])
    mask_float32_copy(model)
    crit = HubertCriterion(DummyTask(), pred_masked_weight=1.0, pred_nomask_weight=0.0, loss_weights=[10.0])

    def sample(b: Batch):
        return waveform_sample(b, padding_mask=torch.zeros(b.wave.shape, dtype=torch.bool))

    def analytic(b: Batch, sample_size: int):
        from fast_hubert_plugin.utils.flops import hubert_step_flops

        return hubert_step_flops(cfg, b.wave.size(1), label_frames=b.labels.size(1))

    return System(name, what, model, crit, sample, optimizer_name=optimizer, group=group, analytic=analytic)


def draw_layerdrop_from_numpy() -> None:
    """The plugin draws layerdrop from torch's generator (models/layer_encoder.py), fairseq's encoder from
    numpy's: the plugin draws from numpy here too (either draw costs next to nothing), so that reseeding
    numpy before the layers gives every system the same draws."""
    from fast_hubert_plugin.models import layer_encoder

    layer_encoder.layerdrop_draw = lambda: float(np.random.random())


def fast_system(
    dictionary: Dictionary,
    name: str,
    what: str,
    ils: bool = False,
    group: str = "lever",
    optimizer: str = "torch_adamw",
    cudnn_posconv: bool = False,
    compile_layers: bool = False,
) -> System:
    from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion
    from fast_hubert_plugin.models.fast_hubert import FastHubertConfig, FastHubertModel

    draw_layerdrop_from_numpy()
    cfg = FastHubertConfig(**FAST_MODEL, supervised_layers="[4]" if ils else "[]")
    model = FastHubertModel(cfg, dictionaries=[dictionary])
    if cudnn_posconv:
        model.encoder.pos_conv_as_matmul = False
    if compile_layers:  # dynamic shapes: crops vary from batch to batch in training
        for layer in model.encoder.layers:
            layer.compile(dynamic=True)
    crit = FastHubertCriterion(DummyTask(), pred_masked_weight=1.0, pred_nomask_weight=0.0)

    def sample(b: Batch):  # waveforms: the fbank is computed inside the step, as in training
        return waveform_sample(b, padding_mask=None, rng_keys=torch.arange(b.wave.size(0), dtype=torch.long))

    def analytic(b: Batch, sample_size: int):
        """sample_size: the criterion's, masked frames x supervised blocks over the batch."""
        from fast_hubert_plugin.features.kaldi_fbank import num_fbank_frames
        from fast_hubert_plugin.utils.flops import fast_hubert_step_flops

        rows = b.wave.size(0) * len(model.supervised_layers)
        return fast_hubert_step_flops(cfg, num_fbank_frames(b.wave.size(1)), len(dictionary), sample_size / rows)

    return System(name, what, model, crit, sample, optimizer_name=optimizer, group=group, analytic=analytic)


def official_system(dictionary: Dictionary, official_dir: Path, name: str, ils: bool) -> System:
    """The official Fast-HuBERT code (yanghaha0908/FastHuBERT, a fairseq user dir, imported as the package
    ``fasthubert_official`` from ``official_dir``) with its Base settings. Its fbank comes precomputed from
    its loader: it is computed here when the batch is made, outside the step (in its favour)."""
    import_official(official_dir)
    from fasthubert_official.criterion.fasthubert_criterion import FasthubertCriterion
    from fasthubert_official.model.fasthubert import FastHubertConfig as OfficialConfig
    from fasthubert_official.model.fasthubert import FastHubertModel as OfficialModel

    cfg = OfficialConfig(**OFFICIAL_MODEL, ils=ils, predict_layers="[3,11]")
    task_cfg = HubertPretrainingConfig(data="-", sample_rate=SAMPLE_RATE, label_rate=LABEL_RATE, labels=["km"])
    model = OfficialModel(cfg, task_cfg, [dictionary])
    mask_float32_copy(model)
    crit = FasthubertCriterion(DummyTask(), 1.0, 0.0)
    fbank = plugin_module("features/kaldi_fbank.py").kaldi_fbank

    def sample(b: Batch):
        with torch.no_grad():
            feats = fbank(b.wave)
        return {
            "id": torch.arange(b.wave.size(0)),
            "net_input": {"source": feats, "padding_mask": torch.zeros(feats.shape[:2], dtype=torch.bool)},
            "target_list": [b.labels],
        }

    what = (
        "official Fast-HuBERT code" + (" + ILS (blocks 4, 12)" if ils else "") + ", fairseq's adam, fbank precomputed"
    )
    return System(name, what, model, crit, sample, optimizer_name="adam", group="main")


def lever_systems(dictionary: Dictionary) -> List[System]:
    """Each puts one lever of fast_hubert's speed on the other system: the optimizer, the positional conv."""
    return [
        stock_system(
            dictionary,
            name="stock +torch_adamw",
            optimizer="torch_adamw",
            group="lever",
            what="stock HuBERT with fast_hubert's optimizer (torch_adamw, fused on CUDA)",
        ),
        fast_system(
            dictionary, "fast fairseq-adam", "fast with fairseq's adam (Python loop over parameters)", optimizer="adam"
        ),
        fast_system(
            dictionary,
            "fast cudnn-posconv",
            "fast with fairseq's pos_conv (cuDNN grouped convolution)",
            cudnn_posconv=True,
        ),
    ]


def build_systems(
    dictionary, with_levers: bool, official_dir: Optional[Path] = None, with_compile: bool = False
) -> List[System]:
    """In the order they are built and timed (model initialisation draws from torch's seeded generator)."""
    if official_dir is not None:
        return [
            stock_system(dictionary),
            official_system(dictionary, official_dir, "official", ils=False),
            official_system(dictionary, official_dir, "official_ils", ils=True),
        ]
    systems = [
        stock_system(dictionary),
        fast_system(
            dictionary, "fast", "fast_hubert Base as the package is (fbank on the device inside the step)", group="main"
        ),
        fast_system(dictionary, "fast_ils", "fast_hubert Base + ILS ([4] + last)", ils=True, group="main"),
    ]
    if with_levers:
        systems += lever_systems(dictionary)
    if with_compile:
        name, what = "fast +compile", "fast with torch.compile(dynamic=True) of each block"
        systems.append(fast_system(dictionary, name, what, compile_layers=True))
    return systems


def seed_layerdrop(s: System) -> None:
    """Reseeds numpy with ``s.layerdrop_seed`` right before the Transformer layers: the encoder's layer norm
    runs just before them (its pre-hook fires on every path, the positional conv's matrix product too)."""
    encoder = s.model.encoder
    assert not encoder.layer_norm_first, "with layer_norm_first the encoder's layer norm runs after the layers"
    encoder.layer_norm.register_forward_pre_hook(lambda module, inputs: np.random.seed(s.layerdrop_seed))


def prepared_systems(args, dictionary: Dictionary, device, dtype) -> List[System]:
    """The systems --only keeps, on the device in train mode, with their optimizers."""
    official = args.official.resolve() if args.official else None
    with_levers = not args.no_levers and official is None
    systems = build_systems(dictionary, with_levers, official_dir=official, with_compile=args.compile)
    if args.only:
        keep = {n.strip() for n in args.only.split(",")} | {"stock"}
        systems = [s for s in systems if s.name in keep]
    for s in systems:
        s.model.to(device).train()
        seed_layerdrop(s)
        s.optimizer = make_optimizer(s.optimizer_name, s.model)
        s.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return systems


# ----------------------------------------------------------------------------- measuring
_libc = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None


def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_ok = False
        if device.type == "cpu" and _libc is not None:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.cpu_ok = _status_kb("VmHWM") is not None
            except OSError:
                pass

    def start(self, trim: bool):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif self.cpu_ok:
            if trim:  # give freed heap back first, so the baseline holds no other step's leftovers
                _libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.base = _status_kb("VmRSS") * 1024

    def stop(self) -> float:
        """Peak bytes added by the step (nan when not measurable)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated() - self.base
        if self.cpu_ok:
            return _status_kb("VmHWM") * 1024 - self.base
        return float("nan")


def train_step(s: System, sample: dict, device, dtype) -> None:
    model, crit = s.model, s.criterion
    amp = dtype in (torch.bfloat16, torch.float16)
    with torch.autocast(device.type, dtype=dtype, enabled=amp):
        loss, sample_size, _ = crit(model, sample)
    loss = loss / sample_size  # fairseq divides gradients by sample_size before clipping
    if s.scaler is not None:
        s.scaler.scale(loss).backward()
        s.scaler.unscale_(s.optimizer.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        s.scaler.step(s.optimizer.optimizer)
        s.scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        s.optimizer.step()
    s.optimizer.zero_grad()


def to_device(x, device):
    if torch.is_tensor(x):
        return x.to(device)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, list):
        return [to_device(v, device) for v in x]
    return x


def timed_step(s: System, sample: dict, device, dtype) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    train_step(s, sample, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_shape(systems: List[System], batch: Batch, repeats: int, warmup: int, device, dtype, log) -> None:
    mem = PeakMemory(device)
    samples = {s.name: to_device(s.make_sample(batch), device) for s in systems}
    for s in systems:
        s.times, s.mems = [], []
    for r in range(-warmup, repeats):
        for s in systems:
            s.layerdrop_seed = 1000 + r
            np.random.seed(2000 + r)
            torch.manual_seed(3000 + r)
            # CPU: memory is taken from the (untimed) warmup step only, because malloc_trim makes the
            # next step fault its pages in again; without it the RSS baseline holds freed heap.
            mem.start(trim=r < 0)
            dt = timed_step(s, samples[s.name], device, dtype)
            peak = mem.stop()
            with_memory = r < 0 or device.type == "cuda" or warmup == 0
            if r >= 0:
                s.times.append(dt)
            if with_memory:
                s.mems.append(peak)
            log(
                f"  {batch.name} {'warmup' if r < 0 else f'repeat {r + 1}/{repeats}'} {s.name:<20} {dt:7.2f} s "
                f"({batch.seconds / dt:6.1f} audio-s/s)"
                + (f" peak +{peak / 2**20:,.0f} MiB" if with_memory else "")
                + f"  load {os.getloadavg()[0]:.2f}"
            )


def time_shapes(systems: List[System], batches: List[Batch], args, device, dtype, log) -> list:
    """(batch, repeats, table) per batch: every system on the first, the main ones on the others (the
    repeats are kept here: --largest times the main systems again)."""
    repeats = [int(r) for r in args.repeats.split(",")]
    results = []
    for i, batch in enumerate(batches):
        subset = systems if i == 0 else [s for s in systems if s.group == "main"]
        n = repeats[min(i, len(repeats) - 1)]
        run_shape(subset, batch, n, args.warmup, device, dtype, log)
        if args.peak_tflops:
            for s in subset:
                count_step_flops(s, batch, device)
        results.append((batch, n, table(subset, batch, None, args.peak_tflops)))
        print("\n".join(results[-1][2]), flush=True)
    return results


def profile(system: System, batch: Batch, device, dtype, rows: int) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    sample = to_device(system.make_sample(batch), device)
    system.layerdrop_seed = 1
    train_step(system, sample, device, dtype)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        train_step(system, sample, device, dtype)
    key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


# ----------------------------------------------------------------------------- FLOPs and synchronisation
def forward_backward(s: System, sample: dict, device, dtype) -> int:
    """The model's forward and backward and the criterion (no clipping or optimizer); the sample size."""
    amp = dtype in (torch.bfloat16, torch.float16)
    with torch.autocast(device.type, dtype=dtype, enabled=amp):
        loss, sample_size, _ = s.criterion(s.model, sample)
    (loss / sample_size).backward()
    return sample_size


def count_step_flops(s: System, batch: Batch, device) -> Tuple[float, int]:
    """(FLOPs, the criterion's sample size) of the step's forward, loss and backward on ``batch``, counted by
    torch (``count_flops``: matrix products) with every block run (layerdrop 0: MFU counts the whole model)
    and without autocast (the count does not depend on the dtype). Counted once per batch."""
    from fast_hubert_plugin.utils.flops import count_flops

    if batch.name not in s.flops:
        sample = to_device(s.make_sample(batch), device)
        encoder, out = s.model.encoder, {}
        layerdrop, encoder.layerdrop = encoder.layerdrop, 0.0
        try:
            total, _ = count_flops(lambda: out.update(size=int(forward_backward(s, sample, device, torch.float32))))
        finally:
            encoder.layerdrop = layerdrop
            s.optimizer.zero_grad()
        s.flops[batch.name] = (total, out["size"])
    return s.flops[batch.name]


def flops_rows(systems: List[System], batches: List[Batch], device) -> List[str]:
    """The FLOPs section: counted and analytic FLOPs of a step, per audio-second, for the main systems; then
    where the analytic FLOPs of the last batch go."""
    main = [s for s in systems if s.group == "main"]
    out = [
        "| batch | system | counted GFLOP per step | analytic GFLOP per step | counted / analytic | "
        "GFLOP per audio-second | vs stock |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for batch in batches:
        per_second = {}
        for s in main:
            counted, sample_size = count_step_flops(s, batch, device)
            analytic = batch.wave.size(0) * s.analytic(batch, sample_size).step if s.analytic else float("nan")
            per_second[s.name] = counted / batch.seconds
            ratio = per_second[s.name] / per_second["stock"]
            out.append(
                f"| {batch.name} | {s.name} | {counted / 1e9:,.1f} | {analytic / 1e9:,.1f} | {counted / analytic:.4f} | "
                f"{per_second[s.name] / 1e9:,.2f} | {ratio:.3f} |"
            )
    return out + [""] + parts_rows([s for s in main if s.analytic], batches[-1], device)


def parts_rows(systems: List[System], batch: Batch, device) -> List[str]:
    """Analytic GFLOP per audio-second of each part of the step, forward and forward + backward."""
    parts = {s.name: s.analytic(batch, count_step_flops(s, batch, device)[1]).parts for s in systems}
    names = list(dict.fromkeys(name for p in parts.values() for name in p))
    seconds = batch.seconds / batch.wave.size(0)  # the analytic counts are per utterance
    out = [
        f"Where they go ({batch.name}, analytic; GFLOP per audio-second, forward / forward + backward):",
        "",
        "| part | " + " | ".join(s.name for s in systems) + " |",
        "|---|" + "---:|" * len(systems),
    ]
    for name in names:
        cells = [
            f"{parts[s.name][name][0] / seconds / 1e9:.3f} / {parts[s.name][name][1] / seconds / 1e9:.3f}"
            if name in parts[s.name]
            else "-"
            for s in systems
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def sync_check(s: System, batch: Batch, device, dtype) -> str:
    """Whether the model's forward and backward and the criterion run without a device-to-host
    synchronisation: on CUDA under ``torch.cuda.set_sync_debug_mode("error")``, where a synchronising call
    raises ('pass', or 'fail:' the call and where it was made). A CPU has no device to synchronise with:
    the same step runs unchecked."""
    sample = to_device(s.make_sample(batch), device)
    forward_backward(s, sample, device, dtype)  # first-call allocations and lazy set-up are not the steady state
    s.optimizer.zero_grad()
    if device.type != "cuda":
        forward_backward(s, sample, device, dtype)
        s.optimizer.zero_grad()
        return "not checked (CPU: no device to synchronise with; the same step ran)"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        forward_backward(s, sample, device, dtype)
        result = "pass"
    except RuntimeError as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if "site-packages/torch" not in f.filename]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in frames[-2:])
        result = f"fail: {str(e).splitlines()[0]} (at {where})"
    finally:
        torch.cuda.set_sync_debug_mode(0)
        s.optimizer.zero_grad()
    return result


def sync_rows(systems: List[System], batch: Batch, device, dtype, log) -> List[str]:
    out = ["| system | forward, criterion and backward without a device-to-host synchronisation |", "|---|---|"]
    for s in [s for s in systems if s.group == "main"]:
        result = sync_check(s, batch, device, dtype)
        log(f"sync check {s.name}: {result}")
        out.append(f"| {s.name} | {result} |")
    return out


# ----------------------------------------------------------------------------- largest batch
def is_oom(error: Exception) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def fits(s: System, batch: Batch, device, dtype) -> bool:
    """One training step of ``batch`` runs within the memory cap (no allocation fails)."""
    sample = to_device(s.make_sample(batch), device)
    try:
        train_step(s, sample, device, dtype)
        return True
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_oom(e):
            raise
        s.optimizer.zero_grad()
        return False
    finally:
        del sample
        if device.type == "cuda":
            torch.cuda.empty_cache()


def largest_batch(s: System, make, device, dtype, log, limit: int = 4096) -> int:
    """The largest number of utterances (of one length) whose step fits: doubling, then bisection to 5 %."""
    lo, hi = 0, 8
    while hi <= limit and fits(s, make(hi), device, dtype):
        lo, hi = hi, hi * 2
        log(f"  largest {s.name}: {lo} fits")
    hi = min(hi, limit + 1)
    while hi - lo > max(1, lo // 20):
        mid = (lo + hi) // 2
        ok = fits(s, make(mid), device, dtype)
        log(f"  largest {s.name}: {mid} {'fits' if ok else 'does not fit'}")
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def keep_main_systems_resident(systems: List[System], device, memory_cap_gb: float) -> None:
    """Only the main systems' weights and optimizer states stay on the device, within the memory cap."""
    for s in systems:
        if s.group != "main":
            s.model, s.optimizer = s.model.cpu(), None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        cap = memory_cap_gb * 2**30 / torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(cap, 1.0), torch.cuda.current_device())


def time_largest(s: System, make, n: int, device, dtype, log) -> Batch:
    """Times ``n`` utterances; the search's allocations can leave memory fragmented, so it steps down 5 %
    until the timed run fits. Returns the batch timed."""
    while True:
        big = make(n)
        try:
            run_shape([s], big, 3, 1, device, dtype, log)
            return big
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e) or n <= 1:
                raise
            s.optimizer.zero_grad()
            torch.cuda.empty_cache() if device.type == "cuda" else None
            log(f"  largest {s.name}: {n} did not fit when timed, trying {int(n * 0.95)}")
            n = int(n * 0.95)


def largest_batches(systems: List[System], args, dictionary: Dictionary, device, dtype, log) -> List[str]:
    """The record's rows: each main system's largest batch of ``--largest``-second utterances, timed."""
    keep_main_systems_resident(systems, device, args.memory_cap_gb)

    def make(k: int) -> Batch:
        return make_batch(Path(args.speech_dir), args.manifest, k, args.largest, args.seed, dictionary)

    rows = []
    for s in [s for s in systems if s.group == "main"]:
        n = largest_batch(s, make, device, dtype, log, args.largest_limit)
        big = time_largest(s, make, n, device, dtype, log)
        med = statistics.median(s.times)
        rows.append(
            f"| {s.name} | {big.wave.size(0)} x {args.largest:g} s = {big.seconds:,.0f} s | {med:.3f} | "
            f"{big.seconds / med:,.0f} | {fmt_mem(s.mems)} |"
        )
    return rows


# ----------------------------------------------------------------------------- report
def machine_lines(device) -> List[str]:
    cpu = plugin_module("utils/machine.py").cpu_model_name()
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}; {platform.system()} {platform.machine()}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, fairseq {fairseq.__version__}, "
        f"numpy {np.__version__}",
    ]
    if device.type == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name(device)}")
    return lines


def fmt_mem(values: List[float]) -> str:
    v = max(values)
    return "n/a" if math.isnan(v) else f"{v / 2**20:,.0f}"


def table(systems: List[System], batch: Batch, group: Optional[str], peak_tflops: Optional[float] = None) -> List[str]:
    """The shape's rows; with ``peak_tflops`` (the chip's measured matrix-product peak) each system's MFU at its
    median, min and max step time (counted FLOPs of the step / step time / peak)."""
    stock = next(s for s in systems if s.name == "stock")
    stock_med, stock_min = statistics.median(stock.times), min(stock.times)
    stock_mem = max(stock.mems)
    mfu_head = " MFU (median, at min-max step) |" if peak_tflops else ""
    out = [
        "| system | what | step median (s) | step min (s) | step max (s) | audio-s/s (median) | vs stock (median) | "
        "vs stock (min) | peak step memory (MiB) | memory vs stock | params (M) |" + mfu_head,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if peak_tflops else ""),
    ]
    for s in systems:
        if group is not None and s.group != group and s.name != "stock":
            continue
        med, mn, mx = statistics.median(s.times), min(s.times), max(s.times)
        params = sum(p.numel() for p in s.model.parameters()) / 1e6
        mem_ratio = max(s.mems) / stock_mem if stock_mem > 0 else float("nan")
        mfu = ""
        if peak_tflops:
            flops = s.flops[batch.name][0] / peak_tflops / 1e12
            mfu = f" {flops / med:.1%} ({flops / mx:.1%}-{flops / mn:.1%}) |"
        out.append(
            f"| {s.name} | {s.what} | {med:.4f} | {mn:.4f} | {mx:.4f} | {batch.seconds / med:,.0f} | "
            f"{stock_med / med:.2f}x | {stock_min / mn:.2f}x | {fmt_mem(s.mems)} | {mem_ratio:.2f} | {params:.1f} |"
            + mfu
        )
    return out


def record_header(args, argv, device, dtype, loads, minutes: float) -> List[str]:
    (before, after) = loads
    return [
        f"# Training-step {'FLOPs' if args.no_timing else 'speed'}: fairseq HuBERT Base vs fast_hubert Base",
        "",
        f"Reproduce: `{reproduce('train_step_speed.py', argv)}`",
        "",
        *machine_lines(device),
        f"- device {device.type}, dtype {args.dtype} ({'autocast' if dtype != torch.float32 else 'no autocast'})",
        f"- load average (1/5/15 min) before: {before[0]:.2f}/{before[1]:.2f}/{before[2]:.2f}, "
        f"after: {after[0]:.2f}/{after[1]:.2f}/{after[2]:.2f}; measured part took {minutes:.1f} min",
        f"- speech: `{args.manifest}`, utterances cropped to the same length (no padding), random unit labels "
        f"(500 units, 50 Hz)",
        "",
    ]


def record_sections(args, device, results, largest_rows: List[str]) -> List[str]:
    out = []
    for batch, n, rows in results:
        out += [
            f"## Batch {batch.name} = {batch.seconds:.1f} s of audio ({n} measured repeats per system, interleaved)",
            "",
            "Both models take the waveform batch: fast_hubert's Kaldi fbank is computed on the device inside "
            "its step, as stock HuBERT's CNN front-end is inside its own.",
            "",
            *rows,
            "",
        ]
    if largest_rows:
        cap = f"{args.memory_cap_gb:g} GiB" if device.type == "cuda" else "the machine's memory"
        out += [
            f"## Largest batch within {cap} ({args.largest:g} s utterances; 3 measured repeats)",
            "",
            "| system | batch | step median (s) | audio-s/s | peak step memory (MiB) |",
            "|---|---|---:|---:|---:|",
            *largest_rows,
            "",
        ]
    return out


def check_sections(args, systems: List[System], batches: List[Batch], device, dtype, log) -> List[str]:
    """The --flops and --sync-check sections."""
    out = []
    if args.flops:
        rows = flops_rows(systems, batches, device)
        print("\n".join(rows), flush=True)
        out += [
            "## FLOPs of a training step (forward + backward; matrix products)",
            "",
            "Counted by torch's `FlopCounterMode` (`count_flops` in `fast_hubert_plugin/utils/flops.py`: attention on "
            "its math path, grouped convolutions' weight gradients counted once) with every block run (layerdrop 0) "
            "and no autocast; analytic: the formula of that module. Per audio-second at these crop lengths: "
            "attention grows with the crop.",
            "",
            *rows,
            "",
        ]
    if args.sync_check:
        out += [
            f"## Device-to-host synchronisation in forward, criterion and backward ({batches[0].name}, {args.dtype})",
            "",
            'On CUDA the step runs under `torch.cuda.set_sync_debug_mode("error")` after one warm-up step: a call '
            "that waits for the device raises.",
            "",
            *sync_rows(systems, batches[0], device, dtype, log),
            "",
        ]
    return out


def record_footer(log_lines: List[str], timed: bool) -> List[str]:
    timing = [
        "Step = forward + loss + backward + clip_grad_norm(10) + optimizer step + zero_grad, train mode, recipe "
        "dropouts and layerdrop 0.05 (same layerdrop draws for every system at a given repeat). "
        "`vs stock (median)` = stock median step time / system median step time; `(min)` the same with minima. "
        "Peak step memory: see the module docstring (CPU: peak RSS increase over the RSS before the step).",
        "",
    ]
    if not log_lines:
        return timing if timed else []
    return (timing if timed else []) + [
        "<details><summary>log</summary>",
        "",
        "```",
        *log_lines,
        "```",
        "",
        "</details>",
        "",
    ]


# ----------------------------------------------------------------------------- command line
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--speech-dir", default=SPEECH_DIR)
    data.add_argument("--manifest", default="librispeech_train_clean_100.tsv")
    data.add_argument(
        "--shapes",
        default=None,
        help="comma-separated BATCHxSECONDS; lever rows run on the first shape only "
        "(default: 4x9 on CPU, where stock HuBERT on 8x15.6 s needs ~25 GB; 4x9,8x15.6 on CUDA)",
    )
    data.add_argument("--seed", type=int, default=0)
    timing = p.add_argument_group("timing")
    timing.add_argument("--repeats", default="3", help="measured repeats per shape (comma-separated, last one reused)")
    timing.add_argument("--warmup", type=int, default=1)
    timing.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    timing.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="autocast dtype (fp16: with GradScaler)")
    timing.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    systems = p.add_argument_group("systems")
    systems.add_argument("--no-levers", action="store_true", help="leave out the lever rows (stock +torch_adamw, ...)")
    systems.add_argument("--compile", action="store_true", help="add the lever row fast +compile")
    systems.add_argument("--only", default=None, help="comma-separated system names to run (stock is always run)")
    systems.add_argument(
        "--official",
        type=Path,
        default=None,
        help="a folder holding the official Fast-HuBERT code as the package fasthubert_official: time it "
        "(and its ILS variant) against stock HuBERT instead of the plugin",
    )
    largest = p.add_argument_group("largest batch")
    largest.add_argument(
        "--largest",
        type=float,
        default=None,
        help="also find and time each main system's largest batch of utterances this many seconds long",
    )
    largest.add_argument(
        "--memory-cap-gb", type=float, default=80.0, help="GPU memory allowed for --largest (CUDA only)"
    )
    largest.add_argument(
        "--largest-limit", type=int, default=4096, help="stop the --largest search at this many utterances"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--profile", default=None, help="print torch.profiler top ops of this system (first shape) and exit"
    )
    out.add_argument("--profile-rows", type=int, default=30)
    out.add_argument("--flops", action="store_true", help="count the main systems' FLOPs per step on every shape")
    out.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the chip's measured matrix-product peak (benchmarks/matmul_peak.py): adds each system's MFU",
    )
    out.add_argument(
        "--sync-check", action="store_true", help="check the main systems' steps for device-to-host synchronisation"
    )
    out.add_argument("--no-timing", action="store_true", help="only the --flops / --sync-check sections")
    out.add_argument("--output", default=None, help="write the Markdown report here")
    args = p.parse_args(argv)
    args.shapes = args.shapes or ("4x9" if args.device == "cpu" else "4x9,8x15.6")
    return args


def write(path: Optional[str], lines: List[str]) -> None:
    if path:
        from fast_hubert_plugin.utils.atomic import atomic_write_text

        atomic_write_text(path, "\n".join(lines))
        print(f"wrote {path}")


def main(argv=None):
    args = parse_args(argv)
    logging.disable(logging.WARNING)  # fairseq logs every model it builds
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.manual_seed(args.seed)
    dictionary = unit_dictionary(NUM_UNITS)
    systems = prepared_systems(args, dictionary, device, dtype)
    batches = make_batches(args, dictionary)
    if args.profile:
        s = next(s for s in systems if s.name == args.profile)
        print(profile(s, batches[0], device, dtype, args.profile_rows))
        return

    log = Log()
    load_before, t_start = os.getloadavg(), time.perf_counter()
    results = [] if args.no_timing else time_shapes(systems, batches, args, device, dtype, log)
    checks = check_sections(args, systems, batches, device, dtype, log)
    largest_rows = largest_batches(systems, args, dictionary, device, dtype, log) if args.largest else []
    minutes = (time.perf_counter() - t_start) / 60
    header = record_header(args, argv, device, dtype, (load_before, os.getloadavg()), minutes)
    sections = record_sections(args, device, results, largest_rows) + checks
    write(args.output, header + sections + record_footer(log.lines, timed=not args.no_timing))


if __name__ == "__main__":
    main()
