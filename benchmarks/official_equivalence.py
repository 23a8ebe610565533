"""Numerical equivalence of fast_hubert with the official Fast-HuBERT code (yanghaha0908/FastHuBERT).

Two processes, because the official code registers fairseq names (``fasthubert``...) that the plugin
registers too: this script (ours, the plugin imported) writes a request, runs itself again with
``--side official`` (the official package imported from ``--official DIR``, the plugin never), and
compares the answer with what our model computes from the same request.

What both sides get (the request):
- the same utterances (``--speech-dir``); the official side computes their fbank with the official
  extraction, ``utils/extract_fbank.py``'s ``extract_fbank_features`` (fairseq's ``_get_torchaudio_fbank``:
  torchaudio's ``compliance.kaldi.fbank`` on the waveform scaled to int16), its ``accum_cmvn_stats`` /
  ``save_cmvn_stats`` over them, and normalises with its dataset's ``get_fbank``. torchaudio's compiled
  extension cannot load beside torch 2.13, so the official side runs torchaudio's pure-Python
  ``compliance/kaldi.py`` (and ``compliance/__init__.py``) from the torchaudio 2.11.0 wheel, which this
  script downloads once with ``pip download torchaudio==2.11.0 --no-deps`` into ``--cache-dir`` and
  checks by SHA-256; nothing else of torchaudio runs (``torchaudio.functional`` and ``sox_effects``,
  which extract_fbank.py imports but does not call for 16 kHz mono audio, and ``pandas``, which it uses
  only to write manifests, are empty stand-in modules);
- the same weights: drawn from ``--seed`` for our model (``seeded_weights``) and renamed to the official
  model's parameter names (``models/official_names.py``: ``to_official_names``);
- the same masks: drawn by our model's ``apply_mask`` from per-utterance keys, then given to both models by
  replacing ``compute_mask_indices`` in the module whose ``apply_mask`` calls it (fairseq's
  ``models/hubert/hubert.py`` for the official ``HubertModel`` subclass, ``data/span_masks.py`` for ours):
  each model's own ``apply_mask`` runs and puts its ``mask_emb`` in, only the span draw is fixed;
- the same input: the official fbank (raw) and the official CMVN statistics, which our model holds as its
  CMVN buffers while the official model gets its dataset's normalised fbank;
- the same targets (random units at 50 Hz) and, for layerdrop, the same numpy seed right before the
  Transformer blocks (fairseq's encoder draws layerdrop from numpy; our draw is pointed at numpy here).

Compared: the Transformer input and every block's output (forward hooks on ``encoder.layers``), the
logits of masked frames of every head, the loss and its sample size, and the gradient of every mapped
parameter, in eval mode and in train mode with dropout and layerdrop 0. Cases where the official code's
defects (FAST_HUBERT.md) change the numbers are measured beside equal inputs where they do not.

``--fixture PATH`` also writes the test's fixture (tests/test_official_equivalence.py): a tiny
official-shaped model on one utterance of tests/data/speech, the official fbank and CMVN, and the official
model's outputs and gradients; the test regenerates the weights from the seed and needs no official code.

    python benchmarks/official_equivalence.py --official OFFICIAL --speech-dir ../shared/speech \\
        --output benchmarks/results/official_equivalence_cpu.md --fixture tests/data/official_equivalence.pt

OFFICIAL holds the official checkout as OFFICIAL/fasthubert_official (e.g. ``git archive`` of its last
commit, d1abaee, extracted there); it is never committed.
"""

import argparse
import contextlib
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf
import torch

from common import (
    OFFICIAL_BASE_MODEL,
    OFFICIAL_PACKAGE,
    REPO,
    SPEECH_DIR,
    DummyTask,
    import_official,
    machine,
    reproduce,
    speech_rows,
    unit_dictionary,
)

TORCHAUDIO = "torchaudio==2.11.0"
# SHA-256 of the two files of the torchaudio 2.11.0 wheel that run (pure Python, the same in every wheel).
TORCHAUDIO_FILES = {
    "torchaudio/compliance/__init__.py": "86134e6d44b473e7d2f9532e74cef3977f82beea6f0839844a58a49ed48c9f98",
    "torchaudio/compliance/kaldi.py": "5cbea1a584ddea748f6f68a621d794e13334e88d9faa1d40986f7af32f196d29",
}
OFFICIAL_COMMIT = "d1abaeecda5df04f790575f92fc689165631e685"
SAMPLE_RATE = 16000
NUM_UNITS = 500

# The official Base YAML's model section, with the official FastHubertConfig defaults it relies on: ILS on
# at predict_layers [3,11] (0-based: blocks 4 and 12).
OFFICIAL_BASE = dict(OFFICIAL_BASE_MODEL, ils=True, predict_layers="[3,11]")
# Dropout and layerdrop off: both models are then deterministic, in train mode too.
NO_DROPOUT = dict(
    encoder_layerdrop=0.0,
    dropout_input=0.0,
    dropout_features=0.0,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
)
# The official code applies no GradMultiply (any feature_grad_mult > 0 acts as 1.0): ours at 1.0 equals
# the official model at its YAML's 0.1.
OURS_GRAD_MULT = 1.0
# The test's tiny official-shaped model (3 blocks of 32, ILS at blocks 2 and 3, 20 units).
TINY = dict(
    encoder_layers=3,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=4,
    conv_channels=16,
    fbank_encoder_dim=16,
    conv_feature_layers="[(16,10,5)]",  # HubertModel sizes its LayerNorm from the CNN it then deletes
    conv_pos=8,
    conv_pos_groups=4,
    final_dim=8,
    predict_layers="[1,2]",
)
TINY_UNITS = 20
FIXTURE_UTTERANCE = "so762/train/0001/000010011.flac"  # 41,280 samples: 256 fbank frames, T % 4 == 0

# Tolerances, relative to the largest magnitude of the reference tensor (max |ours - official| / max
# |official|). The two models run the same fp32 operations on the same values; what differs is the order
# of some sums: (x - mean) / std against (x - mean) * (1 / std), attention with an all-False key padding
# mask (official) against none (ours), and the threads' split of the products. Each such step moves a
# value by a few fp32 roundings (2^-24 = 6e-8 relative); through 12 blocks, the heads and the backward
# pass that stays below 1e-6 of the tensor's scale (the measured values are in the record). 1e-4 leaves
# a hundredfold margin for other CPUs and thread counts and is still ten thousand times smaller than
# any real disagreement (another block, another mask, a missing mask_emb move values by O(1)).
RELATIVE_TOLERANCE = 1e-4
# Gradients: those of the attention query and key projections go through softmax's backward, p * (g - sum
# p g), a difference of nearly equal terms where attention is peaked, so their relative rounding error is
# up to a hundred times the forward's (measured 1.4e-4 to 1.5e-4 in the top blocks of the Base model, 3e-6 in
# the tiny one; every other gradient below 1e-5). A wrong gradient is off by O(1): another block's output,
# another mask, a GradMultiply of 0.1 (a relative difference of 0.9).
GRADIENT_TOLERANCE = 1e-3
KEY_BIAS = "self_attn.k_proj.bias"  # its gradient is zero in exact arithmetic (gradient_differences)


