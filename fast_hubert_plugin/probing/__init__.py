"""SUPERB-style representation probe (``fast-hubert-probe``).

- ``upstreams``: every hidden layer of a frozen fast_hubert or stock hubert checkpoint, or plain
  fbank / MFCC features, as (layers + 1, frames, dim) per utterance.
- ``downstream``: the learnable softmax-weighted layer sum and the small BiLSTM CTC network.
- ``probe``: training on a labelled split, dev CER with the learned layer weights (the CLI).

It sits above ``clustering`` (its MFCC and model-family code) and ``finetuning`` (letters, CTC
decoding, error rates), and below ``recipes``, which may run it.
"""
