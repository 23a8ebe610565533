"""Console scripts of the features and data stages (``fast-hubert-cmvn``, ``fast-hubert-store-fbank``).

The clustering and fine-tuning stages keep their command lines next to their code
(``clustering/dump.py`` ...); every console script reports bad input the same way
(``utils/cli.py``).
"""