# ----------------------------------------------------------------------------- both sides
@contextlib.contextmanager
def injected_mask(module: ModuleType, mask: torch.Tensor):
    """Inside, ``module.compute_mask_indices`` returns ``mask`` (B, T') (cut to the frames asked for)
    instead of drawing spans; it must be asked exactly once, for the mask's batch size."""
    drawn = module.compute_mask_indices
    calls = []

    def given(shape, *args, **kwargs):
        B, T = shape
        assert B == mask.size(0) and T <= mask.size(1), (shape, tuple(mask.shape))
        calls.append(shape)
        return mask[:, :T].numpy().copy()

    module.compute_mask_indices = given
    try:
        yield
    finally:
        module.compute_mask_indices = drawn
    assert len(calls) == 1, f"compute_mask_indices was asked {len(calls)} times, not once"


@contextlib.contextmanager
def captured_blocks(encoder, store: Dict[str, list]):
    """Records (B, T', C) the Transformer input (after the positional conv and its LayerNorm) and every
    block's output into ``store["layers"]`` (fairseq's layers take and return (T', B, C))."""
    layers = store.setdefault("layers", [])
    handles = [encoder.layers[0].register_forward_pre_hook(lambda m, args: layers.append(args[0].transpose(0, 1)))]
    for layer in encoder.layers:
        handles.append(layer.register_forward_hook(lambda m, args, out: layers.append(out[0].transpose(0, 1))))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def seed_numpy_before_blocks(encoder, seed: Optional[int]):
    """Reseeds numpy right before the Transformer blocks (the encoder's post-LN LayerNorm runs just before
    them in both models): both then draw the same layerdrop decisions. Returns the hook's handle."""
    if seed is None:
        return None
    assert not encoder.layer_norm_first
    return encoder.layer_norm.register_forward_pre_hook(lambda module, args: np.random.seed(seed))


def forward_backward(model, criterion, sample, mask, mask_module, train: bool, seed=None, grads=True) -> dict:
    """One criterion call (forward and loss) with the given mask, then backward: the layers, the logits of
    masked and unmasked frames (what the model computed), the loss, sample size and gradients."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    store = {}
    hook = model.register_forward_hook(lambda m, args, out: store.update(net_output=out))
    seeding = seed_numpy_before_blocks(model.encoder, seed)
    try:
        with captured_blocks(model.encoder, store), injected_mask(mask_module, mask):
            loss, sample_size, _ = criterion(model, sample)
    finally:
        hook.remove()
        if seeding is not None:
            seeding.remove()
    out = {
        "layers": [t.detach().clone() for t in store["layers"]],
        "logits_m": [t.detach().clone() for t in model.get_logits(store["net_output"], True)],
        "logits_u": [t.detach().clone() for t in model.get_logits(store["net_output"], False)],
        "loss": float(loss.detach()),
        "sample_size": int(sample_size),
        "padding_mask": store["net_output"]["padding_mask"]
        if isinstance(store["net_output"], dict)
        else store["net_output"].padding_mask,
    }
    if grads:
        loss.backward()
        out["grads"] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        out["no_grad"] = {n: p.numel() for n, p in model.named_parameters() if p.grad is None}
    return out


# ----------------------------------------------------------------------------- torchaudio's Kaldi fbank
def torchaudio_compliance(cache_dir: Path) -> Path:
    """A folder holding ``torchaudio/compliance/{__init__,kaldi}.py`` of the torchaudio 2.11.0 wheel,
    downloaded once (pip download, no dependencies) and checked by SHA-256."""
    root = Path(cache_dir) / "torchaudio-2.11.0-compliance"
    if all((root / f).is_file() for f in TORCHAUDIO_FILES):
        return root
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", TORCHAUDIO, "--no-deps", "--only-binary", ":all:", "-d", tmp]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        (wheel,) = Path(tmp).glob("torchaudio-*.whl")
        with zipfile.ZipFile(wheel) as z:
            for name, digest in TORCHAUDIO_FILES.items():
                data = z.read(name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise SystemExit(f"{wheel.name}: {name} is not the file this benchmark was checked with")
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
    return root


def stand_in_torchaudio(compliance_root: Path) -> None:
    """A ``torchaudio`` package whose ``compliance`` is the wheel's pure-Python code and nothing else: its
    ``__init__`` (which loads the compiled extension) never runs. Empty ``torchaudio.functional`` and
    ``torchaudio.sox_effects`` (imported by extract_fbank.py / fairseq's ``convert_waveform``, never called
    for 16 kHz mono audio) and ``pandas`` (manifest writing only)."""
    package = ModuleType("torchaudio")
    package.__path__ = [str(compliance_root / "torchaudio")]
    sys.modules["torchaudio"] = package
    for name in ("torchaudio.functional", "torchaudio.sox_effects", "pandas"):
        sys.modules[name] = ModuleType(name)
    package.functional = sys.modules["torchaudio.functional"]


# ----------------------------------------------------------------------------- the official side
def official_module(official_dir: Path, relative: str) -> ModuleType:
    path = Path(official_dir) / OFFICIAL_PACKAGE / relative
    spec = importlib.util.spec_from_file_location(f"{OFFICIAL_PACKAGE}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_features(request: dict, official_dir: Path, work: Path):
    """The official extraction and normalisation of every utterance: ({"fbank": raw (T, 80) per utterance,
    "normalised": as its dataset's ``get_fbank`` returns it, "mean", "std": its CMVN stats of all of
    them}, the dataset object whose ``get_fbank`` / ``collater_audio`` ran)."""
    extract = official_module(official_dir, "utils/extract_fbank.py")
    from fasthubert_official.data.hubert_fbank_dataset import FastHubertDataset

    fbank, paths, mean_sum, square_sum, n_frame = {}, [], None, None, 0
    for i, (name, wave) in enumerate(request["waveforms"].items()):
        path = work / f"{i}.npy"
        feats = extract.extract_fbank_features(wave[None], SAMPLE_RATE, path)  # (1, N) as torchaudio.load
        mean_sum, square_sum, n_frame = extract.accum_cmvn_stats(feats, mean_sum, square_sum, n_frame)
        fbank[name] = torch.from_numpy(feats)
        paths.append(path)
    extract.save_cmvn_stats(mean_sum, square_sum, n_frame, work)
    dataset = FastHubertDataset.__new__(FastHubertDataset)  # only the fields get_fbank and the collater read
    stats = np.load(work / "global_cmvn.npy", allow_pickle=True).tolist()
    dataset.mean, dataset.std, dataset.audio_names = stats["mean"], stats["std"], [str(p) for p in paths]
    normalised = {name: dataset.get_fbank(i) for i, name in enumerate(fbank)}
    features = {"fbank": fbank, "normalised": normalised}
    return dict(features, mean=torch.from_numpy(stats["mean"]), std=torch.from_numpy(stats["std"])), dataset


def official_batch(dataset, normalised: Dict[str, torch.Tensor], case: dict) -> dict:
    """The official collater's batch of the case's crops: zero-padded normalised fbank (B, T, 80) and
    its (B, T, 80) padding mask (``collater_audio`` with pad_audio)."""
    dataset.pad_audio = True
    audios = [normalised[name][:frames] for name, frames in case["inputs"]]
    source, padding_mask, _ = dataset.collater_audio(audios, max(a.size(0) for a in audios))
    net_input = {"source": source, "padding_mask": padding_mask}
    return {"id": torch.arange(len(audios)), "net_input": net_input, "target_list": [case["targets"]]}


def official_model(model_cfg: dict, num_units: int, weights: Dict[str, torch.Tensor]):
    from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig
    from fasthubert_official.model.fasthubert import FastHubertConfig, FastHubertModel

    task_cfg = HubertPretrainingConfig(data="-", sample_rate=100, label_rate=50, labels=["km"])
    model = FastHubertModel(FastHubertConfig(**model_cfg), task_cfg, [unit_dictionary(num_units)])
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert set(missing) == {"label_embs_concat"} and not unexpected, (missing, unexpected)
    return model


def official_side(request_path: Path, answer_path: Path, official_dir: Path, compliance_root: Path) -> None:
    logging.disable(logging.WARNING)
    stand_in_torchaudio(compliance_root)
    import_official(official_dir)
    import fairseq.models.hubert.hubert as hubert_module
    from fasthubert_official.criterion.fasthubert_criterion import FasthubertCriterion

    request = torch.load(request_path, weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        answer, dataset = official_features(request, official_dir, Path(tmp))
    answer["cases"] = {}
    for name, c in request["cases"].items():
        model = official_model(c["model_cfg"], request["num_units"], request["weights"][c["weights"]])
        crit = FasthubertCriterion(DummyTask(), 1.0, 0.0)
        sample = official_batch(dataset, answer["normalised"], c)
        answer["cases"][name] = [
            forward_backward(model, crit, sample, c["mask"], hubert_module, c["train"], seed, grads=c["grads"])
            for seed in c["seeds"]
        ]
        print(f"official side: {name} done", flush=True)
    torch.save(answer, answer_path)


# ----------------------------------------------------------------------------- our side
def seeded_weights(model: torch.nn.Module, seed: int) -> None:
    """Fills every parameter from one generator seeded with ``seed``, in name order, independently of how
    the model initialises itself: Gaussian / sqrt(fan-in) for matrices and kernels, 1 + 0.1 N(0, 1) for
    LayerNorm scales, 0.1 N(0, 1) for biases and the mask embedding. Deterministic on every CPU."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if p.dim() >= 2:
                value = noise / np.sqrt(p[0].numel())
            elif name.endswith("weight"):
                value = 1.0 + 0.1 * noise
            else:
                value = 0.1 * noise
            p.copy_(value.to(p.dtype))


