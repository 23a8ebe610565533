"""Task ``fast_hubert_pretraining``: fairseq audio manifests in, fbank + HuBERT labels out.

All sizes (``max_sample_size``, ``min_sample_size``, ``max_keep_size`` and the trainer's
``dataset.max_tokens``) are counted in **fbank frames: 100 per second of audio**. HuBERT-Base's
1,400,000 samples per GPU (87.5 s) is 8,750 frames here.

Fine-tuning mode (``fine_tuning: true``, ``labels: [ltr]``) serves fairseq's ``hubert_ctc``.

What comes from fairseq's ``HubertPretrainingTask`` (its constructor runs): the dictionaries, loaded
lazily by ``load_dictionaries`` through fairseq's task state (``self.state``, saved in checkpoints as
``task_state``), ``get_label_dir`` (``label_dir``, else ``data``) and ``filter_indices_by_size``,
which drops nothing: the dataset itself keeps utterances within ``min_sample_size`` and
``max_keep_size``. fairseq's ``normalize`` and ``enable_padding`` keys are not used (the fbank gets
global CMVN in the model; ``pad_audio`` pads).

CMVN: ``task.cmvn_stats_path`` is the key users set. :meth:`FastHubertPretrainingTask.build_model`
builds a fast_hubert model from a copy of its config whose ``cmvn_stats_path`` names the stats file
for a new model (the model config's own, else the task's) and none for a model restored from a
checkpoint, whose buffers come with the checkpoint's tensors. ``FastHubertModel.build_model`` reads
the file it names (models/cmvn.py).

Masks: once it has built a fast_hubert pretraining model, ``build_model`` hands the model's
``span_masking()`` (its frame geometry and masking settings) to the datasets already loaded (fairseq
loads the valid splits first) and ``load_dataset`` to the later ones (the train split): their
collaters then draw the span masks in the loader workers (data/span_masks.py).

Continued pretraining: with ``init_from_checkpoint`` a new model takes its encoder, CMVN buffers
included, from a pretrained checkpoint and keeps its freshly built label heads (models/warm_start.py).
"""

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from fairseq.tasks import register_task
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig, HubertPretrainingTask

from ..data.fbank_dataset import FbankHubertDataset
from ..data.feature_store import FbankStore
from ..data.labels import DEFAULT_LENGTH_TOLERANCE_S, load_dictionary
from ..features.kaldi_fbank import FBANK_FRAME_RATE, SAMPLE_RATE
from ..models.cmvn import configured_stats_path, with_stats_path
from ..models.family import is_fast_hubert_config, wrapped_model
from ..models.hubert_ctc import keep_pretrained_config, set_pretrained_cmvn, set_spec_augment
from ..models.warm_start import init_from_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class FastHubertPretrainingConfig(HubertPretrainingConfig):
    cmvn_stats_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "global CMVN stats (.npz with mean/std) from `fast-hubert-cmvn TRAIN_MANIFEST`; "
            "required to build a new model, stored inside its checkpoints (fine-tuning: read only with "
            "model.no_pretrained_weights, default the pretrained model's)"
        },
    )
    feature_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "read precomputed fbank ({split}.fbank.npy + lengths, from fast-hubert-store-fbank) "
            "instead of computing it from the audio in the data-loader workers"
        },
    )
    label_length_tolerance: float = field(
        default=DEFAULT_LENGTH_TOLERANCE_S,
        metadata={"help": "seconds a label line's duration (labels / label_rate) may differ from the audio's"},
    )
    check_audio_files: bool = field(
        default=True, metadata={"help": "check at start-up that every audio file of the manifest exists"}
    )
    crop_size_multiple: int = field(
        default=1,
        metadata={
            "help": "round each batch's crop length down (pad_audio: up) to a multiple of this many fbank "
            "frames, so that batches come in a few shapes (for model.compile_encoder); 1 keeps every length. "
            "A multiple of 8, e.g. 200 for 2 s steps"
        },
    )
    init_from_checkpoint: Optional[str] = field(
        default=None,
        metadata={
            "help": "continued pretraining: a new model takes every tensor but the label heads (CMVN included) "
            "from this fast_hubert checkpoint; heads new for task.labels' dictionaries; optimizer, lr schedule, "
            "data iterator and meters start afresh; a restarted run resumes from its own checkpoint_last.pt"
        },
    )
    resample_audio: bool = field(
        default=True,
        metadata={
            "help": "audio that is not 16 kHz mono is down-mixed and resampled (soxr) when read; false refuses "
            "it. Manifests count samples at 16 kHz either way (fast-hubert-prepare-ctc writes them)"
        },
    )
    persistent_workers: bool = field(
        default=False,
        metadata={
            "help": "keep data-loader workers alive across epochs; off, they restart each epoch and see the "
            "new epoch number, which keys the random crops and masks (exact resume, identical multi-process runs)"
        },
    )
    # Fine-tuning SpecAugment (hubert_ctc): fairseq rebuilds the pretrained model from the checkpoint's
    # own config and overrides only its own keys, so these reach the model through the task.
    spec_aug_freq_masks: Optional[int] = field(
        default=None,
        metadata={
            "help": "fine-tuning: SpecAugment frequency masks per utterance on the fbank "
            "(official Fast-HuBERT: 2); unset keeps the pretrained model's value (0 = off)"
        },
    )
    spec_aug_freq_width: Optional[int] = field(
        default=None, metadata={"help": "fine-tuning: frequency masks are < this many bins (official: 30)"}
    )
    spec_aug_time_masks: Optional[int] = field(
        default=None, metadata={"help": "fine-tuning: SpecAugment time masks per utterance (official: 2)"}
    )
    spec_aug_time_width: Optional[int] = field(
        default=None, metadata={"help": "fine-tuning: time masks are < this many fbank frames (official: 40)"}
    )


