"""Criterion ``fasthubert``: the official name; ``loss_weights`` weighted HuBERT's feature
penalty, which Fast-HuBERT does not have, so it is accepted and reported as unused."""

import logging
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.criterions import register_criterion

from .fast_hubert_criterion import FastHubertCriterion, FastHubertCriterionConfig

logger = logging.getLogger(__name__)


@dataclass
class OfficialFastHubertCriterionConfig(FastHubertCriterionConfig):
    loss_weights: Optional[List[float]] = field(
        default=None, metadata={"help": "official key: weights of extra losses (Fast-HuBERT has none)"}
    )


@register_criterion("fasthubert", dataclass=OfficialFastHubertCriterionConfig)
class OfficialFastHubertCriterion(FastHubertCriterion):
    def __init__(self, task, pred_masked_weight=1.0, pred_nomask_weight=0.0, log_keys=None, loss_weights=None):
        super().__init__(task, pred_masked_weight, pred_nomask_weight, log_keys)
        if loss_weights:
            logger.warning(
                f"criterion.loss_weights={loss_weights} has no effect: the model has no extra losses "
                "(HuBERT's feature penalty does not exist without the waveform CNN)"
            )
