"""Make fairseq's checkpoint copies atomic, so that a job killed while saving can resume.

fairseq writes a checkpoint once (``checkpoint_E_U.pt``, atomically: ``.tmp`` then rename) and
then copies it onto the others, ``checkpoint_last.pt`` included, with ``PathManager.copy``:
``shutil.copyfile`` straight onto the destination. A job killed during that copy (preemption
while saving) leaves a truncated ``checkpoint_last.pt``, and the restarted job cannot load it.
Here local copies go to a hidden temporary beside the destination, renamed onto it when complete:
the destination is always either the previous checkpoint or the new one.
"""

import shutil

from fairseq.file_io import PathManager

from ..utils.atomic import atomic_path

_original_copy = PathManager.copy


def atomic_copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
    if PathManager.path_requires_pathmanager(dst_path) or (not overwrite and PathManager.exists(dst_path)):
        return _original_copy(src_path, dst_path, overwrite)
    with atomic_path(dst_path) as tmp:
        shutil.copyfile(src_path, tmp)
    return True


def make_checkpoint_copies_atomic() -> None:
    PathManager.copy = staticmethod(atomic_copy)
