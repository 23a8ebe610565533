"""fast-hubert: Fast-HuBERT pretraining as a fairseq user-dir plugin.

Importing this package (fairseq does it for ``common.user_dir``) registers the task
``fast_hubert_pretraining``, the model ``fast_hubert`` and the criterion ``fast_hubert``
(plus the official Fast-HuBERT names) and the optimizer ``torch_adamw``, lets fairseq checkpoints load on torch >= 2.6, and makes
fairseq's copy onto ``checkpoint_last.pt`` atomic (a job killed while saving can resume). The root
logger stays as it was (fairseq's import would set it to DEBUG). ``config_dir("pretraining")`` /
``config_dir("finetuning")`` is the folder of the shipped Hydra configs (``--config-dir``).
"""

from .utils.root_logger import root_logger_kept

with root_logger_kept():  # fairseq's import would set the root logger to DEBUG (utils/root_logger.py)
    from .utils.checkpoint_copy import make_checkpoint_copies_atomic
    from .utils.checkpoint_safety import allow_fairseq_checkpoints

    allow_fairseq_checkpoints()
    make_checkpoint_copies_atomic()

    from . import criterions, models, optim, tasks  # noqa: F401  (registration)

from .config import config_dir  # noqa: F401  (the shipped Hydra configs)

__version__ = "0.1.0"