SPEC_AUG_KEYS = ("spec_aug_freq_masks", "spec_aug_freq_width", "spec_aug_time_masks", "spec_aug_time_width")


@register_task("fast_hubert_pretraining", dataclass=FastHubertPretrainingConfig)
class FastHubertPretrainingTask(HubertPretrainingTask):
    cfg: FastHubertPretrainingConfig

    def __init__(self, cfg: FastHubertPretrainingConfig):
        super().__init__(cfg)
        _ = self.audio_sample_rate  # a sample rate the fbank is not defined for fails here, at setup
        self.span_masking = None  # the model's, once built: its datasets then draw the masks

    @property
    def audio_sample_rate(self) -> int:
        """16000: the model's fbank is defined on 16 kHz audio. The official Fast-HuBERT configs set
        sample_rate: 100 (their fbank frame rate), which means the same."""
        if self.cfg.sample_rate not in (SAMPLE_RATE, FBANK_FRAME_RATE):
            raise ValueError(
                f"task.sample_rate={self.cfg.sample_rate}: the fast_hubert fbank is defined on {SAMPLE_RATE} Hz "
                f"audio. Resample the audio to {SAMPLE_RATE} Hz and set task.sample_rate={SAMPLE_RATE}"
            )
        return SAMPLE_RATE

    def dict_paths(self) -> List[str]:
        return [os.path.join(self.get_label_dir(), f"dict.{label}.txt") for label in self.cfg.labels]

    def load_dictionaries(self):
        dictionaries = [load_dictionary(p) for p in self.dict_paths()]
        return dictionaries[0] if self.cfg.fine_tuning else dictionaries

    def build_model(self, cfg, from_checkpoint: bool = False):
        if from_checkpoint:
            self.skip_missing_pretraining_dictionaries()
        warm_start = self.warm_start_checkpoint(cfg, from_checkpoint)
        if is_fast_hubert_config(cfg):  # where its CMVN comes from: the stats file, or a checkpoint
            new_stats = None if from_checkpoint or warm_start else self.new_model_stats_path(cfg)
            cfg = with_stats_path(cfg, new_stats)
        model = super().build_model(cfg, from_checkpoint)
        if is_fast_hubert_config(cfg) and not self.cfg.fine_tuning and model.label_heads is not None:
            # fairseq loads the valid splits before it builds the model, the train split after
            self.span_masking = model.span_masking()
            for dataset in self.datasets.values():
                if isinstance(dataset, FbankHubertDataset):
                    dataset.set_span_masking(self.span_masking)
        if warm_start:
            init_from_checkpoint(model, warm_start)
        if wrapped_model(model) is not None:  # hubert_ctc around fast_hubert
            keep_pretrained_config(cfg, model)
            if getattr(cfg, "no_pretrained_weights", False) and not from_checkpoint:
                set_pretrained_cmvn(model, cfg, self.cfg.cmvn_stats_path)
            set_spec_augment(
                model, {k: getattr(self.cfg, k) for k in SPEC_AUG_KEYS if getattr(self.cfg, k) is not None}
            )
            inner = wrapped_model(model)
            if inner.spec_augment_enabled and (inner.mask_prob > 0 or inner.mask_channel_prob > 0):
                logger.warning(
                    f"model.mask_prob={inner.mask_prob} and model.mask_channel_prob={inner.mask_channel_prob} "
                    "are not used: SpecAugment on the fbank (task.spec_aug_*) replaces HuBERT's masking "
                    "when fine-tuning. Set them to 0 to silence this, or set task.spec_aug_freq_masks=0 "
                    "task.spec_aug_time_masks=0 to use HuBERT's masking instead"
                )
        return model

    def warm_start_checkpoint(self, model_cfg, from_checkpoint: bool) -> Optional[str]:
        """``init_from_checkpoint`` when a new fast_hubert model is built for pretraining, else None (a
        model restored from a checkpoint, whose saved config may still name the file, has its own tensors)."""
        path = self.cfg.init_from_checkpoint
        if not path or from_checkpoint:
            return None
        if self.cfg.fine_tuning or not is_fast_hubert_config(model_cfg):
            raise ValueError(
                "task.init_from_checkpoint starts fast_hubert pretraining from a checkpoint; fine-tuning "
                "starts from model.w2v_path: unset task.init_from_checkpoint"
            )
        return path

    def new_model_stats_path(self, model_cfg) -> str:
        """The CMVN stats file a new fast_hubert model is built with: the one its config names, else
        ``task.cmvn_stats_path``."""
        stats_path = configured_stats_path(model_cfg) or self.cfg.cmvn_stats_path
        if stats_path is None:
            raise ValueError(
                "task.cmvn_stats_path is not set: compute the stats with "
                "`fast-hubert-cmvn TRAIN_MANIFEST --output STATS.npz` and pass task.cmvn_stats_path=STATS.npz"
            )
        return stats_path

    def skip_missing_pretraining_dictionaries(self) -> None:
        """hubert_ctc rebuilds the pretrained model of a fine-tuned checkpoint with a fresh pretraining
        task and drops its label heads at once: pretraining dictionaries that are neither in the task
        state nor on disk are not needed, and the model is built without label heads."""
        paths = self.dict_paths()
        if self.cfg.fine_tuning or "dictionaries" in self.state.state_dict or all(os.path.isfile(p) for p in paths):
            return
        logger.info(f"pretraining dictionaries {paths} not found: building the model without label heads")
        self.state.merge_state_dict({"dictionaries": [None] * len(paths)})

    def begin_epoch(self, epoch, model):
        """fairseq calls this with the model on its device: a training process whose model is on CUDA
        keeps one intra-op CPU thread unless OMP_NUM_THREADS says otherwise, as torchrun sets it. It has
        no CPU arithmetic to share out, and idle-spinning OpenMP threads of every rank starve the threads
        that launch the GPU work (fairseq#3342: GPUs at 30 % with the CPUs at 100 %)."""
        super().begin_epoch(epoch, model)
        on_cuda = any(p.is_cuda for p in model.parameters())
        if on_cuda and "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() != 1:
            logger.info(
                f"training on CUDA: 1 intra-op CPU thread instead of {torch.get_num_threads()} (OMP_NUM_THREADS)"
            )
            torch.set_num_threads(1)

    def get_batch_iterator(self, dataset, *args, seed: int = 1, **kwargs):
        # The trainer passes common.seed here (common.seed + epoch with
        # dataset.update_ordered_indices_seed): it keys the crops and span masks the dataset draws.
        if hasattr(dataset, "set_seed"):
            dataset.set_seed(seed)
        return super().get_batch_iterator(dataset, *args, seed=seed, **kwargs)

    def load_dataset(self, split: str, **kwargs) -> None:
        manifest = os.path.join(self.cfg.data, f"{split}.tsv")
        dicts = [self.target_dictionary] if self.cfg.fine_tuning else self.dictionaries
        label_dir = self.get_label_dir()
        label_paths = [os.path.join(label_dir, f"{split}.{label}") for label in self.cfg.labels]
        store = FbankStore(self.cfg.feature_dir, split) if self.cfg.feature_dir else None
        self.datasets[split] = FbankHubertDataset(
            manifest,
            label_paths=label_paths,
            label_rates=[self.cfg.label_rate] * len(label_paths),
            dictionaries=dicts,
            dict_paths=self.dict_paths(),
            audio_sample_rate=self.audio_sample_rate,
            max_keep_size=self.cfg.max_keep_size,
            min_keep_size=self.cfg.min_sample_size,
            max_sample_size=self.cfg.max_sample_size,
            pad_audio=self.cfg.pad_audio,
            random_crop=self.cfg.random_crop,
            single_target=self.cfg.single_target,
            feature_store=store,
            label_length_tolerance_s=self.cfg.label_length_tolerance,
            check_audio_files=self.cfg.check_audio_files,
            span_masking=self.span_masking,
            crop_size_multiple=self.cfg.crop_size_multiple,
            resample_audio=self.cfg.resample_audio,
        )
