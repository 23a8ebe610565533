"""Fast-HuBERT: fbank input, conv subsampler to 40 ms, HuBERT Transformer, linear CE heads.

One utterance through the model (shapes for the default 40 ms Base; data/fbank_dataset.py tells
how the dataset turned a manifest line into the batch this starts from):

1. Input. ``net_input["source"]``: (B, N) 16 kHz waveforms cut on the 10 ms fbank grid (the training
   batches: int16 PCM, which fairseq's fp16/bf16 batch cast leaves exact; float in [-1, 1] works too),
   or (B, T, 80) fbank from a precomputed store; ``padding_mask`` (B, N) / (B, T), True on
   padding, or None; ``rng_keys`` (B,) one int64 key per utterance; the loader's span mask
   ``time_mask`` (B, T'') with the flat indices ``masked_frames`` / ``unmasked_frames`` of the frames
   the loss scores. ``target_list``: one (B, L) tensor of unit ids per label set, at ``label_rate``
   (50 Hz k-means labels: L = T / 2).
2. Front-end (ours). Kaldi log-Mel fbank (B, T, 80) at 100 Hz, computed on the model's device
   (features/kaldi_fbank.py); global CMVN from the buffers ``cmvn_mean`` / ``cmvn_inv_std``
   (models/cmvn.py); ``FbankSubsampler`` (fairseq's speech_to_text ``Conv1dSubsampler``: 2 x
   [Conv1d k5 s2 + GLU], padding-exact) -> (B, T', 512), T' = ceil(ceil(T / 2) / 2) frames at 25 Hz.
   The padding mask follows the lengths (None when nothing is padded).
3. Targets. Every ``label_stride``-th label (50 Hz labels, 25 Hz frames: every 2nd), both trimmed to
   the shorter of frames and labels.
4. LayerNorm(512) -> Linear(512, 768) -> dropout: the Transformer input (layer 0 of the
   layer-feature convention; ``features``).
5. Masking (``apply_mask``): masked frames take ``mask_emb``. The mask is fairseq's
   ``compute_mask_indices`` (data/span_masks.py): each row gets ``int(mask_prob * T' / mask_length + u)``
   (u uniform in [0, 1), at least 2) span starts, each masking ``mask_length`` frames (spans may
   overlap), drawn from the row's ``rng_keys`` key; rows are then thinned at random to the same number
   of masked frames. Training batches bring it, drawn in the loader workers; other batches are masked
   here, on the host, by the same function from the same keys. Channel masking (``mask_channel_prob``,
   fine-tuning) zeroes spans of channels.
6. Transformer: fairseq's wav2vec 2.0 ``TransformerEncoder`` (``LayerOutputEncoder`` only records
   chosen block outputs): padded frames zeroed, a grouped Conv1d positional embedding (kernel
   ``conv_pos``, weight-normed, GELU) added, LayerNorm (post-LN layout), dropout, then 12 blocks of
   self-attention + feed-forward (768 -> 3072 -> 768), each followed by its LayerNorm; layerdrop
   skips whole blocks in training.
7. Heads: for each label set and each supervised block (the last, plus ``supervised_layers`` for
   ILS), a Linear(768, #units) on the frames the loss uses (masked, and unmasked when asked), picked by
   the index tensors ``masked_frames`` / ``unmasked_frames`` (their length is known on the host, so
   nothing waits for the device, unlike ``hidden[mask]``), divided by ``logit_temp``. The criterion
   (criterions/fast_hubert_criterion.py) sums their cross-entropy against the targets of those frames.
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from fairseq.data.data_utils import compute_mask_indices
from fairseq.data.dictionary import Dictionary
from fairseq.models import BaseFairseqModel, register_model
from fairseq.models.hubert.hubert import HubertConfig
from fairseq.modules import GradMultiply, LayerNorm

from ..data.span_masks import MIN_MASKS, SpanMasking, scored_frames
from ..features.kaldi_fbank import FBANK_FRAME_RATE, kaldi_fbank, num_fbank_frames
from ..features.spec_augment import spec_augment
from ..utils.config_values import parse_int_list
from ..utils.masks import lengths_to_padding_mask
from .cmvn import CMVN_BUFFERS, read_cmvn
from .layer_encoder import LayerOutputEncoder
from .subsampler import FbankSubsampler

logger = logging.getLogger(__name__)

# Keys of the cosine-similarity loss of stock HuBERT that a linear CE head has no use for.
_COSINE_LOSS_KEYS = {"final_dim": 0, "untie_final_proj": False, "target_glu": False}


class HeadPredictions(NamedTuple):
    """What one head predicts for the frames it is scored on."""

    logits: torch.Tensor  # (frames, units), already divided by logit_temp
    targets: torch.Tensor  # (frames,) int64 unit ids of the same frames


@dataclass
class HeadOutput:
    """One linear head: units of label set ``label_set`` predicted from Transformer block ``layer``."""

    label_set: int  # index into target_list
    layer: int  # 1-based Transformer block the head reads
    masked: Optional[HeadPredictions]  # masked frames; None when not computed (compute_masked off, skip_masked)
    unmasked: Optional[HeadPredictions]  # unmasked frames; None unless compute_unmasked (and not skip_nomask)


@dataclass
class FastHubertOutput:
    """The pretraining forward's result, which the criterion scores (criterions/fast_hubert_criterion.py)."""

    heads: List[HeadOutput]  # label set major, then supervised blocks in ascending order
    mask_indices: torch.Tensor  # (B, T') bool, True on masked frames (all False without masking)
    padding_mask: Optional[torch.Tensor]  # (B, T') bool, True on padding; None when nothing is padded
    num_label_sets: int

    def predictions(self, masked: bool = True) -> List[HeadPredictions]:
        """The computed predictions of every head, on masked or unmasked frames, in ``heads`` order."""
        found = (h.masked if masked else h.unmasked for h in self.heads)
        return [p for p in found if p is not None]


