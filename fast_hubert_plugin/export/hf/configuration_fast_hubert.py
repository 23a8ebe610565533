"""Configuration of an exported Fast-HuBERT model (Hugging Face transformers, ``trust_remote_code``).

The Transformer keys are those of transformers' ``HubertConfig`` (whose encoder layers the model
reuses); the keys below describe the fbank front-end that replaces HuBERT's waveform CNN.
"""

from transformers import HubertConfig


class FastHubertConfig(HubertConfig):
    r"""
    num_mel_bins (`int`, 80): fbank bins per frame (the model input dim).
    subsampler_channels (`int`, 1024): channels of each stride-2 Conv1d (GLU halves them).
    subsampler_dim (`int`, 512): subsampler output dim, before the projection to `hidden_size`.
    subsampler_kernel_sizes (`list[int]`, [5, 5]): one odd kernel per stride-2 conv: one conv gives
        20 ms frames, two 40 ms (Fast-HuBERT), three 80 ms.
    input_dropout (`float`, 0.1): dropout on the projected subsampler output (the Transformer input).

    Everything else is `HubertConfig`'s (`hidden_size`, `num_hidden_layers`, `num_attention_heads`,
    `intermediate_size`, `num_conv_pos_embeddings`, `num_conv_pos_embedding_groups`, dropouts,
    `layerdrop`; for CTC `vocab_size`, `pad_token_id` (the CTC blank), `final_dropout`,
    `ctc_loss_reduction`, `ctc_zero_infinity`). The waveform-CNN keys (`conv_*`, `feat_*`) are unused.
    """

    model_type = "fast_hubert"

    num_mel_bins: int = 80
    subsampler_channels: int = 1024
    subsampler_dim: int = 512
    subsampler_kernel_sizes: list[int] | tuple[int, ...] = (5, 5)
    input_dropout: float | int = 0.1

    @property
    def inputs_to_logits_ratio(self):
        """Waveform samples per output frame: 160 per fbank frame, times 2 per stride-2 conv."""
        return 160 * 2 ** len(self.subsampler_kernel_sizes)
