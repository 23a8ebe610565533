"""Fast-HuBERT as a Hugging Face transformers model (``trust_remote_code``; no fairseq needed).

One batch through ``FastHubertModel`` (shapes for the 40 ms Base model):
  input_features (B, T, 80) CMVN-normalised Kaldi fbank at 100 Hz (``FastHubertFeatureExtractor``),
  attention_mask (B, T) 1 on real frames, 0 on padding
  -> FastHubertSubsampler: 2 x [Conv1d k5 s2 + GLU]; padding zeroed after each conv
                                                          (B, ceil(ceil(T/2)/2), 512) at 25 Hz
  -> LayerNorm(512) -> Linear(512, 768) -> dropout          hidden_states[0]: the Transformer input
  -> positional conv + LayerNorm, then block 1..N           hidden_states[L]: output of block L
     (transformers' HuBERT encoder layers, post-LN)

The layer convention is that of fast-hubert's ``FeatureExtractor`` and ``fast-hubert-dump --layer L``:
``hidden_states`` has N + 1 entries, ``hidden_states[0]`` is the Transformer input (before the
positional convolution), ``hidden_states[L]`` the output of block L; ``last_hidden_state`` is
``hidden_states[N]``. Frames past an utterance's end are padding: use
``model.output_lengths(attention_mask.sum(-1))`` to trim them.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput
from transformers.models.hubert.modeling_hubert import HubertEncoderLayer, HubertPositionalConvEmbedding

from .configuration_fast_hubert import FastHubertConfig


def subsampled_lengths(lengths: torch.Tensor, num_convs: int) -> torch.Tensor:
    """Frames after ``num_convs`` stride-2 convs with padding k // 2 (odd k): ceil(T / 2) each."""
    for _ in range(num_convs):
        lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
    return lengths


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class FastHubertSubsampler(nn.Module):
    """(B, T, num_mel_bins) -> (B, ceil(T / 2^n), subsampler_dim): n x [Conv1d(k, stride 2, padding k // 2) + GLU].

    Frames past each utterance's end are zeroed after every conv, so a padded utterance gives
    exactly the outputs it gives alone.
    """

    def __init__(self, config: FastHubertConfig):
        super().__init__()
        kernels = list(config.subsampler_kernel_sizes)
        n = len(kernels)
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(
                config.num_mel_bins if i == 0 else config.subsampler_channels // 2,
                config.subsampler_channels if i < n - 1 else config.subsampler_dim * 2,
                k,
                stride=2,
                padding=k // 2,
            )
            for i, k in enumerate(kernels)
        )

    def forward(
        self, features: torch.Tensor, lengths: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        x = features.transpose(1, 2)  # B x C x T
        for conv in self.conv_layers:
            x = F.glu(conv(x), dim=1)
            if lengths is not None:
                lengths = subsampled_lengths(lengths, 1)
                x = x.masked_fill(padding_mask(lengths, x.size(2))[:, None, :], 0.0)
        return x.transpose(1, 2), lengths


class FastHubertEncoder(nn.Module):
    """Positional convolution, LayerNorm and the post-LN Transformer blocks of HuBERT Base."""

    def __init__(self, config: FastHubertConfig):
        super().__init__()
        self.config = config
        self.pos_conv_embed = HubertPositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(HubertEncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], output_hidden_states: bool = False):
        """x: (B, T', C) Transformer input; mask: (B, T') bool, True on real frames, or None.

        Returns the last block's output and, if asked, (x, block 1, ..., block N) outputs."""
        hidden = [x] if output_hidden_states else None
        attention_mask = None
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0.0)
            attention_mask = create_bidirectional_mask(config=self.config, inputs_embeds=x, attention_mask=mask)
        x = x + self.pos_conv_embed(x)
        x = self.layer_norm(x)
        x = self.dropout(x)
        for layer in self.layers:
            if self.training and self.config.layerdrop > 0 and torch.rand([]) < self.config.layerdrop:
                pass  # a dropped block passes its input through
            else:
                x = layer(x, attention_mask=attention_mask)
            if output_hidden_states:
                hidden.append(x)
        return x, None if hidden is None else tuple(hidden)


