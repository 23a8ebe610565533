"""fast-hubert-cluster-report: how the k-means units are used, and how phonetic they are.

Reads a label file ({split}.km: one line per manifest row, space-separated unit ids) and writes
into OUT_DIR:

  {name}_usage.png    histogram of unit usage (units sorted by frequency)
  {name}_report.json  used units, unit entropy and perplexity; with phone alignments also
                      phone purity, cluster purity and PNMI (HuBERT paper, sec. IV-E)

Phone alignments (optional) are either a folder of TIMIT-style .phn files (--phn-dir, matched
to manifest rows by relative path or utterance id; needs --manifest) or a frame-aligned phone
label file with one line per manifest row (--phone-labels, at --phone-rate frames per second).
"""

import argparse
import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..data.manifest import read_manifest
from ..utils.atomic import atomic_path, atomic_write_text
from ..utils.cli import HelpFormatter, console_script
from ..utils.errors import DataError
from .metrics import contingency, purity_metrics, usage_stats
from .phones import PhnFinder, PhoneInventory, frame_phones_to_frames, read_phn, segments_to_frames


def read_units(path) -> List[np.ndarray]:
    if not os.path.isfile(path):
        raise DataError(path, "label file not found", "pass a {split}.km written by fast-hubert-apply-kmeans")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                rows.append(np.array(line.split(), dtype=np.int64))
            except ValueError:
                raise DataError(path, "units must be integers", "pass a k-means label file", line=n) from None
    return rows


def n_units_of(rows: List[np.ndarray], dict_path: Optional[str]) -> int:
    if dict_path:
        with open(dict_path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    return int(max((r.max() for r in rows if r.size), default=-1)) + 1


def plot_usage(counts: np.ndarray, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.sort(counts)[::-1]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(np.arange(len(order)), order / max(order.sum(), 1), width=1.0, color="tab:blue")
    ax.set_xlabel("unit rank (by frequency)")
    ax.set_ylabel("fraction of frames")
    ax.set_title(title)
    ax.set_xlim(-0.5, len(order) - 0.5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def phone_frames(
    rows: List[np.ndarray],
    label_rate: float,
    inventory: PhoneInventory,
    manifest_path=None,
    phn_dir=None,
    phone_labels=None,
    phone_rate=None,
) -> List[np.ndarray]:
    """Phone id of every label frame, per row (-1 = no phone)."""
    if phn_dir:
        if not manifest_path:
            raise SystemExit("--phn-dir needs --manifest to match rows to .phn files")
        manifest = read_manifest(manifest_path)
        if len(manifest) != len(rows):
            raise DataError(
                manifest_path,
                f"{len(manifest)} rows, the label file has {len(rows)} lines",
                "pass the manifest the labels were made from",
            )
        finder = PhnFinder(phn_dir)
        return [
            segments_to_frames(
                read_phn(finder.find(manifest.names[i], manifest.where(i))), len(r), label_rate, inventory
            )
            for i, r in enumerate(rows)
        ]
    if not phone_rate:
        raise SystemExit("--phone-labels needs --phone-rate (phone frames per second)")
    with open(phone_labels, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) != len(rows):
        raise DataError(
            phone_labels,
            f"{len(lines)} lines, the label file has {len(rows)}",
            "one line of phones per manifest row, in the same order",
        )
    return [
        frame_phones_to_frames(line.split(), len(r), label_rate, phone_rate, inventory) for line, r in zip(lines, rows)
    ]


def cluster_report(
    labels_path,
    out_dir,
    label_rate: float,
    dict_path=None,
    manifest_path=None,
    phn_dir=None,
    phone_labels=None,
    phone_rate=None,
) -> Dict:
    rows = read_units(labels_path)
    k = n_units_of(rows, dict_path)
    units = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if units.size and (units.min() < 0 or units.max() >= k):
        raise DataError(labels_path, f"units outside 0..{k - 1}", "pass the dictionary of the same k-means model")
    counts = np.bincount(units, minlength=k)
    report = {"labels": str(labels_path), "label_rate": label_rate, "rows": len(rows), **usage_stats(counts)}
    if phn_dir or phone_labels:
        inventory = PhoneInventory()
        phones = np.concatenate(
            phone_frames(rows, label_rate, inventory, manifest_path, phn_dir, phone_labels, phone_rate)
        )
        table = contingency(phones, units, len(inventory), k)
        report.update(purity_metrics(table))
        report["n_phones"] = len(inventory)
        report["unaligned_frames"] = int((phones < 0).sum())
    out_dir = Path(out_dir)
    name = Path(labels_path).name.replace(".", "_")
    report["usage_png"] = str(out_dir / f"{name}_usage.png")
    plot_usage(
        counts,
        report["usage_png"],
        f"{Path(labels_path).name}: {report['used_units']}/{k} units used, perplexity {report['perplexity']:.1f}",
    )
    atomic_write_text(out_dir / f"{name}_report.json", json.dumps(report, indent=1) + "\n")
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fast-hubert-cluster-report", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("labels", help="label file ({split}.km from fast-hubert-apply-kmeans)")
    p.add_argument("out_dir", help="folder for the PNG histogram and the JSON report")
    p.add_argument("--label-rate", type=float, required=True, help="labels per second of the label file (e.g. 50)")
    p.add_argument("--dict", dest="dict_path", help="dict.km.txt: number of units K (default: largest unit + 1)")
    p.add_argument("--manifest", help="the split's manifest (needed with --phn-dir)")
    p.add_argument("--phn-dir", help="folder of TIMIT-style .phn files (start end phone, in 16 kHz samples)")
    p.add_argument("--phone-labels", help="frame-aligned phones: one line per manifest row, space-separated")
    p.add_argument("--phone-rate", type=float, help="phone frames per second of --phone-labels (e.g. 100)")
    return p


@console_script("fast-hubert-cluster-report")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.phn_dir and args.phone_labels:
        raise SystemExit("give either --phn-dir or --phone-labels, not both")
    r = cluster_report(
        args.labels,
        args.out_dir,
        args.label_rate,
        args.dict_path,
        args.manifest,
        args.phn_dir,
        args.phone_labels,
        args.phone_rate,
    )
    line = (
        f"{args.labels}: {r['used_units']}/{r['n_units']} units used over {r['frames']} frames, "
        f"perplexity {r['perplexity']:.1f}"
    )
    if "pnmi" in r:
        line += (
            f"; phone purity {r['phone_purity']:.3f}, cluster purity {r['cluster_purity']:.3f}, "
            f"PNMI {r['pnmi']:.3f} ({r['n_phones']} phones)"
        )
    print(line + f"; wrote {r['usage_png']}")
    return r


if __name__ == "__main__":
    main()