def our_model(model_cfg: dict, num_units: int, seed: int):
    """Our model built from the official config keys (``fasthubert``: models/official_names.py) with the
    seeded weights; ``set_official_cmvn`` gives it the official CMVN statistics."""
    from fast_hubert_plugin.models.official_names import OfficialFastHubertConfig, OfficialFastHubertModel

    cfg = OfficialFastHubertConfig(**dict(model_cfg, feature_grad_mult=OURS_GRAD_MULT))
    model = OfficialFastHubertModel(cfg, [unit_dictionary(num_units)])
    seeded_weights(model, seed)
    return model


def set_official_cmvn(model, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Our buffers from the official statistics: ours normalise as (x - mean) * (1 / std)."""
    model.set_cmvn({"cmvn_mean": mean.float(), "cmvn_inv_std": (1.0 / std.double()).float()})


def our_batch(fbank: Dict[str, torch.Tensor], case: dict) -> dict:
    """The same crops of the official raw fbank, zero-padded, with a (B, T) padding mask (None unpadded)."""
    crops = [fbank[name][:frames] for name, frames in case["inputs"]]
    lengths = torch.tensor([c.size(0) for c in crops])
    source = torch.zeros(len(crops), int(lengths.max()), crops[0].size(1))
    for i, c in enumerate(crops):
        source[i, : c.size(0)] = c
    padding = torch.arange(source.size(1))[None, :] >= lengths[:, None]
    net_input = {"source": source, "padding_mask": padding if padding.any() else None}
    return {"id": torch.arange(len(crops)), "net_input": net_input, "target_list": [case["targets"]]}


def our_side(model, case: dict, fbank: Dict[str, torch.Tensor], grads=None) -> List[dict]:
    """Our model on the case (the official raw fbank, the case's mask, targets, mode and seeds): one
    ``forward_backward`` result per seed."""
    from fast_hubert_plugin.criterions.fast_hubert_criterion import FastHubertCriterion
    from fast_hubert_plugin.data import span_masks
    from fast_hubert_plugin.models import layer_encoder

    crit = FastHubertCriterion(DummyTask(), pred_masked_weight=1.0, pred_nomask_weight=0.0)
    sample = our_batch(fbank, case)
    draw = layer_encoder.layerdrop_draw
    layer_encoder.layerdrop_draw = lambda: float(np.random.random())  # fairseq's encoder draws from numpy
    model.encoder.layerdrop = case["model_cfg"]["encoder_layerdrop"]
    grads = case["grads"] if grads is None else grads
    try:
        return [
            forward_backward(model, crit, sample, case["mask"], span_masks, case["train"], seed, grads=grads)
            for seed in case["seeds"]
        ]
    finally:
        layer_encoder.layerdrop_draw = draw


def mask_from_keys(model, lengths: List[int], keys: List[int]) -> torch.Tensor:
    """(B, T') the span mask our model draws for these utterances (fbank frames) from their keys."""
    from fast_hubert_plugin.models.subsampler import subsampled_lengths
    from fast_hubert_plugin.utils.masks import lengths_to_padding_mask

    out = subsampled_lengths(torch.tensor(lengths), model.subsampler.n_layers)
    padding = lengths_to_padding_mask(out, int(out.max()))
    x = torch.zeros(len(lengths), int(out.max()), model.cfg.encoder_embed_dim)
    _, mask = model.apply_mask(x, padding if padding.any() else None, None, rng_keys=torch.tensor(keys))
    return mask


# ----------------------------------------------------------------------------- cases
def case(model, model_cfg, inputs, label_seed: int, train=False, seeds=(None,), grads=False, labels=None) -> dict:
    """A batch of ``inputs`` [(utterance, fbank frames)] with random 50 Hz units (``labels`` per row,
    default half the frames, rounded up) and the mask our model draws from keys 0..B-1."""
    frames = [n for _, n in inputs]
    n_labels = labels or (max(frames) + 1) // 2
    g = torch.Generator().manual_seed(label_seed)
    nspecial = unit_dictionary(0).nspecial  # <s>, <pad>, </s>, <unk> come first
    num_units = model.label_heads[0].out_features - nspecial
    targets = torch.randint(nspecial, nspecial + num_units, (len(inputs), n_labels), generator=g)
    return {
        "inputs": list(inputs),
        "targets": targets,
        "mask": mask_from_keys(model, frames, list(range(len(inputs)))),
        "model_cfg": dict(model_cfg),
        "train": train,
        "seeds": list(seeds),
        "grads": grads,
        "weights": "ils" if model_cfg["ils"] else "no_ils",
    }


def base_cases(model, utterances: List[str]) -> Dict[str, dict]:
    """The record's cases on the Base model (official Base config, ILS at [3,11], dropout off)."""
    cfg = dict(OFFICIAL_BASE, **NO_DROPOUT)
    a, b = utterances[:2]
    return {
        "eval": case(model, cfg, [(a, 400)], 1, grads=True),
        "train": case(model, cfg, [(a, 400)], 1, train=True, grads=True),
        "no_ils": case(model, dict(cfg, ils=False), [(a, 400)], 1),
        "t_mod_4_2": case(model, cfg, [(a, 402)], 2, labels=202),
        "padded_t_mod_4_0": case(model, cfg, [(a, 400), (b, 300)], 3),
        "padded_t_mod_4_ne_0": case(model, cfg, [(a, 402), (b, 301)], 4, labels=202),
        "layerdrop": case(model, dict(cfg, encoder_layerdrop=0.05), [(a, 400)], 1, train=True, seeds=range(40)),
    }


def tiny_cases(model) -> Dict[str, dict]:
    cfg = dict(OFFICIAL_BASE, **NO_DROPOUT, **TINY)
    return {
        "eval": case(model, cfg, [(FIXTURE_UTTERANCE, 256)], 1),
        "train": case(model, cfg, [(FIXTURE_UTTERANCE, 256)], 1, train=True, grads=True),
    }


def alone(c: dict, row: int, frames: int, model) -> dict:
    """Row ``row`` of a padded case as a batch of its own, with its row of the same mask."""
    from fast_hubert_plugin.models.subsampler import subsampled_lengths

    out = int(subsampled_lengths(torch.tensor([frames]), model.subsampler.n_layers))
    return dict(c, inputs=[c["inputs"][row]], targets=c["targets"][row : row + 1], mask=c["mask"][row : row + 1, :out])


# ----------------------------------------------------------------------------- comparing
def relative(ours: torch.Tensor, official: torch.Tensor) -> float:
    """max |ours - official| / max |official| (0 for two zero tensors)."""
    scale = float(official.abs().max())
    diff = float((ours.double() - official.double()).abs().max())
    return diff / scale if scale > 0 else diff


def gradient_differences(ours: Dict[str, torch.Tensor], official: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Relative difference of each parameter's gradient (both under the official names). The attention key
    biases' gradients are zero in exact arithmetic (a bias added to every key shifts all of a query's
    attention logits alike, which softmax ignores) and hold rounding noise only: they are compared
    relative to the model's largest gradient."""
    assert set(ours) == set(official), set(ours) ^ set(official)
    largest = max(float(g.abs().max()) for g in official.values())
    out = {}
    for name, g in official.items():
        scale = largest if name.endswith(KEY_BIAS) else float(g.abs().max())
        out[name] = float((ours[name].double() - g.double()).abs().max()) / scale
    return out


def compare_run(ours: dict, official: dict, model_cfg) -> Dict[str, tuple]:
    """{group: (worst relative difference, where, how many compared)} for the Transformer input and block
    outputs, the masked logits of every head, the loss and (when both have them) the gradients;
    ``sample_size``: (ours, official)."""
    from fast_hubert_plugin.models.official_names import to_official_names

    out = {"sample_size": (ours["sample_size"], official["sample_size"])}
    # HuBERT's required_seq_len_multiple 2 (official) pads an odd number of frames by one, masked in attention
    frames = ours["layers"][0].size(1)
    layers = [relative(o, f[:, :frames]) for o, f in zip(ours["layers"], official["layers"], strict=True)]
    out["layers"] = (max(layers), f"worst: layer {int(np.argmax(layers))}", len(layers))
    shapes = [tuple(t.shape) for t in official["logits_m"]]
    assert shapes == [tuple(t.shape) for t in ours["logits_m"]], (shapes, [t.shape for t in ours["logits_m"]])
    logits = [relative(o, f) for o, f in zip(ours["logits_m"], official["logits_m"])]
    out["logits_m"] = (max(logits), f"{len(shapes)} heads, (frames, classes) {shapes[0]}", len(logits))
    out["loss"] = (abs(ours["loss"] - official["loss"]) / abs(official["loss"]), f"official {official['loss']:.6g}", 1)
    if "grads" in ours and "grads" in official:
        per = gradient_differences(to_official_names(ours["grads"], model_cfg), official["grads"])
        worst = max(per, key=per.get)
        out["grads"] = (per[worst], f"worst: {worst}", len(per))
    return out


def within(result: Dict[str, tuple]) -> bool:
    """Equal sample sizes, and every group within its tolerance."""
    tolerance = {"grads": GRADIENT_TOLERANCE}
    return result["sample_size"][0] == result["sample_size"][1] and all(
        v[0] <= tolerance.get(k, RELATIVE_TOLERANCE) for k, v in result.items() if k != "sample_size"
    )


# ----------------------------------------------------------------------------- running both sides
def ask_official(args, request: dict, compliance_root: Path) -> dict:
    """Runs this script with ``--side official`` on the request; returns its answer."""
    with tempfile.TemporaryDirectory() as tmp:
        req, ans = Path(tmp) / "request.pt", Path(tmp) / "answer.pt"
        torch.save(request, req)
        cmd = [sys.executable, __file__, "--side", "official", "--request", str(req), "--answer", str(ans)]
        cmd += ["--official", str(args.official), "--compliance", str(compliance_root), "--threads", str(args.threads)]
        subprocess.run(cmd, check=True)
        return torch.load(ans, weights_only=True)


def run_study(args, compliance_root: Path, model_cfgs: Dict[str, dict], num_units: int, waveforms, make_cases):
    """Our models (one per head layout: "ils", "no_ils"), the cases, the official answer and our runs."""
    from fast_hubert_plugin.models.official_names import to_official_names

    models = {key: our_model(cfg, num_units, args.seed) for key, cfg in model_cfgs.items()}
    cases = make_cases(models)
    weights = {key: to_official_names(m.state_dict(), m.cfg) for key, m in models.items()}
    request = {"waveforms": waveforms, "num_units": num_units, "cases": cases, "weights": weights}
    answer = ask_official(args, request, compliance_root)
    for m in models.values():
        set_official_cmvn(m, answer["mean"], answer["std"])
    ours = {}
    for name, c in cases.items():
        ours[name] = our_side(models[c["weights"]], c, answer["fbank"])
        print(f"our side: {name} done", flush=True)
    return models, cases, answer, ours


# ----------------------------------------------------------------------------- where they differ
def valid_rows(run: dict, ours_padding: Optional[torch.Tensor], layer: int = -1) -> List[torch.Tensor]:
    """The block output's frames of each row that our padding mask says are valid (the official encoder's
    extra frame, required_seq_len_multiple's, dropped)."""
    out = run["layers"][layer]
    if ours_padding is None:
        return list(out)
    out = out[:, : ours_padding.size(1)]
    return [out[i][~ours_padding[i]] for i in range(out.size(0))]


def padded_difference(models, cases, answer, ours, fbank, name: str) -> dict:
    """A padded batch: frames the two padding masks disagree on, and how far each model's last block is
    from ours on the utterance alone (valid frames)."""
    c, o, f = cases[name], ours[name][0], answer["cases"][name][0]
    model = models[c["weights"]]
    flags_differ = int((o["padding_mask"] != f["padding_mask"]).sum()) if o["padding_mask"] is not None else None
    rows = []
    for i, (_, frames) in enumerate(c["inputs"]):
        (solo,) = our_side(model, alone(c, i, frames, model), fbank)
        reference = solo["layers"][-1][0]
        rows.append(
            {
                "utterance": f"{frames} fbank frames (T % 4 = {frames % 4})",
                "ours": relative(valid_rows(o, o["padding_mask"])[i], reference),
                "official": relative(valid_rows(f, o["padding_mask"])[i], reference),
            }
        )
    official_valid = (~f["padding_mask"]).sum(dim=1).tolist()
    ours_valid = (~o["padding_mask"]).sum(dim=1).tolist()
    return {"flags_differ": flags_differ, "official_valid": official_valid, "ours_valid": ours_valid, "rows": rows}


def layerdrop_difference(cases, answer, ours, num_layers: int) -> dict:
    """Per seed: which blocks numpy's draws drop, and whether each head's masked logits differ."""
    c = cases["layerdrop"]
    p = c["model_cfg"]["encoder_layerdrop"]
    first_ils = min(int(x) for x in c["model_cfg"]["predict_layers"].strip("[]").split(",")) + 1
    seeds = []
    for seed, o, f in zip(c["seeds"], ours["layerdrop"], answer["cases"]["layerdrop"]):
        np.random.seed(seed)
        dropped = [i + 1 for i, u in enumerate(np.random.random(num_layers)) if u <= p]
        heads = [relative(a, b) for a, b in zip(o["logits_m"], f["logits_m"])]
        seeds.append({"dropped": dropped, "heads": heads, "loss": abs(o["loss"] - f["loss"]) / abs(f["loss"])})
    drifts = [s for s in seeds if any(b <= first_ils for b in s["dropped"])]
    return {"seeds": seeds, "p": p, "first_ils": first_ils, "drifts": drifts}


def unmasked_logits(model, c: dict, fbank) -> List[torch.Tensor]:
    """Our logits of the unmasked frames, computed on request (the criterion asks only with a weight > 0)."""
    from fast_hubert_plugin.data import span_masks

    sample = our_batch(fbank, c)
    model.eval()
    with torch.no_grad(), injected_mask(span_masks, c["mask"]):
        out = model(target_list=sample["target_list"], compute_unmasked=True, **sample["net_input"])
    return model.get_logits(out, False)


def grad_mult_ratios(model, c: dict, fbank, official_grads, mult: float) -> dict:
    """Our subsampler's gradients with ``feature_grad_mult`` = mult, against the official model's at its
    YAML's 0.1 (which it applies as 1.0): the ratio, and the other parameters' largest difference."""
    from fast_hubert_plugin.models.official_names import to_official_names

    model.feature_grad_mult = mult
    try:
        (run,) = our_side(model, c, fbank)
    finally:
        model.feature_grad_mult = OURS_GRAD_MULT
    grads = to_official_names(run["grads"], model.cfg)
    front = [n for n in grads if n.startswith("subsample.")]
    ratio = [float((grads[n].double() / official_grads[n].double())[official_grads[n] != 0].median()) for n in front]
    rest = gradient_differences(
        {n: grads[n] for n in grads if n not in front}, {n: official_grads[n] for n in grads if n not in front}
    )
    return {"ratio": (min(ratio), max(ratio)), "others": max(rest.values())}


# ----------------------------------------------------------------------------- the fbank
def fbank_utterances(speech_dir: Path, manifests: List[str], n: int) -> Dict[str, torch.Tensor]:
    """``n`` utterances spread evenly over the manifests' rows (in each, evenly over its rows)."""
    out = {}
    for manifest in manifests:
        rows = speech_rows(speech_dir, [manifest], 0.0)
        for i in np.linspace(0, len(rows) - 1, num=max(1, n // len(manifests))).round().astype(int):
            out[rows[i]["path"]] = read_wave(speech_dir / rows[i]["path"])
    return out


def read_wave(path: Path) -> torch.Tensor:
    """(N,) float32 in [-1, 1], as torchaudio.load gives 16-bit audio (the integers / 32768)."""
    wave, sr = sf.read(str(path), dtype="float32")
    assert sr == SAMPLE_RATE and wave.ndim == 1, (path, sr, wave.shape)
    return torch.from_numpy(wave)


def our_features(waveforms: Dict[str, torch.Tensor]) -> dict:
    """Our fbank of every utterance and, with our CMVN statistics of all of them, normalised."""
    from fast_hubert_plugin.features.cmvn import CMVNAccumulator
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank

    fbank = {name: compute_fbank(wave.numpy()) for name, wave in waveforms.items()}
    acc = CMVNAccumulator(next(iter(fbank.values())).shape[1])
    for feats in fbank.values():
        acc.add(feats)
    cmvn = acc.finalize()
    return {"fbank": fbank, "normalised": {name: cmvn(f) for name, f in fbank.items()}}


def fbank_differences(ours: dict, official: dict) -> dict:
    """Per bin and overall: max and mean |ours - official|, raw and after each side's CMVN."""
    out = {}
    for kind in ("fbank", "normalised"):
        names = list(official[kind])
        diff = np.concatenate([np.abs(ours[kind][n] - np.asarray(official[kind][n])) for n in names])
        raw = np.concatenate([np.asarray(official["fbank"][n]) for n in names])
        where = np.unravel_index(diff.argmax(), diff.shape)
        out[kind] = {
            "max": diff.max(0),
            "mean": diff.mean(0),
            "overall": (diff.max(), diff.mean(), np.quantile(diff, 0.999)),
            "worst": (int(where[1]), float(raw[where])),  # bin, the official log-Mel value there
            "frames": diff.shape[0],
        }
    return out


# ----------------------------------------------------------------------------- outputs
def fixture(tiny, args) -> dict:
    """The test's fixture: the tiny study's request and the official answer, small."""
    models, cases, answer, _ = tiny
    weights = models["ils"].state_dict()
    keep = ("layers", "logits_m", "loss", "sample_size", "grads")
    return {
        "official_commit": OFFICIAL_COMMIT,
        "torchaudio_files": TORCHAUDIO_FILES,
        "seed": args.seed,
        "num_units": TINY_UNITS,
        "utterance": FIXTURE_UTTERANCE,
        "fbank": answer["fbank"][FIXTURE_UTTERANCE],
        "mean": answer["mean"],
        "std": answer["std"],
        "weight_sums": {n: float(w.double().sum()) for n, w in weights.items() if not n.startswith("cmvn_")},
        "cases": {
            name: dict(c, official={k: v for k, v in answer["cases"][name][0].items() if k in keep})
            for name, c in cases.items()
        },
    }


def fmt(x: float) -> str:
    return f"{x:.1e}"


def fbank_section(diffs: dict, n_utts: int) -> List[str]:
    f, z = diffs["fbank"], diffs["normalised"]
    lines = [
        "## 1. The fbank: the official extraction against ours",
        "",
        f"{n_utts} utterances, {f['frames']:,} frames (spread over the manifests of `--fbank-manifests`). Official: "
        "`extract_fbank_features` of its `utils/extract_fbank.py` (torchaudio 2.11.0's `compliance.kaldi.fbank` "
        "through fairseq's `_get_torchaudio_fbank`, the waveform x 2^15), its `accum_cmvn_stats` / `save_cmvn_stats` "
        "over these utterances and its dataset's `get_fbank` ((x - mean) / std). Ours: `features/kaldi_fbank.py` "
        "(`compute_fbank`) and `features/cmvn.py` (float64 sums, (x - mean) * (1 / std)).",
        "",
        "| | max abs diff | mean abs diff | 99.9 % of values within | worst bin (official value there) |",
        "|---|---:|---:|---:|---|",
    ]
    for title, d in (("raw log-Mel fbank", f), ("after each side's CMVN", z)):
        mx, mean, q = d["overall"]
        lines.append(f"| {title} | {fmt(mx)} | {fmt(mean)} | {fmt(q)} | bin {d['worst'][0]} ({d['worst'][1]:.2f}) |")
    lines += ["", "<details><summary>per bin</summary>", "", "| bin | raw max | raw mean | CMVN max | CMVN mean |"]
    lines += ["|---:|---:|---:|---:|---:|"]
    for b in range(len(f["max"])):
        lines.append(f"| {b} | {fmt(f['max'][b])} | {fmt(f['mean'][b])} | {fmt(z['max'][b])} | {fmt(z['mean'][b])} |")
    return lines + ["", "</details>", ""]


CASE_TITLES = {
    "eval": "eval, 1 x 400 fbank frames (T % 4 = 0), ILS [3,11]",
    "train": "train mode (dropout, layerdrop 0), the same input",
    "no_ils": "eval, `ils: false` (one head, block 12)",
    "t_mod_4_2": "eval, 1 x 402 frames (T % 4 = 2), no padding",
}


TINY_TITLES = {
    "eval": "eval, 1 x 256 fbank frames (T % 4 = 0), ILS [1,2]",
    "train": "train mode (dropout, layerdrop 0), the same input",
}


def equality_rows(results: Dict[str, Dict[str, tuple]], n_params: int, titles: Dict[str, str]) -> List[str]:
    lines = [
        "| case | Transformer input + blocks | masked logits | loss | sample size (ours / official) | gradients | "
        "within tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        grads = (
            f"{fmt(r['grads'][0])} ({r['grads'][2]} tensors, {n_params:,} values; {r['grads'][1]})"
            if "grads" in r
            else "-"
        )
        lines.append(
            f"| {titles[name]} | {fmt(r['layers'][0])} ({r['layers'][2]} tensors, {r['layers'][1]}) | "
            f"{fmt(r['logits_m'][0])} ({r['logits_m'][1]}) | {fmt(r['loss'][0])} ({r['loss'][1]}) | "
            f"{r['sample_size'][0]} / {r['sample_size'][1]} | {grads} | {'yes' if within(r) else '**no**'} |"
        )
    return lines


def unused(no_grad: Dict[str, int]) -> str:
    return ", ".join(f"`{n}` ({v:,} values)" for n, v in no_grad.items()) or "none"


def differences_section(d: dict) -> List[str]:
    pad4, pad, ld = d["padded_t_mod_4_0"], d["padded_t_mod_4_ne_0"], d["layerdrop"]

    def rows(p):
        return "; ".join(f"{r['utterance']}: official {fmt(r['official'])}, ours {fmt(r['ours'])}" for r in p["rows"])

    n_drift = len(ld["drifts"])
    drift_differ = [s for s in ld["drifts"] if s["heads"][0] > RELATIVE_TOLERANCE]
    others = [s for s in ld["seeds"] if s not in ld["drifts"]]
    fallback = [s for s in ld["seeds"] if s["dropped"]]
    last_head = max(s["heads"][-1] for s in ld["seeds"])
    first_other = max((s["heads"][0] for s in others), default=0.0)
    drift_size = max((s["heads"][0] for s in drift_differ), default=0.0)
    loss_size = max((s["loss"] for s in drift_differ), default=0.0)
    u = d["unmasked"]
    g = d["grad_mult"]
    return [
        "## 3. Where they differ: the official code's defects (FAST_HUBERT.md), measured",
        "",
        'Relative differences as above; "alone": our model on the utterance by itself (the same mask row), the '
        "output a padded batch must reproduce.",
        "",
        "| difference | case | measured | why |",
        "|---|---|---|---|",
        f"| padding mask after 4x subsampling when T % 4 != 0 | padded batch, 402 + 301 fbank frames | valid 25 Hz frames "
        f"per row: official {pad['official_valid']}, ours {pad['ours_valid']}; last block on the valid frames vs alone: "
        f"{rows(pad)} | HuBERT's `forward_padding_mask` groups T // T' fbank frames per output frame: 3, not 4, when T % "
        "4 != 0, so padding frames are attended to (ours: lengths through the convs) |",
        f"| padded frames leak into the last valid frame | padded batch, 400 + 300 frames (T % 4 = 0: the masks agree, "
        f"{pad4['flags_differ']} flags differ) | last block on the valid frames vs alone: {rows(pad4)} | the official "
        "`Conv1dSubsampler` gets no lengths: its second conv reads the first conv's outputs past the end, which are not "
        "zero (ours zeroes them, models/subsampler.py) |",
        f'| ILS "block 4" under layerdrop | train, layerdrop 0.05, {len(ld["seeds"])} numpy seeds (both drop the same '
        f"blocks) | {n_drift} seeds drop a block among 1-{ld['first_ils']}: the official block-4 head then reads a later "
        f"block, its logits differ in {len(drift_differ)} of them (up to {fmt(drift_size)}; loss up to {fmt(loss_size)}); "
        f"the other {len(others)} seeds agree ({fmt(first_other)}) | `layer_results[3]` indexes the blocks that ran "
        "(ours: absolute blocks, models/layer_encoder.py) |",
        f'| ILS "block 12" falls back to the last output | the same | {len(fallback)} of {len(ld["seeds"])} seeds drop '
        f"a block, so `layer_results[11]` does not exist; the fallback is the last block's output, which is ours: the "
        f"block-12 logits agree in every seed ({fmt(last_head)}) | harmless: listed because FAST_HUBERT.md names it |",
        f"| logits of unmasked frames computed | eval, 400 frames | the official code computes {u['rows']} rows per "
        f"head ({u['share']:.0%} of its head work) at weight 0; the same as ours computed on request "
        f"({fmt(u['diff'])}); loss and gradients equal (section 2) | `skip_nomask: false` in its YAML and "
        "`pred_nomask_weight: 0` (ours computes them only for a weight > 0) |",
        f"| `feature_grad_mult` | train, 400 frames | the official YAML's 0.1 acts as 1.0: ours at 0.1 gives the "
        f"subsampler {g['ratio'][0]:.4f}-{g['ratio'][1]:.4f} x the official gradients (median ratio per tensor), the "
        f"other parameters agree ({fmt(g['others'])}); equal at 1.0 (section 2) | no `GradMultiply` in the official "
        "forward (any value > 0 is on) |",
        f"| unused parameters | train, 400 frames | without a gradient after the step: official {unused(d['unused'][0])}; "
        f"ours {unused(d['unused'][1])} | HubertModel's cosine-loss label embeddings, kept by the official model; DDP "
        "then needs `find_unused_parameters` |",
        "",
    ]


def base_study(args, compliance: Path) -> dict:
    """The record's study: the fbank over ``--fbank-utterances``, the Base model on two utterances."""
    manifests = args.fbank_manifests.split(",")
    waveforms = fbank_utterances(args.speech_dir, manifests, args.fbank_utterances)
    picked = [r["path"] for r in speech_rows(args.speech_dir, [args.manifest], 4.1)[:2]]
    waveforms.update({p: read_wave(args.speech_dir / p) for p in picked})
    cfg = dict(OFFICIAL_BASE, **NO_DROPOUT)
    cfgs = {"ils": cfg, "no_ils": dict(cfg, ils=False)}
    models, cases, answer, ours = run_study(
        args, compliance, cfgs, NUM_UNITS, waveforms, lambda m: base_cases(m["ils"], picked)
    )
    fbank = answer["fbank"]
    equal = {n: compare_run(ours[n][0], answer["cases"][n][0], models[cases[n]["weights"]].cfg) for n in CASE_TITLES}
    official_modes = compare_run(answer["cases"]["train"][0], answer["cases"]["eval"][0], models["ils"].cfg)
    official_logits_u = answer["cases"]["eval"][0]["logits_u"]
    ours_u = unmasked_logits(models["ils"], cases["eval"], fbank)
    rows_u, rows_m = official_logits_u[0].size(0), answer["cases"]["eval"][0]["logits_m"][0].size(0)
    diffs = {
        "padded_t_mod_4_0": padded_difference(models, cases, answer, ours, fbank, "padded_t_mod_4_0"),
        "padded_t_mod_4_ne_0": padded_difference(models, cases, answer, ours, fbank, "padded_t_mod_4_ne_0"),
        "layerdrop": layerdrop_difference(cases, answer, ours, cfg.get("encoder_layers", 12)),
        "unmasked": {
            "rows": rows_u,
            "share": rows_u / (rows_u + rows_m),
            "diff": max(relative(o, f) for o, f in zip(ours_u, official_logits_u, strict=True)),
        },
        "grad_mult": grad_mult_ratios(models["ils"], cases["train"], fbank, answer["cases"]["train"][0]["grads"], 0.1),
        "unused": (answer["cases"]["train"][0]["no_grad"], ours["train"][0]["no_grad"]),
    }
    n_params = sum(p.numel() for p in models["ils"].parameters())
    fb = fbank_differences(our_features({n: waveforms[n] for n in answer["fbank"]}), answer)
    return {
        "equal": equal,
        "official_modes": official_modes,
        "diffs": diffs,
        "fbank": fb,
        "n_utts": len(waveforms),
        "n_params": n_params,
        "picked": picked,
    }


def tiny_study(args, compliance: Path):
    wave = read_wave(REPO / "tests" / "data" / "speech" / FIXTURE_UTTERANCE)
    cfg = {"ils": dict(OFFICIAL_BASE, **NO_DROPOUT, **TINY)}
    return run_study(args, compliance, cfg, TINY_UNITS, {FIXTURE_UTTERANCE: wave}, lambda m: tiny_cases(m["ils"]))


def record(args, argv, base: dict, tiny, loads, minutes: float) -> List[str]:
    models, cases, answer, ours = tiny
    tiny_equal = {n: compare_run(ours[n][0], answer["cases"][n][0], models["ils"].cfg) for n in cases}
    tiny_params = sum(p.numel() for p in models["ils"].parameters())
    (b1, b5, b15), (a1, a5, a15) = loads
    command = reproduce("official_equivalence.py", argv)
    command = command.replace(str(args.official), "OFFICIAL").replace(str(args.speech_dir), "SPEECH_DIR")
    return [
        "# Numerical equivalence with the official Fast-HuBERT code",
        "",
        f"Reproduce: `{command}` (OFFICIAL: a folder holding the official code, github yanghaha0908/FastHuBERT at "
        f"{OFFICIAL_COMMIT[:7]}, as OFFICIAL/{OFFICIAL_PACKAGE}; see the script's docstring; SPEECH_DIR: the "
        "project's speech folder)",
        "",
        f"- {machine(args.threads)}",
        f"- load average (1/5/15 min) before: {b1:.2f}/{b5:.2f}/{b15:.2f}, after: {a1:.2f}/{a5:.2f}/{a15:.2f}; "
        f"{minutes:.1f} min",
        f"- official code at {OFFICIAL_COMMIT}, run in a second process (fairseq-fixed 0.12.3.1, torch "
        f"{torch.__version__}); its fbank through torchaudio 2.11.0's pure-Python `compliance/kaldi.py` "
        f"(sha256 {TORCHAUDIO_FILES['torchaudio/compliance/kaldi.py'][:12]}...) on the same torch, the compiled "
        "extension never loaded",
        f"- model utterances: {', '.join(f'`{p}`' for p in base['picked'])} (`{args.manifest}`), cut to the frames "
        f"each case names; weights from seed {args.seed}; the mask our model draws from keys 0..B-1, given to both; "
        f"random targets over {NUM_UNITS} units at 50 Hz",
        f"- tolerance: {RELATIVE_TOLERANCE:g} of the largest magnitude of each official tensor, {GRADIENT_TOLERANCE:g} "
        "for gradients (the script's RELATIVE_TOLERANCE and GRADIENT_TOLERANCE say why); the attention key biases' "
        "gradients, zero in exact arithmetic, against the model's largest gradient",
        "",
        *fbank_section(base["fbank"], base["n_utts"]),
        "## 2. The model: the same weights, fbank, masks and targets",
        "",
        f"fast_hubert Base with the official Base config (`fasthubert_base_lirbispeech.yaml`: 12 x 768, 40 ms, ILS "
        f"at predict_layers [3,11], {base['n_params']:,} parameters), dropout and layerdrop 0; our model built "
        "from the same keys (`fasthubert`, models/official_names.py) with `feature_grad_mult` 1.0 (section 3). "
        "Relative differences (max |ours - official| / max |official|):",
        "",
        *equality_rows(base["equal"], base["n_params"], CASE_TITLES),
        "",
        f"The official model in train mode (dropout 0) against itself in eval mode: layers {fmt(base['official_modes']['layers'][0])}, "
        f"gradients {fmt(base['official_modes']['grads'][0])}.",
        "",
        *differences_section(base["diffs"]),
        "## 4. The test's fixture",
        "",
        f"`{args.fixture}`: the tiny official-shaped model (3 x 32, ILS at predict_layers [1,2], {TINY_UNITS} units, "
        f"{tiny_params:,} parameters, weights from seed {args.seed}) on `{FIXTURE_UTTERANCE}` (256 fbank frames): the "
        "official fbank and CMVN of that utterance and the official model's outputs and gradients. "
        "tests/test_official_equivalence.py reproduces them without the official code. Here:",
        "",
        *equality_rows(tiny_equal, tiny_params, TINY_TITLES),
        "",
    ]


def write_outputs(args, lines: List[str], fixture_data: Optional[dict]) -> None:
    from fast_hubert_plugin.utils.atomic import atomic_path, atomic_write_text

    if args.output:
        atomic_write_text(args.output, "\n".join(lines))
        print(f"wrote {args.output}")
    if args.fixture:
        with atomic_path(args.fixture) as tmp:
            torch.save(fixture_data, tmp)
        print(f"wrote {args.fixture} ({args.fixture.stat().st_size / 1024:.0f} KB)")


# ----------------------------------------------------------------------------- command line
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--official", type=Path, required=True, help="a folder holding the official code as fasthubert_official"
    )
    p.add_argument("--speech-dir", type=Path, default=Path(SPEECH_DIR))
    p.add_argument("--manifest", default="librispeech_train_clean_100.tsv", help="utterances of the model cases")
    p.add_argument("--fbank-manifests", default="librispeech_train_clean_100.tsv,so762_train.tsv,so762_dev.tsv")
    p.add_argument("--fbank-utterances", type=int, default=60, help="utterances of the fbank comparison")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("FAST_HUBERT_CACHE", "~/.cache/fast-hubert")))
    p.add_argument("--output", type=Path, default=None, help="write the Markdown record here")
    p.add_argument("--fixture", type=Path, default=None, help="write the test's fixture here")
    internal = p.add_argument_group("internal (the official side)")
    internal.add_argument("--side", choices=["ours", "official"], default="ours")
    internal.add_argument("--request", type=Path)
    internal.add_argument("--answer", type=Path)
    internal.add_argument("--compliance", type=Path)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.side == "official":
        official_side(args.request, args.answer, args.official, args.compliance)
        return
    logging.disable(logging.WARNING)  # fairseq logs every model it builds
    load_before, start = os.getloadavg(), time.time()
    compliance = torchaudio_compliance(args.cache_dir.expanduser())
    tiny = tiny_study(args, compliance)
    base = base_study(args, compliance)
    minutes = (time.time() - start) / 60
    lines = record(args, argv, base, tiny, (load_before, os.getloadavg()), minutes)
    write_outputs(args, lines, fixture(tiny, args) if args.fixture else None)


if __name__ == "__main__":
    main()
