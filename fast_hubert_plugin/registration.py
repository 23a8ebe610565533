"""Registering the plugin with fairseq.

fairseq reads its registries (tasks, models, criterions, optimizers) after importing the module named
by ``common.user_dir``, and skips that import when the module is already loaded. So the plugin
registers whenever both it and fairseq are loaded, in either order: ``import fast_hubert_plugin``
registers at once when fairseq is loaded, and otherwise the moment fairseq's import completes (a
finder on ``sys.meta_path`` wraps that one import). Until then nothing of fairseq is imported and
nothing is patched: ``fast_hubert_plugin.features`` and ``.config`` load in a fraction of a second.

Every subpackage whose modules import fairseq imports ``fairseq`` before any of its own modules
(the layout test checks it), so fairseq is never loaded half-way through one of our modules, where
registering would meet that module half-initialised.
"""

import importlib.abc
import sys

from .utils.root_logger import root_logger_kept

_registered = False


def register() -> None:
    """Import fairseq (keeping the root logger as it was), apply ``fairseq_patches`` and import the
    modules that register with fairseq. Runs once; later calls return at once."""
    global _registered
    if _registered:
        return
    _registered = True  # also while it runs: the imports below come back here
    try:
        with root_logger_kept():  # fairseq's import would set the root logger to DEBUG (utils/root_logger.py)
            import fairseq  # noqa: F401

            from .fairseq_patches.checkpoint_copy import make_checkpoint_copies_atomic
            from .fairseq_patches.checkpoint_safety import allow_fairseq_checkpoints
            from .fairseq_patches.torchrun_on_cpu import allow_torchrun_on_cpu

            allow_fairseq_checkpoints()
            make_checkpoint_copies_atomic()
            allow_torchrun_on_cpu()
            from . import criterions, models, optim, tasks  # noqa: F401  (their decorators register)
    except BaseException:
        _registered = False
        raise


def register_with_fairseq() -> None:
    """Register now if fairseq is loaded, else when it is imported."""
    if "fairseq" in sys.modules:
        register()
    elif not any(isinstance(finder, _RegisterAfterFairseqImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterFairseqImport())


class _RegisterAfterFairseqImport(importlib.abc.MetaPathFinder):
    """Finds ``fairseq`` with the finders after it and wraps its loader, so that ``register()`` runs
    when the package has executed; any other name is left to the other finders."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "fairseq":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader, finder):
        self._loader, self._finder = loader, finder

    def __getattr__(self, name):  # resources, source, is_package ... as the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader
        with root_logger_kept():
            self._loader.exec_module(module)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        register()