class FastHubertPreTrainedModel(PreTrainedModel):
    config_class = FastHubertConfig
    config: FastHubertConfig
    base_model_prefix = "fast_hubert"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ["HubertEncoderLayer", "ParametrizedConv1d"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d) and not hasattr(module, "parametrizations"):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Output frames of utterances of ``input_lengths`` fbank frames: ceil(T / 2^n)."""
        return subsampled_lengths(input_lengths, len(self.config.subsampler_kernel_sizes))

    # the name transformers' Trainer / CTC code looks for
    _get_feat_extract_output_lengths = output_lengths


@dataclass
class FastHubertOutput(BaseModelOutput):
    """``BaseModelOutput`` plus ``output_mask`` (B, T') bool, True on real frames (None: no padding)."""

    output_mask: Optional[torch.Tensor] = None


class FastHubertModel(FastHubertPreTrainedModel):
    def __init__(self, config: FastHubertConfig):
        super().__init__(config)
        self.subsampler = FastHubertSubsampler(config)
        self.layer_norm = nn.LayerNorm(config.subsampler_dim, eps=config.layer_norm_eps)
        self.post_extract_proj = (
            nn.Linear(config.subsampler_dim, config.hidden_size)
            if config.subsampler_dim != config.hidden_size
            else None
        )
        self.dropout_input = nn.Dropout(config.input_dropout)
        self.encoder = FastHubertEncoder(config)
        self.post_init()

    def freeze_subsampler(self) -> None:
        """No gradients into the fbank front-end (fairseq's ``feature_grad_mult=0``)."""
        for p in self.subsampler.parameters():
            p.requires_grad = False

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        """input_features: (B, T, num_mel_bins) normalised fbank; attention_mask: (B, T), 1 on real frames."""
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        lengths = None
        x = input_features
        if attention_mask is not None:
            valid = attention_mask.bool()
            if not bool(valid.all()):
                lengths = valid.sum(dim=1)
                x = x.masked_fill(~valid[..., None], 0.0)
        x, out_lengths = self.subsampler(x, lengths)
        out_mask = None if out_lengths is None else ~padding_mask(out_lengths, x.size(1))
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.dropout_input(x)
        last, hidden_states = self.encoder(x, out_mask, output_hidden_states=bool(output_hidden_states))
        if not return_dict:
            return tuple(v for v in (last, hidden_states) if v is not None)
        return FastHubertOutput(last_hidden_state=last, hidden_states=hidden_states, output_mask=out_mask)


class FastHubertForCTC(FastHubertPreTrainedModel):
    """``FastHubertModel`` + dropout + a linear CTC head over the letter vocabulary (blank: ``pad_token_id``)."""

    def __init__(self, config: FastHubertConfig):
        super().__init__(config)
        self.fast_hubert = FastHubertModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        if config.vocab_size is None:
            raise ValueError("FastHubertForCTC needs config.vocab_size (the size of the letter vocabulary)")
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def freeze_subsampler(self) -> None:
        self.fast_hubert.freeze_subsampler()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ):
        """labels: (B, L) letter ids, -100 on padding; the loss is CTC with blank ``config.pad_token_id``."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        out = self.fast_hubert(
            input_features, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
        )
        logits = self.lm_head(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            if labels.max() >= self.config.vocab_size:
                raise ValueError(f"label ids must be < vocab_size {self.config.vocab_size}")
            if attention_mask is None:
                in_lengths = torch.full((logits.size(0),), input_features.size(1), device=logits.device)
            else:
                in_lengths = attention_mask.sum(-1)
            logit_lengths = self.output_lengths(in_lengths).long()
            keep = labels >= 0
            target_lengths = keep.sum(-1)
            targets = labels.masked_select(keep)
            log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
            with torch.backends.cudnn.flags(enabled=False):
                loss = F.ctc_loss(
                    log_probs,
                    targets,
                    logit_lengths,
                    target_lengths,
                    blank=self.config.pad_token_id,
                    reduction=self.config.ctc_loss_reduction,
                    zero_infinity=self.config.ctc_zero_infinity,
                )
        if not return_dict:
            output = (logits,) + ((out.hidden_states,) if out.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return CausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)
