from . import official_names  # noqa: F401
from .fast_hubert_criterion import FastHubertCriterion, FastHubertCriterionConfig  # noqa: F401
