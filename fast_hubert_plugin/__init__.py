"""fast-hubert: Fast-HuBERT pretraining as a fairseq user-dir plugin.

With fairseq loaded (fairseq imports this package for ``common.user_dir``), importing it registers
the task ``fast_hubert_pretraining``, the model ``fast_hubert`` and the criterion ``fast_hubert``
(plus the official Fast-HuBERT names) and the optimizer ``torch_adamw``, lets fairseq checkpoints
load on torch >= 2.6, and makes fairseq's copy onto ``checkpoint_last.pt`` atomic (a job killed
while saving can resume); without fairseq loaded, all of this happens when fairseq is imported
(``registration.py``), so ``fast_hubert_plugin.features`` and ``.config`` import without fairseq.
``register()`` registers now (e.g. before a plain ``torch.load`` of a fairseq checkpoint).
The root logger stays as it was (fairseq's import would set it to DEBUG).
``config_dir("pretraining")`` / ``config_dir("finetuning")`` is the folder of the shipped Hydra
configs (``--config-dir``).
"""

from .config import config_dir  # noqa: F401  (the shipped Hydra configs)
from .registration import register, register_with_fairseq  # noqa: F401  (register: public)

register_with_fairseq()

__version__ = "0.1.0"
