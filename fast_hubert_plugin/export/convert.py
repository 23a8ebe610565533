"""A fast-hubert checkpoint (fairseq) -> the config and weights of the transformers model.

Reads the checkpoint with fairseq's ``checkpoint_utils`` (no task, no data folder needed) and
maps every tensor by name; a tensor that has no place in the exported model stops the export
unless it is one of the pretraining-only ones listed in ``PRETRAINING_ONLY``.
"""

import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from ..models.cmvn import CMVN_BUFFERS, read_cmvn
from ..models.family import HUBERT, HUBERT_CTC, model_family, pretrained_config
from .hf.configuration_fast_hubert import FastHubertConfig

CTC_PREFIX = "w2v_encoder.w2v_model."
CTC_HEAD = "w2v_encoder.proj."
HF_CONVERTER = (
    "transformers' own converter, src/transformers/models/hubert/convert_hubert_original_pytorch_checkpoint_"
    "to_pytorch.py in the transformers source repository (not in the pip wheel), "
    "--checkpoint_path CKPT --pytorch_dump_folder_path OUT"
)
# pretraining-only tensors: the span-masking embedding and the CE heads over the k-means units
PRETRAINING_ONLY = re.compile(r"^(mask_emb|label_heads\..*)$")

_LAYER_RENAMES = [
    (r"self_attn\.(q|k|v|out)_proj\.", r"attention.\1_proj."),
    (r"self_attn_layer_norm\.", "layer_norm."),
    (r"fc1\.", "feed_forward.intermediate_dense."),
    (r"fc2\.", "feed_forward.output_dense."),
    (r"final_layer_norm\.", "final_layer_norm."),
]
_POS_CONV = {
    "encoder.pos_conv.0.bias": "encoder.pos_conv_embed.conv.bias",
    "encoder.pos_conv.0.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv.0.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    "encoder.pos_conv.0.parametrizations.weight.original0": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv.0.parametrizations.weight.original1": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}


class ExportError(ValueError):
    """What cannot be exported, and what to do instead (one line)."""


@dataclass
class ExportedWeights:
    config: FastHubertConfig
    state_dict: Dict[str, torch.Tensor]
    cmvn_mean: List[float]
    cmvn_inv_std: List[float]
    is_ctc: bool
    model_cfg: dict  # the fairseq config of the fast_hubert model
    checkpoint_cfg: dict  # the whole fairseq config (task, model, optimization)
    num_updates: Optional[int]


def _get(cfg, key, default=None):
    if cfg is None:
        return default
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def load_fairseq_state(path: str) -> dict:
    """The checkpoint as fairseq reads it (config as a plain dict)."""
    from fairseq import checkpoint_utils
    from omegaconf import DictConfig, OmegaConf

    from ..fairseq_patches.checkpoint_safety import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()  # the types fairseq checkpoints hold, on torch >= 2.6
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    cfg = state.get("cfg")
    if cfg is None:
        raise ExportError(
            f"{path}: no 'cfg' in the checkpoint (written by a fairseq older than 0.10); "
            "re-save it with a current fairseq"
        )
    if isinstance(cfg, DictConfig):
        state["cfg"] = OmegaConf.to_container(cfg, resolve=False)
    return state


def rename_encoder_key(key: str) -> Optional[str]:
    """A fast_hubert tensor name -> its name in ``FastHubertModel``; None for the pretraining-only ones."""
    if PRETRAINING_ONLY.match(key) or key in CMVN_BUFFERS:  # CMVN goes to the feature extractor
        return None
    if key in _POS_CONV:
        return _POS_CONV[key]
    if key.startswith(("subsampler.conv_layers.", "layer_norm.", "post_extract_proj.", "encoder.layer_norm.")):
        return key
    m = re.match(r"^encoder\.layers\.(\d+)\.(.*)$", key)
    if m:
        for pattern, repl in _LAYER_RENAMES:
            new, n = re.subn("^" + pattern, repl, m[2])
            if n:
                return f"encoder.layers.{m[1]}.{new}"
    raise ExportError(
        f"tensor {key!r} has no place in the exported model: this checkpoint has a part the "
        "transformers model does not implement"
    )


