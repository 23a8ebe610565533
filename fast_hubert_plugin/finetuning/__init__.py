"""Fine-tuning (fairseq ``hubert_ctc`` + letter CTC), decoding and layer features.

- ``hubert_ctc_compat``: makes fairseq's ``hubert_ctc`` work with fast_hubert on fairseq-fixed
  0.12.3.1 (config key, self-contained checkpoints, SpecAugment settings).
- ``prepare``: transcribed TSV -> fairseq manifest, ``.ltr``/``.wrd`` labels, ``dict.ltr.txt``
  (``fast-hubert-prepare-ctc``).
- ``batching``: fbank batches of a manifest, every row, in length order (decoding, extraction).
- ``ctc``: greedy CTC decoding and WER/CER.
- ``lm_decoder``: KenLM beam search through flashlight-text (optional).
- ``checkpoints``: load a pretrained or fine-tuned checkpoint for inference.
- ``decode``: decode a split with a fine-tuned checkpoint (``fast-hubert-decode``).
- ``layer_features`` / ``extract``: layer outputs of pretrained or fine-tuned checkpoints, as a
  Python API and as ``fast-hubert-extract``.

Only ``hubert_ctc_compat`` is imported when fairseq loads the plugin (by the task); the rest is
used by the command-line tools and the Python API.
"""
