"""Keep the root logger as the application set it while fairseq's modules are imported.

fairseq's ``models/wav2vec/wav2vec2_classification.py`` calls ``logging.basicConfig(level=logging.DEBUG)``
when it is imported (fairseq imports every model module at once): in a process that has not configured
logging yet, the root logger then prints every library's DEBUG records (matplotlib's font manager alone
writes hundreds of lines). fairseq's own command-line tools configure logging before that import, so
there it changes nothing.
"""

import contextlib
import logging


@contextlib.contextmanager
def root_logger_kept():
    """Restore the root logger's level and handlers on exit, whatever the imports inside did to them."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
