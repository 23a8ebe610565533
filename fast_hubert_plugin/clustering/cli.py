"""Shared bits of the clustering command lines."""
import argparse
import functools
import logging

from ..utils.errors import DataError


def exits_on_data_error(main):
    """Turn a DataError (bad file, with its fix) into a one-line ``error:`` exit instead of a traceback.

    Called with ``argv`` (from Python) it returns the command's result; as a console script
    (``argv`` None, run as ``sys.exit(main())``) it returns None so that success exits 0.
    """
    @functools.wraps(main)
    def wrapper(argv=None):
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("fast_hubert").setLevel(logging.INFO)
        logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search logs at DEBUG
        try:
            result = main(argv)
            return result if argv is not None else None
        except DataError as e:
            raise SystemExit(f"error: {e}") from e
    return wrapper


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout (the files read and written)."""
