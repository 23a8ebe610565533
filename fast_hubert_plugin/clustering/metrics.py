"""Cluster quality: unit usage, and phone/cluster purity and PNMI against phone alignments.

Definitions of Hsu et al. 2021 (HuBERT, sec. IV-E), over frames: with the joint distribution
p(x = phone i, z = unit j) = count(i, j) / frames,
  phone purity   = E_z[ max_x p(x | z) ]  = sum_j max_i p(i, j)
  cluster purity = E_x[ max_z p(z | x) ]  = sum_i max_j p(i, j)
  PNMI           = I(x; z) / H(x)
Entropies in bits; perplexity = 2 ** entropy.
"""

from typing import Dict

import numpy as np


def contingency(phones: np.ndarray, units: np.ndarray, n_phones: int, n_units: int) -> np.ndarray:
    """Counts (n_phones, n_units) of frames with phone i and unit j; frames with phone < 0 are skipped."""
    phones, units = np.asarray(phones, dtype=np.int64), np.asarray(units, dtype=np.int64)
    keep = phones >= 0
    flat = phones[keep] * n_units + units[keep]
    return np.bincount(flat, minlength=n_phones * n_units).reshape(n_phones, n_units)


def entropy_bits(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64).ravel()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def usage_stats(unit_counts: np.ndarray) -> Dict[str, float]:
    """How evenly the units are used: counts (K,) -> used units, entropy (bits), perplexity."""
    counts = np.asarray(unit_counts, dtype=np.float64)
    total = counts.sum()
    h = entropy_bits(counts / total) if total > 0 else 0.0
    return {
        "n_units": int(counts.size),
        "used_units": int((counts > 0).sum()),
        "frames": int(total),
        "entropy_bits": h,
        "perplexity": float(2.0**h),
    }


def purity_metrics(counts: np.ndarray) -> Dict[str, float]:
    """Phone purity, cluster purity, PNMI (and the entropies behind it) from a (phones, units) count table."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no aligned frames: the phone alignments do not overlap the labels")
    p = counts / total
    px, pz = p.sum(1), p.sum(0)
    h_x, h_z, h_xz = entropy_bits(px), entropy_bits(pz), entropy_bits(p)
    mutual = h_x + h_z - h_xz
    return {
        "frames": int(total),
        "phone_purity": float(p.max(0).sum()),
        "cluster_purity": float(p.max(1).sum()),
        "pnmi": float(mutual / h_x) if h_x > 0 else float("nan"),
        "mutual_information_bits": float(mutual),
        "phone_entropy_bits": h_x,
        "unit_entropy_bits": h_z,
    }
