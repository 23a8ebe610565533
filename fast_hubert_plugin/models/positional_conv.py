"""The Transformer's convolutional positional embedding as one batched matrix product per step.

fairseq's ``pos_conv`` is a Conv1d of 768 channels in 16 groups with kernel 128 (weight-normed),
then SamePad and GELU. cuDNN runs that grouped convolution group by group with generic kernels:
on an H200 it took two thirds of fast_hubert Base's CUDA time (48 launches per step). Written as
a product of the unfolded input windows (B*T', 48*128) with each group's weights, the same
arithmetic is one ``bmm`` over the 16 groups, forwards and backwards, on the matrix units. It
holds B*T'*768*128 input windows (~0.4 GB in bf16 for 8 x 11 s), so the plain convolution stays
the path on CPUs, where it is as fast. The parameters are fairseq's own, so checkpoints are unchanged.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.weight_norm import WeightNorm


def conv_weight(conv: nn.Conv1d) -> torch.Tensor:
    """The conv's current weight: recomputed from weight_g / weight_v under torch's (old) weight norm,
    which would otherwise set it only inside ``conv.__call__``."""
    for hook in conv._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            return hook.compute_weight(conv)
    return conv.weight


def grouped_conv1d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias, padding: int, groups: int) -> torch.Tensor:
    """F.conv1d(x, weight, bias, padding=padding, groups=groups) for x (B, C, T), weight (C_out, C/groups, K),
    as one batched matrix product: (groups, B*T_out, C/groups*K) @ (groups, C/groups*K, C_out/groups)."""
    B, C, T = x.shape
    c_out, c_in, K = weight.shape
    windows = F.pad(x, (padding, padding)).unfold(2, K, 1)  # B x C x T_out x K (a view)
    t_out = windows.size(2)
    windows = windows.reshape(B, groups, c_in, t_out, K).permute(1, 0, 3, 2, 4).reshape(groups, B * t_out, c_in * K)
    w = weight.reshape(groups, c_out // groups, c_in * K).transpose(1, 2)
    out = torch.bmm(windows, w.to(windows.dtype))  # groups x B*T_out x C_out/groups
    out = out.reshape(groups, B, t_out, c_out // groups).permute(1, 0, 3, 2).reshape(B, c_out, t_out)
    return out if bias is None else out + bias.to(out.dtype)[None, :, None]


def positional_conv(pos_conv: nn.Sequential, x: torch.Tensor, as_matmul: bool) -> torch.Tensor:
    """fairseq's ``pos_conv`` (Conv1d, SamePad, GELU) applied to x (B, C, T) -> (B, C, T)."""
    if not as_matmul:
        return pos_conv(x)
    conv, *rest = pos_conv
    if not isinstance(conv, nn.Conv1d):  # the batch-norm variant (conv_pos_batch_norm) keeps fairseq's path
        return pos_conv(x)
    weight = conv_weight(conv)
    if torch.is_autocast_enabled(x.device.type):  # the dtype autocast gives a convolution
        x = x.to(torch.get_autocast_dtype(x.device.type))
    y = grouped_conv1d_as_matmul(x, weight, conv.bias, conv.padding[0], conv.groups)
    for module in rest:
        y = module(y)
    return y
