"""The step-speed levers keep fairseq's maths: torch_adamw against fairseq's adam, the positional
convolution as a matrix product against fairseq's pos_conv (outputs and gradients, fp32)."""

import pytest
import torch
from fairseq.models.wav2vec.wav2vec2 import make_conv_pos
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig
from omegaconf import OmegaConf

from fast_hubert_plugin.models.positional_conv import grouped_conv1d_as_matmul, positional_conv
from fast_hubert_plugin.optim.torch_adamw import TorchAdamW, TorchAdamWConfig


def test_torch_adamw_steps_as_fairseq_adam():
    torch.manual_seed(0)
    shapes = [(64, 32), (32,), (7, 5, 3)]
    a = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    start = [p.detach().clone() for p in a]
    settings = dict(adam_betas="(0.9, 0.98)", adam_eps=1e-6, weight_decay=0.01, lr=[5e-4])
    fairseq_adam = FairseqAdam(OmegaConf.structured(FairseqAdamConfig(**settings, tpu=False)), a)
    ours = TorchAdamW(OmegaConf.structured(TorchAdamWConfig(**settings)), b)
    assert ours.optimizer_config == fairseq_adam.optimizer_config
    assert isinstance(ours.optimizer, torch.optim.AdamW) and ours.optimizer.defaults["foreach"]  # CPU
    for step in range(5):
        g = torch.Generator().manual_seed(step)
        for p, q in zip(a, b):
            p.grad = torch.randn(p.shape, generator=g) * 1e-2
            p.grad[..., 0] *= 1e-5  # |g| ~ 1e-7, below adam_eps: where the two eps placements differ
            q.grad = p.grad.clone()
        fairseq_adam.step()
        ours.step()
    for p, q, p0 in zip(a, b, start):
        assert (p - p0).abs().min() > 0  # every element moved, those with gradients far below eps too
        torch.testing.assert_close(q, p, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("groups,kernel,T", [(16, 128, 57), (4, 16, 30), (2, 15, 9)])
def test_grouped_conv_as_matmul_equals_conv1d(groups, kernel, T):
    torch.manual_seed(0)
    C = 8 * groups
    x = torch.randn(3, C, T, dtype=torch.float64)
    w = torch.randn(C, C // groups, kernel, dtype=torch.float64)
    bias = torch.randn(C, dtype=torch.float64)
    ref = torch.nn.functional.conv1d(x, w, bias, padding=kernel // 2, groups=groups)
    torch.testing.assert_close(grouped_conv1d_as_matmul(x, w, bias, kernel // 2, groups), ref)


def test_positional_conv_as_matmul_matches_fairseqs_pos_conv_with_gradients():
    torch.manual_seed(0)
    pos_conv = make_conv_pos(64, 16, 4)  # weight-normed Conv1d, SamePad (even kernel), GELU
    x = torch.randn(2, 64, 37, requires_grad=True)
    ref = pos_conv(x)
    grads_ref = torch.autograd.grad(ref.square().sum(), [x] + list(pos_conv.parameters()))
    out = positional_conv(pos_conv, x, as_matmul=True)
    grads = torch.autograd.grad(out.square().sum(), [x] + list(pos_conv.parameters()))
    assert out.shape == ref.shape == (2, 64, 37)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert len(grads) == 4  # x, bias, weight_g, weight_v
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)
