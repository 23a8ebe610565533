"""FLOPs of one training step (forward + backward) of fast_hubert and of fairseq's HuBERT: counted by
torch, and computed from the architecture; and a chip's measured matrix-product peak, for model FLOPs
utilisation (MFU = FLOPs per audio-second x audio-seconds per second / peak).

Only matrix products count (a multiply-add is 2 FLOPs), as MFU counts them; norms, softmax, GELU, dropout,
masking, HuBERT's cosine logits and the fbank's FFT are elementwise work and count 0. Forward FLOPs of one
utterance, with d the width, f the FFN width, T the Transformer's frames:

    Transformer block          8 T d^2 (q, k, v, out projections) + 4 T^2 d (scores and values) + 4 T d f
                               (T rounded up to ``required_seq_len_multiple``: fairseq pads to it)
    positional convolution     2 T d (d / G) K                       (kernel K, G groups; before the padding)
    Conv1d c_in -> c_out       2 T_out c_in c_out k                  (kernel k)
    Linear d_in -> d_out       2 n d_in d_out                        (n rows)

fast_hubert: fbank mel projection 2 F 257 n_mels (F fbank frames, no gradient); the subsampler's convs
(kernel k, stride 2, padding k // 2: T_out = ceil(T_in / 2); the first 80 -> conv_channels, the others
conv_channels / 2 -> conv_channels, the last to 2 fbank_encoder_dim: GLU halves each); the projection
fbank_encoder_dim -> d on T frames; the positional convolution; the blocks; a Linear d -> C per supervised
block on the M masked frames (C = the dictionary's size). fairseq HuBERT: its CNN (``conv_feature_layers``,
no padding: T_out = (T_in - k) // s + 1) on the N samples; T = min(CNN frames, labels); the projection 512 -> d;
the positional convolution; the blocks; ``final_proj`` d -> final_dim on all T frames.

Backward: each product computes the gradient of its input and of its weight, each as dear as its forward
(2x), except the first convolution, whose input (fbank or waveform) needs none (1x), and the fbank (0x).

Counting: ``count_flops`` runs a step under ``torch.utils.flop_counter.FlopCounterMode`` with attention on
its math path (its matrix products: on the CPU the fused kernel is not counted at all, and a fused
backward counts the recomputed scores), and with the weight gradient of a grouped convolution counted
per group (torch 2.13 counts it ``groups`` times over: pytorch/pytorch#183405).
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

from .config_values import parse_int_list

FFT_BINS = 257  # the fbank's 512-point FFT (features/kaldi_fbank.py)


@dataclass
class StepFlops:
    """FLOPs of one training step: ``parts`` maps each part to (forward, forward + backward)."""

    parts: Dict[str, Tuple[float, float]] = field(default_factory=dict)

    def add(self, name: str, forward: float, backward_factor: float = 2.0) -> None:
        fwd, step = self.parts.get(name, (0.0, 0.0))
        self.parts[name] = (fwd + forward, step + forward * (1.0 + backward_factor))

    @property
    def forward(self) -> float:
        return sum(f for f, _ in self.parts.values())

    @property
    def step(self) -> float:
        return sum(s for _, s in self.parts.values())


def linear_flops(rows: int, d_in: int, d_out: int) -> float:
    return 2.0 * rows * d_in * d_out


def conv1d_flops(out_frames: int, c_in: int, c_out: int, kernel: int, groups: int = 1) -> float:
    return 2.0 * out_frames * (c_in / groups) * c_out * kernel


def add_transformer(flops: StepFlops, cfg, frames: int) -> None:
    """The positional convolution and the blocks of fairseq's wav2vec 2.0 / HuBERT encoder on ``frames``."""
    d, f = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim
    flops.add("positional conv", conv1d_flops(frames, d, d, cfg.conv_pos, cfg.conv_pos_groups))
    multiple = getattr(cfg, "required_seq_len_multiple", 1) or 1
    t = math.ceil(frames / multiple) * multiple
    layers = cfg.encoder_layers
    flops.add("attention projections", layers * 4 * linear_flops(t, d, d))
    flops.add("attention scores and values", layers * 2 * 2.0 * t * t * d)
    flops.add("feed-forward", layers * 2 * linear_flops(t, d, f))


