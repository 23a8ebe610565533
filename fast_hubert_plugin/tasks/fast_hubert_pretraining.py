"""Task ``fast_hubert_pretraining``: fairseq audio manifests in, fbank + HuBERT labels out.

All sizes (``max_sample_size``, ``min_sample_size``, ``max_keep_size`` and the trainer's
``dataset.max_tokens``) are counted in **fbank frames: 100 per second of audio**. HuBERT-Base's
1,400,000 samples per GPU (87.5 s) is 8,750 frames here.

Fine-tuning mode (``fine_tuning: true``, ``labels: [ltr]``) serves fairseq's ``hubert_ctc``.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.tasks import register_task
from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig, HubertPretrainingTask

from ..data.fbank_dataset import FbankHubertDataset
from ..data.feature_store import FbankStore
from ..data.labels import DEFAULT_LENGTH_TOLERANCE_S, load_dictionary
from ..features.cmvn import GlobalCMVN

logger = logging.getLogger(__name__)


@dataclass
class FastHubertPretrainingConfig(HubertPretrainingConfig):
    cmvn_stats_path: Optional[str] = field(
        default=None,
        metadata={"help": "global CMVN stats (.npz with mean/std) from `fast-hubert-cmvn TRAIN_MANIFEST`; "
                  "required to build a new model, stored inside its checkpoints"},
    )
    feature_dir: Optional[str] = field(
        default=None,
        metadata={"help": "read precomputed fbank ({split}.fbank.npy + lengths, from fast-hubert-store-fbank) "
                  "instead of computing it from the audio in the data-loader workers"},
    )
    label_length_tolerance: float = field(
        default=DEFAULT_LENGTH_TOLERANCE_S,
        metadata={"help": "seconds a label line's duration (labels / label_rate) may differ from the audio's"},
    )
    check_audio_files: bool = field(
        default=True, metadata={"help": "check at start-up that every audio file of the manifest exists"}
    )


@register_task("fast_hubert_pretraining", dataclass=FastHubertPretrainingConfig)
class FastHubertPretrainingTask(HubertPretrainingTask):
    cfg: FastHubertPretrainingConfig

    def __init__(self, cfg: FastHubertPretrainingConfig) -> None:
        super().__init__(cfg)
        self.model_from_checkpoint = False

    @property
    def audio_sample_rate(self) -> int:
        # The official Fast-HuBERT configs set sample_rate: 100 (their fbank frame rate).
        return 16000 if self.cfg.sample_rate == 100 else self.cfg.sample_rate

    def dict_paths(self) -> List[str]:
        return [os.path.join(self.get_label_dir(), f"dict.{label}.txt") for label in self.cfg.labels]

    def load_dictionaries(self):
        dictionaries = [load_dictionary(p) for p in self.dict_paths()]
        return dictionaries[0] if self.cfg.fine_tuning else dictionaries

    def load_cmvn(self, dim: int) -> GlobalCMVN:
        if self.cfg.cmvn_stats_path is None:
            raise ValueError("task.cmvn_stats_path is not set: compute the stats with "
                             "`fast-hubert-cmvn TRAIN_MANIFEST --output STATS.npz` and pass task.cmvn_stats_path=STATS.npz")
        return GlobalCMVN.load(self.cfg.cmvn_stats_path, expected_dim=dim)

    def build_model(self, cfg, from_checkpoint: bool = False):
        # A model restored from a checkpoint carries its CMVN buffers: the stats file is not needed.
        self.model_from_checkpoint = from_checkpoint
        try:
            return super().build_model(cfg, from_checkpoint)
        finally:
            self.model_from_checkpoint = False

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
        )
