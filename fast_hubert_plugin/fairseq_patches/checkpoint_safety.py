"""Let fairseq load its own checkpoints on torch >= 2.6 without switching the safety check off.

torch >= 2.6 loads with ``weights_only=True`` by default and fairseq's ``checkpoint_utils``
(every PyPI release) does not say otherwise, so loading fails on the non-tensor objects that
fairseq stores. We allowlist exactly those types with ``torch.serialization.add_safe_globals``;
any other pickled object is still refused.
"""

import argparse

import torch
from fairseq.data.dictionary import Dictionary

# What fairseq checkpoints hold besides tensors and builtin containers (measured with
# torch.serialization.get_unsafe_globals_in_checkpoint on pretraining and fine-tuning checkpoints).
FAIRSEQ_CHECKPOINT_GLOBALS = [
    Dictionary,  # task_state: "dictionaries" (pretraining) / "target_dictionary" (fine-tuning)
    argparse.Namespace,  # "args" in checkpoints of older fairseq versions
]


def allow_fairseq_checkpoints() -> None:
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)
