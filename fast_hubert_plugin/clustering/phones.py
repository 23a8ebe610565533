"""Phone alignments for cluster reports, mapped onto the frames of a label file.

Two sources:
- TIMIT-style ``.phn`` files (``start_sample end_sample phone`` per line, 16 kHz), one per
  utterance, found in a folder at the manifest row's relative path with the suffix ``.phn``
  (or ``.PHN``), or else by the utterance id (file stem) anywhere below the folder;
- a frame-aligned phone label file: one line per manifest row, space-separated phone symbols
  at ``phone_rate`` frames per second.
Label frame ``i`` at ``label_rate`` is given the phone at its centre, ``(i + 0.5) / label_rate``
seconds; frames no phone covers get -1 and are left out of the metrics.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import DataError

Segment = Tuple[int, int, str]  # start sample, end sample (exclusive), phone


class PhoneInventory:
    """Phone symbol <-> integer id, grown as phones are seen."""

    def __init__(self):
        self.ids: Dict[str, int] = {}

    def id(self, phone: str) -> int:
        return self.ids.setdefault(phone, len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def symbols(self) -> List[str]:
        return sorted(self.ids, key=self.ids.get)


def read_phn(path) -> List[Segment]:
    fix = "each line must be 'start_sample end_sample phone' (TIMIT .phn format)"
    segments = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                start, end, phone = int(parts[0]), int(parts[1]), parts[2]
            except (IndexError, ValueError):
                raise DataError(path, f"cannot parse {line.strip()!r}", fix, line=n) from None
            if end < start:
                raise DataError(path, f"segment ends ({end}) before it starts ({start})", fix, line=n)
            segments.append((start, end, phone))
    return segments


def segments_to_frames(
    segments: Sequence[Segment], num_frames: int, label_rate: float, inventory: PhoneInventory, sample_rate: int = 16000
) -> np.ndarray:
    """Phone id of each of ``num_frames`` label frames (-1 where no segment covers the centre)."""
    out = np.full(num_frames, -1, dtype=np.int64)
    centres = (np.arange(num_frames) + 0.5) / label_rate * sample_rate
    for start, end, phone in segments:
        a, b = np.searchsorted(centres, [start, end], side="left")
        out[a:b] = inventory.id(phone)
    return out


def frame_phones_to_frames(
    phones: Sequence[str], num_frames: int, label_rate: float, phone_rate: float, inventory: PhoneInventory
) -> np.ndarray:
    """Resample frame-aligned phones (at phone_rate) onto label frames by their centres."""
    ids = np.array([inventory.id(p) for p in phones], dtype=np.int64)
    idx = np.floor((np.arange(num_frames) + 0.5) / label_rate * phone_rate).astype(np.int64)
    out = np.full(num_frames, -1, dtype=np.int64)
    ok = idx < len(ids)
    out[ok] = ids[idx[ok]]
    return out


class PhnFinder:
    """Locates the ``.phn`` file of a manifest row below ``phn_dir``."""

    def __init__(self, phn_dir):
        self.dir = Path(phn_dir)
        if not self.dir.is_dir():
            raise DataError(self.dir, "phone alignment folder not found", "pass the folder holding the .phn files")
        self._by_stem: Optional[Dict[str, List[Path]]] = None

    def find(self, rel_path: str, where: str) -> Path:
        rel = Path(rel_path)
        for suffix in (".phn", ".PHN"):
            p = self.dir / rel.with_suffix(suffix)
            if p.is_file():
                return p
        if self._by_stem is None:
            self._by_stem = {}
            for p in list(self.dir.rglob("*.phn")) + list(self.dir.rglob("*.PHN")):
                self._by_stem.setdefault(p.stem, []).append(p)
        hits = self._by_stem.get(rel.stem, [])
        if len(hits) == 1:
            return hits[0]
        problem = (
            f"no .phn file for {rel_path} ({where})"
            if not hits
            else f"{len(hits)} .phn files named {rel.stem} for {rel_path} ({where})"
        )
        raise DataError(
            self.dir, problem, "mirror the manifest's relative paths below the folder (x/y.flac -> x/y.phn)"
        )