def fast_hubert_step_flops(
    cfg, fbank_frames: int, num_classes: int, masked_frames: Optional[float] = None
) -> StepFlops:
    """One utterance of ``fbank_frames`` frames (fed as a waveform: the fbank is computed in the step), with
    ``masked_frames`` masked model frames (None: the share fairseq's overlapping spans cover on average,
    1 - exp(-mask_prob)); ``cfg`` a FastHubertConfig, ``num_classes`` the dictionary's size."""
    flops = StepFlops()
    flops.add("fbank mel projection", linear_flops(fbank_frames, FFT_BINS, cfg.input_feat_per_channel), 0.0)
    kernels = parse_int_list(str(cfg.conv_kernel_sizes), "conv_kernel_sizes")
    frames, c_in = fbank_frames, cfg.input_feat_per_channel
    for i, k in enumerate(kernels):
        frames = math.ceil(frames / 2)
        c_out = cfg.conv_channels if i < len(kernels) - 1 else 2 * cfg.fbank_encoder_dim
        flops.add("subsampler convs", conv1d_flops(frames, c_in, c_out, k), 1.0 if i == 0 else 2.0)
        c_in = c_out // 2
    flops.add("input projection", linear_flops(frames, cfg.fbank_encoder_dim, cfg.encoder_embed_dim))
    add_transformer(flops, cfg, frames)
    if masked_frames is None:
        masked_frames = frames * (1.0 - math.exp(-cfg.mask_prob))
    heads = len(set(parse_int_list(str(cfg.supervised_layers), "supervised_layers")) | {cfg.encoder_layers})
    flops.add("label heads", heads * linear_flops(masked_frames, cfg.encoder_embed_dim, num_classes))
    return flops


def hubert_step_flops(cfg, num_samples: int, label_frames: Optional[int] = None) -> StepFlops:
    """One utterance of ``num_samples`` samples in fairseq's HuBERT (``cfg`` a HubertConfig) with
    ``label_frames`` labels (the Transformer's frames are trimmed to them)."""
    flops = StepFlops()
    frames, c_in = num_samples, 1
    for i, (c_out, k, s) in enumerate(conv_feature_layers(cfg.conv_feature_layers)):
        frames = (frames - k) // s + 1
        flops.add("waveform CNN", conv1d_flops(frames, c_in, c_out, k), 1.0 if i == 0 else 2.0)
        c_in = c_out
    if label_frames is not None:
        frames = min(frames, label_frames)
    flops.add("input projection", linear_flops(frames, c_in, cfg.encoder_embed_dim))
    add_transformer(flops, cfg, frames)
    final_dim = cfg.final_dim if cfg.final_dim > 0 else cfg.encoder_embed_dim
    flops.add("final_proj", linear_flops(frames, cfg.encoder_embed_dim, final_dim))
    return flops


def conv_feature_layers(text: str) -> Sequence[Tuple[int, int, int]]:
    """HuBERT's ``conv_feature_layers`` ("[(512,10,5)] + [(512,3,2)] * 4 + ...": lists of (dim, kernel,
    stride) joined by + and repeated by *), as fairseq's ``eval`` reads it, without eval."""
    layers = []
    for term in text.split("+"):
        listed, _, times = term.partition("*")
        inner = listed.strip().strip("[]")
        tuples = [tuple(int(v) for v in t.strip(" ()").split(",")) for t in inner.split("),") if t.strip()]
        layers += tuples * (int(times) if times.strip() else 1)
    return layers


# ----------------------------------------------------------------------------- counting
def grouped_conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    bias,
    stride,
    padding,
    dilation,
    transposed,
    output_padding,
    groups,
    output_mask,
    **kwargs,
) -> int:
    """aten.convolution_backward: each gradient asked for (input, weight) as dear as the forward, whose
    weight shape (c_out, c_in / groups, k...) already divides by the groups."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def count_flops(step: Callable[[], object]) -> Tuple[float, Dict[str, float]]:
    """(total FLOPs, FLOPs per module path) of ``step()`` (e.g. forward, loss and backward)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fix = {torch.ops.aten.convolution_backward: grouped_conv_backward_flops}
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False, custom_mapping=fix) as counter:
        step()
    per_module = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return float(counter.get_total_flops()), per_module


def matmul_peak_flops(device: str = "cuda", dtype_name: str = "bf16", n: int = 8192, iters: int = 20) -> Dict:
    """The chip's measured matrix-product rate: ``iters`` (n x n) @ (n x n) products in ``dtype_name``
    after 3 warm-up ones, timed with CUDA events (wall clock on the CPU). {"flops": FLOP/s of the fastest
    of 5 rounds, "rounds": all 5, n, iters, dtype}."""
    import time

    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    rounds = []
    for _ in range(5):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                torch.mm(a, b)
            end.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(end) / 1000
        else:
            t0 = time.perf_counter()
            for _ in range(iters):
                torch.mm(a, b)
            seconds = time.perf_counter() - t0
        rounds.append(2.0 * n**3 * iters / seconds)
    return {"flops": max(rounds), "rounds": rounds, "n": n, "iters": iters, "dtype": dtype_name}


def utilisation(flops_per_audio_second: float, audio_seconds_per_second: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the FLOP/s the training does over the chip's measured peak."""
    return flops_per_audio_second * audio_seconds_per_second / peak_flops
