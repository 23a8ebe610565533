import fairseq  # noqa: F401  (before this package's modules: its import registers the plugin, registration.py)
