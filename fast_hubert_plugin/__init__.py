"""fast-hubert: Fast-HuBERT pretraining as a fairseq user-dir plugin.

Importing this package (fairseq does it for ``common.user_dir``) registers the task
``fast_hubert_pretraining``, the model ``fast_hubert`` and the criterion ``fast_hubert``
(plus the official Fast-HuBERT names), and lets fairseq checkpoints load on torch >= 2.6.
"""
from .utils.checkpoint_safety import allow_fairseq_checkpoints

allow_fairseq_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registration)

__version__ = "0.1.0"
