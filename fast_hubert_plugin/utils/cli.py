"""One error style for every console script.

Bad input stops a command with one line on stderr, ``{prog}: error: {file}, line {n}: {problem}.
Fix: {fix}`` (argparse's own format), exit status 2 and no traceback. Called from Python with
``argv``, ``main`` raises :class:`CommandError` (a ``SystemExit`` whose text is that message).
"""

import argparse
import functools
import logging
import sys

from .errors import DataError


class CommandError(SystemExit):
    """A console script stopped on bad input: exit status 2, ``str()`` is the message."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout (the files read and written)."""


def console_script(prog: str):
    """Decorate ``main(argv=None)``: DataError and ``SystemExit("message")`` become the one-line error.

    As a console script (``argv`` None, run as ``sys.exit(main())``) it returns None so that
    success exits 0; called with ``argv`` it returns the command's result.
    """

    def decorate(main):
        @functools.wraps(main)
        def wrapper(argv=None):
            logging.basicConfig(level=logging.WARNING, format="%(message)s")
            logging.getLogger("fast_hubert").setLevel(logging.INFO)
            logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font search logs at DEBUG
            try:
                result = main(argv)
            except CommandError:
                raise
            except DataError as e:
                fail(prog, str(e))
            except SystemExit as e:
                if isinstance(e.code, str):  # raise SystemExit("what to change"): a usage error
                    fail(prog, e.code)
                raise  # argparse's own errors (already printed, status 2) and --help
            return result if argv is not None else None

        return wrapper

    return decorate


def add_no_resample_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-resample``: the command-line twin of ``task.resample_audio=false``, for every command that reads
    a manifest's audio (``args.no_resample``)."""
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="refuse audio that is not 16 kHz mono, naming the file and the manifest line (by default it is "
        "down-mixed and resampled on load, as task.resample_audio=true does in training)",
    )


def fail(prog: str, message: str) -> None:
    message = " ".join(message.split())  # one line
    if message.startswith("error: "):
        message = message[len("error: ") :]
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise CommandError(message) from None
