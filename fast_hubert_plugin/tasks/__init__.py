from . import official_names  # noqa: F401
from .fast_hubert_pretraining import FastHubertPretrainingConfig, FastHubertPretrainingTask  # noqa: F401
