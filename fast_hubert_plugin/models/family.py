"""Which model a checkpoint holds: this plugin's fbank ``fast_hubert`` (pretrained, or fine-tuned
inside fairseq's ``hubert_ctc``) or fairseq's stock waveform ``hubert``.

The one place that decides it, for the frame features of the clustering and the probe (built models), the
transformers export (a checkpoint's config, read without building the model) and the task (which
model config says where the model's CMVN comes from).
"""

from collections.abc import Mapping

FAST_HUBERT, HUBERT = "fast_hubert", "hubert"
FAST_HUBERT_NAMES = ("fast_hubert", "fasthubert")  # registered names: ours and the official code's
HUBERT_CTC = "hubert_ctc"


def wrapped_model(model):
    """The pretrained model inside a ``hubert_ctc`` / ``hubert_seq2seq`` model, else None."""
    encoder = getattr(model, "w2v_encoder", None) or getattr(model, "encoder", None)
    return getattr(encoder, "w2v_model", None)


def is_fast_hubert_config(model_cfg) -> bool:
    """A config of our fbank model itself (under any registered name), not of a model around it."""
    name = model_cfg.get("_name") if isinstance(model_cfg, Mapping) else getattr(model_cfg, "_name", None)
    return name in FAST_HUBERT_NAMES


def pretrained_config(model_cfg):
    """The pretrained model's config: ``model_cfg`` itself, or the one a ``hubert_ctc`` config keeps
    in ``w2v_args`` (None when it was saved without it)."""
    if model_cfg.get("_name") != HUBERT_CTC:
        return model_cfg
    w2v_args = model_cfg.get("w2v_args")
    return w2v_args["model"] if w2v_args else None


def model_family(model) -> str:
    """FAST_HUBERT for our model under any registered name, alone or inside ``hubert_ctc``; HUBERT
    for fairseq's stock waveform HuBERT; ValueError for anything else.

    ``model`` is a built model, decided by its class (its config name may be any alias), or a
    checkpoint's model config, decided by its registered name."""
    if isinstance(model, Mapping):  # a dict or an omegaconf DictConfig
        inner = pretrained_config(model)
        name = None if inner is None else inner.get("_name")
        if name in FAST_HUBERT_NAMES:
            return FAST_HUBERT
        if name == HUBERT and inner is model:
            return HUBERT
        raise ValueError(f"unsupported model {model.get('_name')!r}: expected fast_hubert or hubert")

    from fairseq.models.hubert.hubert import HubertModel

    from .fast_hubert import FastHubertModel

    if isinstance(model, FastHubertModel) or isinstance(wrapped_model(model), FastHubertModel):
        return FAST_HUBERT
    if isinstance(model, HubertModel):
        return HUBERT
    name = getattr(getattr(model, "cfg", None), "_name", None)
    raise ValueError(f"unsupported model {type(model).__name__} ({name}): expected fast_hubert or hubert")


def fast_hubert_of(model):
    """The fast_hubert model itself: ``model`` or the one inside a ``hubert_ctc`` model."""
    inner = wrapped_model(model)
    inner = model if inner is None else inner
    try:
        family = model_family(model)
    except ValueError:
        family = None
    if family != FAST_HUBERT:
        raise ValueError(f"{type(inner).__name__} is not a fast_hubert model (no fbank subsampler)")
    return inner
