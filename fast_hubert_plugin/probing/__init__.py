"""SUPERB-style representation probe (``fast-hubert-probe``).

- ``upstreams``: which ``--upstream`` names which frame-feature source (``models/frame_features``):
  every hidden layer of a frozen fast_hubert or stock hubert checkpoint, or plain fbank / MFCC
  features, as (layers + 1, frames, dim) per utterance.
- ``downstream``: the learnable softmax-weighted layer sum and the small BiLSTM CTC network.
- ``probe``: training on a labelled split, dev CER with the learned layer weights (the CLI).

It sits above ``models`` (the frame features) and ``finetuning`` (letters, CTC decoding, error
rates), beside ``clustering`` (which it does not import), and below ``recipes``, which may run it.
"""
