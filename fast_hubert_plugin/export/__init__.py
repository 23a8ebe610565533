"""Export fast-hubert checkpoints to Hugging Face transformers folders (``fast-hubert-export``).

Needs the ``hf`` extra (``pip install .[hf]``: transformers, safetensors). The folder it writes
loads with ``AutoModel`` / ``AutoModelForCTC`` / ``AutoFeatureExtractor`` / ``pipeline`` and
``trust_remote_code=True`` where neither fairseq nor this plugin is installed.
"""

import importlib.util
import sys


def hide_unloadable_torchaudio() -> None:
    """Let transformers treat an installed-but-unloadable torchaudio as absent.

    fairseq declares torchaudio, and the version pip picks beside CPU torch raises OSError on import
    (see README, Install). transformers imports torchaudio whenever it is installed (audio utils,
    processors, pipelines). Its cached availability check is primed to False while torchaudio is
    masked in ``sys.modules``; the mask is removed again, so nothing else in the process changes.
    A torchaudio that loads is left alone.
    """
    if sys.modules.get("torchaudio") is not None or importlib.util.find_spec("torchaudio") is None:
        return
    try:
        import torchaudio  # noqa: F401

        return
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
    from transformers.utils import import_utils

    import_utils.is_torchaudio_available.cache_clear()
    sys.modules["torchaudio"] = None
    try:
        import_utils.is_torchaudio_available()  # cached: False
    finally:
        del sys.modules["torchaudio"]


hide_unloadable_torchaudio()  # before any module of this package imports the rest of transformers
import fairseq  # noqa: E402, F401  (before this package's modules: its import registers the plugin, registration.py)
