"""Values of config keys written as text: the one reader, for the model and for whatever inspects its config."""

import ast
from typing import List


def parse_int_list(text: str, name: str) -> List[int]:
    """A config key's list of integers as the model reads it: '[4,12]', '4,12', '(4,)' or '4' -> [4, 12] / [4];
    '' -> []. ``name`` (e.g. "supervised_layers") goes into the ValueError for anything else."""
    try:
        values = ast.literal_eval(text) if text.strip() else []
    except (ValueError, SyntaxError):
        raise ValueError(f"{name}={text!r} is not a list of integers, e.g. '[4,12]'") from None
    if isinstance(values, int):
        values = [values]
    if not all(isinstance(v, int) for v in values):
        raise ValueError(f"{name}={text!r} is not a list of integers, e.g. '[4,12]'")
    return list(values)
