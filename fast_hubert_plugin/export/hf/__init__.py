"""The files an export folder carries for ``trust_remote_code``.

Each module imports only torch, numpy and transformers (and its siblings, relatively), so the
exported model loads where neither fairseq nor this plugin is installed. The exporter copies
them next to ``config.json``, with the training fbank (``features/kaldi_fbank.py``) as
``kaldi_fbank.py``; inside the plugin that sibling is the features module itself.
"""

import sys

from ...features import kaldi_fbank

sys.modules[f"{__name__}.kaldi_fbank"] = kaldi_fbank
