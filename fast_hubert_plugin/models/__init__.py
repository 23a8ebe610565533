from .fast_hubert import FastHubertConfig, FastHubertModel  # noqa: F401
from . import official_names  # noqa: F401