@dataclass
class FastHubertConfig(HubertConfig):
    input_feat_per_channel: int = field(default=80, metadata={"help": "fbank bins per frame (model input dim)"})
    cmvn_stats_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "global CMVN stats (.npz from fast-hubert-cmvn) a new model is built with; unset, the task "
            "fills in task.cmvn_stats_path. Never read for a model restored from a checkpoint: its buffers "
            "cmvn_mean / cmvn_inv_std hold the statistics it was trained with"
        },
    )
    conv_channels: int = field(default=1024, metadata={"help": "channels of each subsampler conv (GLU halves them)"})
    fbank_encoder_dim: int = field(default=512, metadata={"help": "subsampler output dim (before the projection)"})
    conv_kernel_sizes: str = field(
        default="5,5",
        metadata={"help": "odd kernel size of each stride-2 subsampler conv; 1/2/3 convs give 20/40/80 ms frames"},
    )
    supervised_layers: str = field(
        default="[]",
        metadata={
            "help": "intermediate layer supervision (ILS): 1-based Transformer blocks trained with the CE loss "
            "in addition to the last one, each with its own head, e.g. '[4]' (Fast-HuBERT: blocks 4 and 12). "
            "Indices are absolute: under layerdrop block 4 stays block 4"
        },
    )
    required_seq_len_multiple: int = field(
        default=1,
        metadata={
            "help": "pad Transformer inputs to a multiple of this length; HuBERT's 2 pads odd lengths and "
            "then needs a padding mask in every attention layer, so Fast-HuBERT uses 1"
        },
    )
    spec_aug_freq_masks: int = field(
        default=0, metadata={"help": "fine-tuning SpecAugment: frequency masks per utterance"}
    )
    spec_aug_freq_width: int = field(
        default=30, metadata={"help": "fine-tuning SpecAugment: frequency masks are < this many bins"}
    )
    spec_aug_time_masks: int = field(default=0, metadata={"help": "fine-tuning SpecAugment: time masks per utterance"})
    spec_aug_time_width: int = field(
        default=40, metadata={"help": "fine-tuning SpecAugment: time masks are < this many fbank frames"}
    )
    compile_encoder: bool = field(
        default=False,
        metadata={
            "help": "compile each Transformer block with torch.compile(dynamic=True) when the model is built "
            "(parameter names and checkpoints unchanged; the first steps of each new shape compile). Fewer "
            "shapes compile less: task.crop_size_multiple buckets the crop lengths"
        },
    )


