"""Fine-tuning (fairseq ``hubert_ctc`` + letter CTC) and decoding.

- ``prepare``: transcribed TSV -> fairseq manifest, ``.ltr``/``.wrd`` labels, ``dict.ltr.txt``
  (``fast-hubert-prepare-ctc``).
- ``ctc``: letters, greedy CTC decoding and WER/CER.
- ``lm_decoder``: KenLM beam search through flashlight-text (optional).
- ``decode``: decode a split with a fine-tuned checkpoint (``fast-hubert-decode``).

What fine-tuning needs at training time lives below this folder: ``models/hubert_ctc.py`` (fairseq's
``hubert_ctc`` around fast_hubert), ``models/checkpoints.py`` (the checkpoint loader) and
``models/layer_features.py`` (the layer-feature API); none of this folder is imported when
fairseq loads the plugin.
"""

import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)