def build_config(model_cfg: dict, ctc_cfg: Optional[dict], vocab_size: Optional[int]) -> FastHubertConfig:
    """FastHubertConfig from the fast_hubert model config (and the hubert_ctc one for fine-tuned models)."""
    from ..utils.config_values import parse_int_list

    checks = [
        (_get(model_cfg, "layer_norm_first", False), "pre-LN Transformers (layer_norm_first: true)"),
        (int(_get(model_cfg, "pos_conv_depth", 1)) != 1, "a multi-layer positional convolution (pos_conv_depth > 1)"),
        (_get(model_cfg, "layer_type", "transformer") != "transformer", f"layer_type {_get(model_cfg, 'layer_type')}"),
        (
            _get(model_cfg, "activation_fn", "gelu") not in ("gelu", "relu"),
            f"activation_fn {_get(model_cfg, 'activation_fn')}",
        ),
    ]
    for bad, what in checks:
        if bad:
            raise ExportError(f"the export supports Fast-HuBERT's post-LN HuBERT Transformer, not {what}")
    # hubert_ctc overrides these of the pretrained model when it fine-tunes (fairseq's HubertEncoder)
    drop = ctc_cfg if ctc_cfg is not None else model_cfg
    kw = dict(
        hidden_size=int(model_cfg["encoder_embed_dim"]),
        num_hidden_layers=int(model_cfg["encoder_layers"]),
        num_attention_heads=int(model_cfg["encoder_attention_heads"]),
        intermediate_size=int(model_cfg["encoder_ffn_embed_dim"]),
        hidden_act=_get(model_cfg, "activation_fn", "gelu"),
        num_conv_pos_embeddings=int(model_cfg["conv_pos"]),
        num_conv_pos_embedding_groups=int(model_cfg["conv_pos_groups"]),
        layer_norm_eps=1e-5,
        num_mel_bins=int(_get(model_cfg, "input_feat_per_channel", 80)),
        subsampler_channels=int(_get(model_cfg, "conv_channels", 1024)),
        subsampler_dim=int(_get(model_cfg, "fbank_encoder_dim", 512)),
        subsampler_kernel_sizes=parse_int_list(str(_get(model_cfg, "conv_kernel_sizes", "5,5")), "conv_kernel_sizes"),
        input_dropout=float(_get(model_cfg, "dropout_input", 0.0)),
        hidden_dropout=float(_get(drop, "dropout", 0.1)),
        attention_dropout=float(_get(drop, "attention_dropout", 0.1)),
        activation_dropout=float(_get(drop, "activation_dropout", 0.0)),
        layerdrop=float(_get(drop, "layerdrop" if ctc_cfg is not None else "encoder_layerdrop", 0.0)),
        apply_spec_augment=False,
        mask_time_prob=0.0,
    )
    if vocab_size is not None:
        kw.update(
            vocab_size=vocab_size,
            pad_token_id=0,
            bos_token_id=None,
            eos_token_id=2,
            final_dropout=float(_get(ctc_cfg, "final_dropout", 0.0)),
            ctc_loss_reduction="sum",
            ctc_zero_infinity=True,
        )
        kw["architectures"] = ["FastHubertForCTC"]
    else:
        kw["architectures"] = ["FastHubertModel"]
    return FastHubertConfig(**kw)


def convert_checkpoint(path: str) -> ExportedWeights:
    """Read a fast_hubert (pretrained) or hubert_ctc-over-fast_hubert (fine-tuned) checkpoint."""
    state = load_fairseq_state(path)
    cfg = state["cfg"]
    model_cfg = cfg.get("model") or {}
    name = model_cfg.get("_name")
    weights = state["model"]
    ctc_cfg = model_cfg if name == HUBERT_CTC else None
    model_cfg = pretrained_config(model_cfg)
    if model_cfg is None:
        raise ExportError(
            f"{path}: a hubert_ctc checkpoint without its pretrained config (w2v_args: null). "
            "Fix: fine-tune with this plugin, which keeps w2v_args in the checkpoint"
        )
    try:
        family = model_family(model_cfg)
    except ValueError:
        inner = model_cfg.get("_name")
        if ctc_cfg is not None:
            raise ExportError(
                f"{path}: hubert_ctc over model {inner!r}; only fast_hubert models can be exported"
            ) from None
        raise ExportError(
            f"{path}: model {name!r} is neither fast_hubert nor hubert_ctc over fast_hubert; "
            "export a checkpoint written by fast-hubert pretraining or fine-tuning"
        ) from None
    if family == HUBERT and ctc_cfg is not None:
        raise ExportError(
            f"{path}: a fine-tuned stock HuBERT (hubert_ctc over hubert), not Fast-HuBERT: use {HF_CONVERTER}"
        )
    if family == HUBERT:
        raise ExportError(f"{path}: a stock HuBERT checkpoint (waveform CNN), not Fast-HuBERT: use {HF_CONVERTER}")
    prefix = CTC_PREFIX if ctc_cfg is not None else ""

    out: Dict[str, torch.Tensor] = {}
    head = "fast_hubert." if ctc_cfg is not None else ""
    for key, tensor in weights.items():
        if ctc_cfg is not None and key.startswith(CTC_HEAD):
            out["lm_head." + key[len(CTC_HEAD) :]] = tensor.float().clone()
            continue
        if not key.startswith(prefix):
            raise ExportError(f"{path}: tensor {key!r} is not part of the fast_hubert model or its CTC head")
        new = rename_encoder_key(key[len(prefix) :])
        if new is not None:
            out[head + new] = tensor.float().clone()
    vocab_size = None
    if ctc_cfg is not None:
        if "lm_head.weight" not in out:
            raise ExportError(f"{path}: hubert_ctc checkpoint without its CTC projection (w2v_encoder.proj)")
        vocab_size = int(out["lm_head.weight"].shape[0])
    cmvn = read_cmvn(state_dict=weights, prefix=prefix, source=path)
    mean, inv_std = cmvn["cmvn_mean"].tolist(), cmvn["cmvn_inv_std"].tolist()
    num_updates = None
    history = state.get("optimizer_history") or []
    if history:
        num_updates = history[-1].get("num_updates")
    return ExportedWeights(
        build_config(model_cfg, ctc_cfg, vocab_size),
        out,
        mean,
        inv_std,
        ctc_cfg is not None,
        model_cfg,
        cfg,
        num_updates,
    )
