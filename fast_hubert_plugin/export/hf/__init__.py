"""The files an export folder carries for ``trust_remote_code``.

Each module imports only torch, numpy and transformers (and its siblings, relatively), so the
exported model loads where neither fairseq nor this plugin is installed. The exporter copies
them next to ``config.json``.
"""
