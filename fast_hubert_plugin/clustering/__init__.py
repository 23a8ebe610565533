"""Clustering stage: dump frame features -> learn k-means -> apply it -> report.

Each step is a command line (``fast-hubert-dump``, ``fast-hubert-learn-kmeans``,
``fast-hubert-apply-kmeans``, ``fast-hubert-cluster-report``) over plain files:
memory-mapped feature shards (``feature_shards``), a centroids ``.npy`` and HuBERT-format label
files (``{split}.km`` + ``dict.km.txt``) that the pretraining task reads.
"""