def label_stride(label_rate: float, frame_rate: float) -> int:
    """How many labels per model frame: labels at 50 Hz with 25 Hz frames -> every 2nd label."""
    ratio = label_rate / frame_rate
    if label_rate <= 0 or ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"model.label_rate={label_rate:g} Hz does not fit the model frame rate {frame_rate:g} Hz: labels must "
            f"come at the frame rate or an integer multiple of it (e.g. {frame_rate:g} or {2 * frame_rate:g} Hz). "
            "Set model.label_rate to the rate your label files were written at, or change conv_kernel_sizes "
            "(1 conv: 50 Hz frames, 2: 25 Hz, 3: 12.5 Hz)"
        )
    return int(round(ratio))


@register_model("fast_hubert", dataclass=FastHubertConfig)
class FastHubertModel(BaseFairseqModel):
    """The model, composed of fairseq parts it calls: speech_to_text's ``Conv1dSubsampler`` (as
    ``FbankSubsampler``), wav2vec 2.0's ``TransformerEncoder`` (as ``LayerOutputEncoder``),
    ``compute_mask_indices`` for the spans; fine-tuning wraps it in fairseq's ``hubert_ctc``, which
    calls ``extract_features`` and ``remove_pretraining_modules``.

    Parameters keep the names (and are created in the order, so a seed gives the same initial
    weights) of the checkpoints written so far: tests/test_checkpoint_compat.py loads one strictly."""

    def __init__(self, cfg: FastHubertConfig, dictionaries: List[Dictionary]) -> None:
        super().__init__()
        self.cfg = cfg
        kernels = parse_int_list(cfg.conv_kernel_sizes, "conv_kernel_sizes")
        self.subsampler = FbankSubsampler(cfg.input_feat_per_channel, cfg.conv_channels, cfg.fbank_encoder_dim, kernels)
        self.frame_rate = FBANK_FRAME_RATE / self.subsampler.downsample_factor
        # CMVN statistics are buffers, so every checkpoint carries those it was trained with. The identity
        # until build_model reads the stats file or a checkpoint's tensors are loaded (models/cmvn.py).
        self.register_buffer("cmvn_mean", torch.zeros(cfg.input_feat_per_channel))
        self.register_buffer("cmvn_inv_std", torch.ones(cfg.input_feat_per_channel))
        self.layer_norm = LayerNorm(cfg.fbank_encoder_dim)
        self.post_extract_proj = (
            nn.Linear(cfg.fbank_encoder_dim, cfg.encoder_embed_dim)
            if cfg.fbank_encoder_dim != cfg.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        # The learnt vector that replaces the Transformer input at masked frames (HuBERT's mask_emb).
        self.mask_emb = nn.Parameter(torch.FloatTensor(cfg.encoder_embed_dim).uniform_())
        # An attribute, not read from cfg at each step: a built model's front-end can be frozen in place.
        self.feature_grad_mult = cfg.feature_grad_mult
        self.encoder = LayerOutputEncoder(cfg)
        if cfg.compile_encoder:
            self.compile_blocks()

        num_layers = cfg.encoder_layers
        extra = parse_int_list(cfg.supervised_layers, "supervised_layers")
        bad = [layer for layer in extra if not 1 <= layer <= num_layers]
        if bad:
            raise ValueError(f"supervised_layers {bad} outside 1..{num_layers} (1-based Transformer blocks)")
        self.supervised_layers = sorted(set(extra) | {num_layers})

        # Label heads: one per (label set, supervised block); absent in fine-tuning (no dictionaries).
        self.label_stride = None
        self.label_heads = None
        if dictionaries and all(d is not None for d in dictionaries):
            self.label_stride = label_stride(cfg.label_rate, self.frame_rate)
            self.num_classes = [len(d) for d in dictionaries]
            self.label_heads = nn.ModuleList(
                nn.Linear(cfg.encoder_embed_dim, n) for n in self.num_classes for _ in self.supervised_layers
            )
        for key, default in _COSINE_LOSS_KEYS.items():
            if getattr(cfg, key, default) != default:
                logger.warning(f"model.{key}={getattr(cfg, key)} has no effect: Fast-HuBERT uses a linear CE head")

    def compile_blocks(self, **options) -> None:
        """torch.compile each Transformer block in place (``nn.Module.compile``: parameter names, and so
        checkpoints, stay the same) with dynamic shapes, as the batch size and crop length vary; layerdrop
        stays a Python choice between compiled blocks. ``options`` go to torch.compile (e.g. ``backend``)."""
        for layer in self.encoder.layers:
            layer.compile(dynamic=True, **options)

    @property
    def mask_prob(self) -> float:
        """Span-masking probability (``model.mask_prob``), for code that inspects a built model."""
        return self.cfg.mask_prob

    @property
    def mask_channel_prob(self) -> float:
        """Channel-masking probability (``model.mask_channel_prob``)."""
        return self.cfg.mask_channel_prob

    def set_cmvn(self, cmvn: Dict[str, torch.Tensor]) -> None:
        """Normalise the input with these CMVN buffers (``read_cmvn``'s); the checkpoint stores them."""
        for name in CMVN_BUFFERS:
            buffer = getattr(self, name)
            if cmvn[name].shape != buffer.shape:
                raise ValueError(
                    f"CMVN stats have {tuple(cmvn[name].shape)} bins, "
                    f"model.input_feat_per_channel is {self.cfg.input_feat_per_channel}"
                )
            buffer.copy_(cmvn[name])

    @classmethod
    def build_model(cls, cfg: FastHubertConfig, task):
        """The one place a model's CMVN statistics file is read: ``cfg.cmvn_stats_path``, which the task
        sets for a new model and leaves unset for one restored from a checkpoint (whose buffers fairseq
        loads next; the stats file may be long gone)."""
        dictionaries = None if task.cfg.fine_tuning else task.dictionaries
        model = cls(cfg, dictionaries)
        if cfg.cmvn_stats_path:
            model.set_cmvn(read_cmvn(cfg.cmvn_stats_path, dim=cfg.input_feat_per_channel))
        return model

    @property
    def spec_augment_enabled(self) -> bool:
        return self.cfg.spec_aug_freq_masks > 0 or self.cfg.spec_aug_time_masks > 0

    def fbank_from_waveform(
        self, waveforms: torch.Tensor, padding_mask: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, N) 16 kHz waveforms and their (B, N) sample padding mask -> (B, T, F) raw fbank in the
        model's dtype and its (B, T) frame padding mask (None when nothing is padded). The fbank is
        computed on the waveforms' device in float32 (never under autocast) and gets no gradient."""
        with torch.no_grad():
            feats = kaldi_fbank(waveforms, self.cfg.input_feat_per_channel).to(self.cmvn_mean.dtype)
        if padding_mask is not None:
            frames = num_fbank_frames((~padding_mask).sum(dim=1))
            padding_mask = lengths_to_padding_mask(frames, feats.size(1))
        return feats, padding_mask

    def forward_features(
        self,
        source: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        augment: bool = False,
        drop_unpadded: bool = True,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """source: (B, N) waveform at 16 kHz or (B, T, F) raw fbank; padding_mask: (B, N) or (B, T)
        bool, True on padding, or None.

        Returns subsampled features (B, T', fbank_encoder_dim) and their padding mask (B, T'),
        derived from the input lengths (exact for every T), or None when nothing is padded. Finding
        that an all-False mask pads nothing reads it on the host (a device synchronisation):
        ``drop_unpadded=False`` skips that for masks known to pad something (the dataset's batches).
        """
        if source.dim() == 2:
            source, padding_mask = self.fbank_from_waveform(source, padding_mask)
        lengths = None
        x = (source - self.cmvn_mean) * self.cmvn_inv_std
        if padding_mask is not None and drop_unpadded and not padding_mask.any():
            padding_mask = None  # attention without a padding mask can take the fastest kernels
        if padding_mask is not None:
            lengths = (~padding_mask).sum(dim=1)
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        if augment:
            c = self.cfg
            x = spec_augment(
                x, lengths, c.spec_aug_freq_masks, c.spec_aug_freq_width, c.spec_aug_time_masks, c.spec_aug_time_width
            )
        if self.feature_grad_mult > 0:
            features, out_lengths = self.subsampler(x, lengths)
            if self.feature_grad_mult != 1.0:
                features = GradMultiply.apply(features, self.feature_grad_mult)
        else:
            with torch.no_grad():
                features, out_lengths = self.subsampler(x, lengths)
        out_mask = None if out_lengths is None else lengths_to_padding_mask(out_lengths, features.size(1))
        return features, out_mask

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """Subsampler output (B, T', fbank_encoder_dim) -> Transformer input (B, T', encoder_embed_dim):
        LayerNorm, projection, dropout. This is layer 0 of the layer-feature convention."""
        features = self.layer_norm(features)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.dropout_input(features)

    def layer_outputs(
        self, source: torch.Tensor, padding_mask: Optional[torch.Tensor], layers: Sequence[int]
    ) -> Tuple[Dict[int, torch.Tensor], Optional[torch.Tensor]]:
        """Unmasked hidden states: {layer: (B, T', C)} for ``layers`` (0: the Transformer input, L >= 1:
        the output of block L) and the output padding mask (B, T') or None. Runs the Transformer
        only up to the highest block asked for."""
        features, out_mask = self.forward_features(source, padding_mask)
        features = self.project_features(features)
        out = {0: features} if 0 in layers else {}
        blocks = sorted(layer for layer in set(layers) if layer > 0)
        if blocks:
            _, outputs = self.encoder.extract_features(
                features, out_mask, tgt_layer=blocks[-1] - 1, return_layers=blocks
            )
            out.update(outputs)
        return out, out_mask

    def forward_targets(
        self, features: torch.Tensor, target_list: List[torch.Tensor], padding_mask: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor], Optional[torch.Tensor]]:
        """Pick the label of each model frame (every ``label_stride``-th) and trim to the labels present."""
        stride = self.label_stride
        target_list = [t[:, ::stride] for t in target_list]
        n = min([features.size(1)] + [t.size(1) for t in target_list])
        features = features[:, :n]
        padding_mask = None if padding_mask is None else padding_mask[:, :n]
        return features, [t[:, :n] for t in target_list], padding_mask

    def span_masking(self) -> SpanMasking:
        """This model's frame geometry and masking settings: what the dataset needs to draw its masks in
        the loader workers (the task hands it over in build_model; data/span_masks.py)."""
        c = self.cfg
        return SpanMasking(
            subsampling_convs=self.subsampler.n_layers,
            label_stride=self.label_stride or 1,
            mask_prob=c.mask_prob,
            mask_length=c.mask_length,
            mask_selection=c.mask_selection,
            mask_other=c.mask_other,
            min_masks=MIN_MASKS,
            no_overlap=c.no_mask_overlap,
            min_space=c.mask_min_space,
        )

    def apply_mask(
        self,
        x: torch.Tensor,
        padding_mask: Optional[torch.Tensor],
        target_list,
        rng_keys: Optional[torch.Tensor] = None,
        time_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """HuBERT's span masking of x (B, T', D): masked frames become ``mask_emb``, masked channels 0.
        Returns (x, time mask (B, T') bool or None); x is a new tensor in x's dtype (so it works under
        autocast, where x is bf16/fp16 and mask_emb fp32).

        ``time_mask`` (B, T'), a training batch's mask drawn by the loader, is applied as it is: no host
        work, no device synchronisation. Without it the mask is drawn here, on the host, by the same
        function (``SpanMasking.draw``: fairseq's ``compute_mask_indices``, data/span_masks.py) and
        copied to x's device: from ``rng_keys`` when given, which gives the mask the loader draws for
        those keys (in any process and after a restart), otherwise from a fresh unseeded generator, as
        fairseq's ``HubertModel``. With keys a row's mask depends on the keys of its whole batch: rows
        are thinned to the batch's smallest masked count with the last row's generator. Channel masks
        (``mask_channel_prob``, fine-tuning) are drawn as in fairseq's ``hubert_ctc``."""
        B, T, C = x.shape
        c = self.cfg
        if time_mask is None and c.mask_prob > 0:
            host_padding = None if padding_mask is None else padding_mask.cpu()
            keys = None if rng_keys is None else rng_keys.cpu()
            time_mask = self.span_masking().draw((B, T), host_padding, keys).to(x.device)
        if time_mask is not None:
            if time_mask.shape != (B, T):
                raise ValueError(
                    f"the batch's time_mask is {tuple(time_mask.shape)} but the model has {B} x {T} frames: the "
                    "dataset drew it for another model; hand the model's span_masking() to the dataset"
                )
            # mask_emb cast to x's dtype: under autocast x is bf16/fp16 and mask_emb fp32
            x = torch.where(time_mask.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        if c.mask_channel_prob > 0:
            channels = compute_mask_indices(
                (B, C),
                None,
                c.mask_channel_prob,
                c.mask_channel_length,
                c.mask_channel_selection,
                c.mask_channel_other,
                no_overlap=c.no_mask_channel_overlap,
                min_space=c.mask_channel_min_space,
            )
            x = x.masked_fill(torch.from_numpy(channels).to(x.device).unsqueeze(1), 0.0)
        return x, time_mask

    @staticmethod
    def frames_to_score(
        time_mask: Optional[torch.Tensor], padding_mask: Optional[torch.Tensor], shape: torch.Size, device
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Flat indices into (B * T') of the masked and of the unmasked frames that are not padding, for a
        batch that did not bring them (``scored_frames`` on the host, then copied to ``device``)."""
        host_mask = torch.zeros(shape, dtype=torch.bool) if time_mask is None else time_mask.cpu()
        host_padding = None if padding_mask is None else padding_mask.cpu()
        return tuple(frames.to(device) for frames in scored_frames(host_mask, host_padding))

    def forward(
        self,
        source: torch.Tensor,
        target_list: Optional[List[torch.Tensor]] = None,
        padding_mask: Optional[torch.Tensor] = None,
        mask: bool = True,
        features_only: bool = False,
        output_layer: Optional[int] = None,
        compute_masked: bool = True,
        compute_unmasked: bool = False,
        rng_keys: Optional[torch.Tensor] = None,
        time_mask: Optional[torch.Tensor] = None,
        masked_frames: Optional[torch.Tensor] = None,
        unmasked_frames: Optional[torch.Tensor] = None,
    ) -> Union[FastHubertOutput, Dict[str, Optional[torch.Tensor]]]:
        """One batch through the model; T' = ceil(T / 2^n) frames for n subsampler convs (25 Hz for Base).

        Args:
            source: (B, N) 16 kHz waveforms, int16 PCM (training batches) or float in [-1, 1] (the
                fbank is computed here), or (B, T, F) raw fbank at 100 Hz (precomputed store, probes, decoding).
            target_list: one (B, L) int32/int64 tensor of unit ids per label set, at ``label_rate``.
            padding_mask: (B, N) or (B, T) bool, True on padding, or None when nothing is padded.
            output_layer: 1-based block whose output ``features_only`` returns (default: the last).
            rng_keys: (B,) int64, one key per utterance (the dataset's ``net_input["rng_keys"]``) from
                which its mask is drawn when the batch brings no ``time_mask``.
            time_mask, masked_frames, unmasked_frames: the mask the loader drew (data/span_masks.py):
                (B, T') bool over the frames after ``forward_targets``, and the flat indices into
                (B * T') of the masked and unmasked frames that are not padding, (M,) and (U,) int64.
                With them a training step makes no host work and no device synchronisation; without
                them the mask and indices are made here, on the host, from ``rng_keys``.

        Returns (``features_only``): ``x`` (B, T', D), ``padding_mask`` (B, T') or None, ``features``
        (B, T', D) the unmasked Transformer input. Otherwise, for the loss, a ``FastHubertOutput``:
        one ``HeadOutput`` per (label set, supervised block), label set major, with the logits
        (frames, units) and targets (frames,) of its masked and unmasked frames (row-major order), the
        time mask and the padding mask (B, T'). Logits are computed only for the frames the loss uses:
        masked frames, and unmasked ones only when ``compute_unmasked``.

        Fine-tuning (``features_only`` with ``mask``, in training) augments with exactly one of:
        SpecAugment on the fbank when ``spec_aug_*`` asks for masks (as the official Fast-HuBERT),
        which then *replaces* HuBERT's span and channel masking (``mask_prob`` and
        ``mask_channel_prob`` are not used); otherwise HuBERT's masking, as fairseq's ``hubert_ctc``."""
        augment = features_only and mask and self.training and self.spec_augment_enabled
        if augment:
            mask = False  # SpecAugment replaces HuBERT's masking: the two are never stacked
        # The loader's batches (those with its time_mask) never carry an all-False padding mask.
        features, padding_mask = self.forward_features(source, padding_mask, augment, drop_unpadded=time_mask is None)
        if target_list is not None:
            features, target_list, padding_mask = self.forward_targets(features, target_list, padding_mask)
        features = self.project_features(features)
        loader_drawn = mask and time_mask is not None and masked_frames is not None and unmasked_frames is not None
        if mask:
            given = {k: v for k, v in (("rng_keys", rng_keys), ("time_mask", time_mask)) if v is not None}
            x, time_mask = self.apply_mask(features, padding_mask, target_list, **given)
        else:
            x, time_mask = features, None

        if features_only:
            layer = None if output_layer is None else output_layer - 1
            x, _ = self.encoder(x, padding_mask=padding_mask, layer=layer)
            return {"x": x, "padding_mask": padding_mask, "features": features}

        if self.label_heads is None:
            raise RuntimeError("this model has no label heads (built for fine-tuning); use extract_features")
        _, layer_outputs = self.encoder.extract_features(x, padding_mask, return_layers=self.supervised_layers)
        if self.encoder.layer_norm_first:
            last = self.supervised_layers[-1]
            layer_outputs[last] = self.encoder.layer_norm(layer_outputs[last])

        if not loader_drawn:
            masked_frames, unmasked_frames = self.frames_to_score(time_mask, padding_mask, x.shape[:2], x.device)
        if time_mask is None:
            time_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        # Frames picked by (row, column) index tensors of host-known length: no hidden[mask], no sync.
        T = x.size(1)
        picked = [
            (torch.div(frames, T, rounding_mode="floor"), frames % T) if wanted else None
            for frames, wanted in (
                (masked_frames, compute_masked and not self.cfg.skip_masked),
                (unmasked_frames, compute_unmasked and not self.cfg.skip_nomask),
            )
        ]
        heads = []
        for ti, t in enumerate(target_list):
            for li, layer in enumerate(self.supervised_layers):
                head, hidden = self.label_heads[ti * len(self.supervised_layers) + li], layer_outputs[layer]
                scored = [
                    None
                    if frames is None
                    else HeadPredictions(head(hidden[frames]) / self.cfg.logit_temp, t[frames].long())
                    for frames in picked
                ]
                heads.append(HeadOutput(ti, layer, *scored))
        return FastHubertOutput(heads, time_mask, padding_mask, len(target_list))

    def extract_features(
        self,
        source: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        mask: bool = False,
        ret_conv: bool = False,
        output_layer: Optional[int] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T', D) output of block ``output_layer`` (1-based, default the last; with ``ret_conv``
        the unmasked Transformer input instead) and its padding mask (B, T') or None: the call
        fairseq's ``hubert_ctc`` (``HubertEncoder``) makes, with HuBERT's signature. As in fairseq's
        encoder, the final LayerNorm of a ``layer_norm_first`` model is applied only without
        ``output_layer``: the output of a named block, the last included, is not normalised."""
        res = self.forward(source, padding_mask=padding_mask, mask=mask, features_only=True, output_layer=output_layer)
        return res["features"] if ret_conv else res["x"], res["padding_mask"]

    def get_logits(self, net_output: FastHubertOutput, is_masked: bool = True) -> List[torch.Tensor]:
        """fairseq's HuBERT interface: the float logits of every head that computed them."""
        return [p.logits.float() for p in net_output.predictions(is_masked)]

    def get_targets(self, net_output: FastHubertOutput, is_masked: bool = True) -> List[torch.Tensor]:
        """The unit ids those logits are scored against (fairseq's HuBERT returns NCE indices here)."""
        return [p.targets for p in net_output.predictions(is_masked)]

    def get_extra_losses(self, net_output):
        return [], []

    def remove_pretraining_modules(self):
        self.label_heads = None
