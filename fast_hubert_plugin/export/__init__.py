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
    processors, pipelines); marking it missing in ``sys.modules`` makes ``find_spec`` return None.
    A torchaudio that loads is left alone.
    """
    if "torchaudio" in sys.modules or importlib.util.find_spec("torchaudio") is None:
        return
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio"] = None


hide_unloadable_torchaudio()  # before any module of this package imports transformers
