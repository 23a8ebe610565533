"""Errors that tell the user which file and line is wrong and what to do about it."""

from typing import Optional


class DataError(ValueError):
    """Bad input data: names the file (and line, 1-based) and the fix."""

    def __init__(self, path, problem: str, fix: str, line: Optional[int] = None):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}. Fix: {fix}")
        self.path, self.line, self.problem, self.fix = str(path), line, problem, fix
