import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)

from . import official_names  # noqa: F401
from .fast_hubert import FastHubertConfig, FastHubertModel  # noqa: F401
from .hubert_ctc import fix_hubert_ctc_config

fix_hubert_ctc_config()  # fairseq's hubert_ctc around fast_hubert (fine-tuning) must be buildable
