import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)

from . import official_names  # noqa: F401
from .fast_hubert_criterion import FastHubertCriterion, FastHubertCriterionConfig  # noqa: F401
