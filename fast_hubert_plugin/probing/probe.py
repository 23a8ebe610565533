"""fast-hubert-probe: how much letter information a frozen model's layers carry (SUPERB-style ASR probe).

The upstream (``--upstream``) stays frozen: a fast_hubert checkpoint (pretrained or fine-tuned), a
stock fairseq ``hubert`` checkpoint, or plain input features (``fbank``, ``mfcc``) as the
no-pretraining baselines. Every system is probed identically: each of its hidden states (layer 0 =
the Transformer input, then every block; the features themselves for fbank / MFCC) is
standardised per dimension with the mean and std over the training split's frames (for fbank this
is global CMVN), a learnable softmax-weighted sum of them (weights start uniform) goes through
Linear(dim, --hidden) and a --lstm-layers BiLSTM (--hidden units per direction) to letter CTC.
Only the weights and the downstream are trained, on --train-split; the dev CER of --valid-split
is reported with the learned layer weights.

Reads, from --data (labels from --label-dir, default --data), what fast-hubert-prepare-ctc writes:
  {split}.tsv     fairseq manifest
  {split}.ltr     letters, '|' ending every word, one line per manifest row
  dict.ltr.txt    letter dictionary (the CTC blank is fairseq's '<s>')
Writes into --output-dir, each file atomically:
  probe.json      upstream, learned layer weights, dev CER / WER with counts, training curve, settings
  summary.txt     the same on one screen (also printed)
  hypo.word / ref.word / hypo.ltr / ref.ltr   dev hypotheses and references, one line per manifest row

Frame rates: each upstream keeps its own (fast_hubert 25 Hz, stock hubert 50 Hz, fbank / MFCC
100 Hz), as SUPERB does; CTC needs at least (letters + repeated adjacent letters) frames. Training
utterances with fewer frames are left out and counted in probe.json (``too_short``); dev
utterances are all decoded. Read speech has about 15 letters per second, so 25 Hz is enough.

Defaults and why: SUPERB's ASR probe is a 2-layer BiLSTM of 1024 units per direction trained for
200k updates at lr 1e-4 on 100 h; on a few hours of audio and 2 CPU cores that is neither
affordable nor useful, so the default downstream is 2 x 128 (about 0.7 M parameters: small enough
that the upstream's features, not the downstream, have to do the work), trained 1000 updates of
8 utterances with Adam at lr 1e-3 (the usual rate for a small LSTM; 1e-4 barely moves it in 1000
updates), SUPERB's dropout 0.2 and gradient clipping at 1. The dev CER is that of the final
model (no checkpoint selection on dev). Greedy CTC decoding, no language model.

Each BiLSTM direction is a unidirectional LSTM run on the valid frames of the padded batch (the
backward one on them reversed), so padding reaches no valid frame: a batched utterance decodes as
it does alone, and it trains several times faster on a CPU than a PackedSequence of unequal
lengths. Deterministic given --seed (initialisation, dropout, batch order) on the same machine and
number of threads. The upstream runs once per utterance, one utterance at a time (no padding reaches a
frame); its hidden states are kept in memory in float16 (utterances x frames x (layers + 1) x dim
x 2 bytes).
"""

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.labels import check_symbols_in_dictionary, dictionary_symbols, load_dictionary, read_label_lines
from ..data.manifest import read_manifest
from ..features.cmvn import CMVNAccumulator
from ..finetuning.ctc import ErrorCounts, ViterbiDecoder, ctc_blank, letters_to_text, units_to_letters
from ..utils.atomic import atomic_write_text
from ..utils.cli import HelpFormatter, add_no_resample_argument, console_script
from ..utils.errors import DataError
from .downstream import CtcProbe
from .upstreams import build_upstream, describe

logger = logging.getLogger("fast_hubert.probe")

PROG = "fast-hubert-probe"
DICT_NAME = "dict.ltr.txt"


@dataclass
class ProbeConfig:
    hidden: int = 128
    lstm_layers: int = 2
    dropout: float = 0.2
    updates: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    clip_norm: float = 1.0
    seed: int = 1
    log_interval: int = 10
    device: str = "cpu"


@dataclass
class Split:
    name: str
    manifest: str
    ltr: str
    letters: List[str]  # one line of letters per manifest row
    targets: List[torch.Tensor]  # letter ids (CTC targets) per row
    layers: List[torch.Tensor]  # (L + 1, T, D) float16 per row


def read_letters(
    label_dir: str, split: str, num_rows: int, manifest_path: str, dictionary, dict_path: str
) -> List[str]:
    """The split's letter lines, checked against the manifest (one per row) and the dictionary."""
    path = os.path.join(label_dir, f"{split}.ltr")
    lines = read_label_lines(
        path,
        num_rows,
        manifest_path,
        what="letter labels",
        missing_fix=f"run fast-hubert-prepare-ctc on the transcribed TSV of this split (--split {split}) "
        "into the --label-dir folder",
        mismatch_fix="write the letters and the manifest together with fast-hubert-prepare-ctc",
    )
    check_symbols_in_dictionary(
        lines,
        dictionary_symbols(dictionary),
        path,
        dict_path,
        "pass the dict.ltr.txt that fast-hubert-prepare-ctc wrote with the training split's "
        "letters (--write-dict on the training split, --dict-from for the others)",
        symbol="letter",
        empty_fix="remove the row from the manifest and the labels",
    )
    return lines


def ctc_min_frames(targets: torch.Tensor) -> int:
    """Fewest frames CTC needs for a target: one per unit plus a blank between equal neighbours."""
    return int(targets.numel() + (targets[1:] == targets[:-1]).sum())


def load_split(
    upstream, data: str, label_dir: str, split: str, dictionary, dict_path: str, progress: bool, resample: bool = True
) -> Split:
    manifest_path = os.path.join(data, f"{split}.tsv")
    manifest = read_manifest(manifest_path, resample=resample)
    manifest.check_files_exist()
    letters = read_letters(label_dir, split, len(manifest), manifest_path, dictionary, dict_path)
    targets = [torch.tensor([dictionary.index(c) for c in line.split()], dtype=torch.long) for line in letters]
    layers = []
    for i in tqdm(range(len(manifest)), desc=f"{upstream.kind} layers of {split}", disable=not progress):
        layers.append(upstream.layers(manifest.read_audio(i)).to(torch.float16))
    return Split(split, manifest_path, os.path.join(label_dir, f"{split}.ltr"), letters, targets, layers)


class LayerStandardiser:
    """Per-layer, per-dimension mean and std over the training frames (float64 sums)."""

    def __init__(self, layers: Sequence[torch.Tensor]):
        num_entries, _, dim = layers[0].shape
        accs = [CMVNAccumulator(dim) for _ in range(num_entries)]
        for x in layers:
            for layer, acc in enumerate(accs):
                acc.add(x[layer].float().numpy())
        stats = [acc.finalize() for acc in accs]
        self.mean = torch.from_numpy(np.stack([s.mean for s in stats]))[:, None]  # (L + 1, 1, D)
        self.inv_std = torch.from_numpy(np.stack([s.inv_std for s in stats]))[:, None]

    def batch(self, layers: Sequence[torch.Tensor], device) -> tuple:
        """Pad a list of (L + 1, T_i, D) into (L + 1, B, T, D), standardised; padding frames are 0."""
        lengths = torch.tensor([x.shape[1] for x in layers], dtype=torch.long)
        entries, _, dim = layers[0].shape
        out = torch.zeros(entries, len(layers), int(lengths.max()), dim)
        for b, x in enumerate(layers):
            out[:, b, : x.shape[1]] = (x.float() - self.mean) * self.inv_std
        return out.to(device), lengths


def train_probe(
    probe: CtcProbe,
    train: Split,
    keep: List[int],
    norm: LayerStandardiser,
    blank: int,
    cfg: ProbeConfig,
    progress: bool,
) -> List[Dict]:
    """Adam on the CTC loss (mean over the batch of the per-utterance loss / target length).
    Returns the training curve: mean loss over each --log-interval updates."""
    rng = np.random.RandomState(cfg.seed)
    optimizer = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    probe.train()
    order: List[int] = []
    curve, window = [], []
    for update in tqdm(range(1, cfg.updates + 1), desc="train probe", disable=not progress):
        if len(order) < cfg.batch_size:
            order += [keep[i] for i in rng.permutation(len(keep))]
        rows, order = order[: cfg.batch_size], order[cfg.batch_size :]
        x, lengths = norm.batch([train.layers[i] for i in rows], cfg.device)
        targets = [train.targets[i] for i in rows]
        lprobs = probe(x, lengths)
        loss = F.ctc_loss(
            lprobs.transpose(0, 1),
            torch.cat(targets).to(cfg.device),
            lengths,
            torch.tensor([t.numel() for t in targets]),
            blank=blank,
            reduction="mean",
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(probe.parameters(), cfg.clip_norm)
        optimizer.step()
        window.append(loss.item())
        if update % cfg.log_interval == 0 or update == cfg.updates:
            curve.append({"update": update, "loss": sum(window) / len(window)})
            logger.debug("update %d: ctc loss %.4f", update, curve[-1]["loss"])
            window = []
    return curve


@torch.inference_mode()
def decode(probe: CtcProbe, split: Split, norm: LayerStandardiser, dictionary, cfg: ProbeConfig) -> List[str]:
    """Greedy CTC letters for every row of the split, in manifest order."""
    probe.eval()
    decoder = ViterbiDecoder(dictionary)
    hyps = []
    for start in range(0, len(split.layers), cfg.batch_size):
        x, lengths = norm.batch(split.layers[start : start + cfg.batch_size], cfg.device)
        ids = decoder.decode(probe(x, lengths).cpu(), lengths.tolist())
        hyps += [units_to_letters(dictionary, row) for row in ids]
    return hyps


def run_probe(
    upstream_spec: str,
    data: str,
    output_dir: str,
    label_dir: Optional[str] = None,
    train_split: str = "train",
    valid_split: str = "valid",
    cfg: Optional[ProbeConfig] = None,
    progress: bool = True,
    resample: bool = True,
) -> Dict:
    """Probe one upstream; writes the outputs and returns probe.json's content plus, under
    ``"_upstream"`` and ``"_probe"``, the upstream object and the trained downstream."""
    cfg = cfg or ProbeConfig()
    label_dir = label_dir or data
    dict_path = os.path.join(label_dir, DICT_NAME)
    dictionary = load_dictionary(dict_path)
    upstream = build_upstream(upstream_spec, cfg.device)
    started = time.perf_counter()
    train = load_split(upstream, data, label_dir, train_split, dictionary, dict_path, progress, resample)
    valid = load_split(upstream, data, label_dir, valid_split, dictionary, dict_path, progress, resample)
    extract_s = time.perf_counter() - started

    keep = [i for i, (x, t) in enumerate(zip(train.layers, train.targets)) if x.shape[1] >= ctc_min_frames(t)]
    if not keep:
        raise DataError(
            train.ltr,
            f"no training utterance has enough {upstream.frame_rate:g} Hz frames for its letters",
            "probe on longer utterances, or on an upstream with a higher frame rate",
        )
    norm = LayerStandardiser([train.layers[i] for i in keep])
    torch.manual_seed(cfg.seed)
    probe = CtcProbe(
        upstream.num_layers + 1, upstream.dim, len(dictionary), cfg.hidden, cfg.lstm_layers, cfg.dropout
    ).to(cfg.device)
    initial = probe.featurizer.layer_weights().tolist()
    started = time.perf_counter()
    curve = train_probe(probe, train, keep, norm, ctc_blank(dictionary), cfg, progress)
    train_s = time.perf_counter() - started

    hyps = decode(probe, valid, norm, dictionary, cfg)
    hyp_words = [letters_to_text(h) for h in hyps]
    ref_words = [letters_to_text(r) for r in valid.letters]
    counts = ErrorCounts()
    for h, r in zip(hyp_words, ref_words):
        counts.add(h, r)
    weights = probe.featurizer.layer_weights().tolist()
    result = {
        "upstream": describe(upstream),
        "layer_weights": weights,
        "initial_layer_weights": initial,
        "best_layer": int(np.argmax(weights)),
        "dev": {
            "split": valid_split,
            "manifest": valid.manifest,
            "cer": counts.cer,
            "wer": counts.wer,
            "char_errors": counts.char_errors,
            "chars": counts.chars,
            "word_errors": counts.word_errors,
            "words": counts.words,
            "utterances": counts.utterances,
            "too_short": sum(x.shape[1] < ctc_min_frames(t) for x, t in zip(valid.layers, valid.targets)),
        },
        "train": {
            "split": train_split,
            "manifest": train.manifest,
            "utterances": len(keep),
            "too_short": len(train.layers) - len(keep),
            "frames": sum(train.layers[i].shape[1] for i in keep),
            "curve": curve,
        },
        "downstream": {
            "params": sum(p.numel() for p in probe.parameters()),
            "vocab": len(dictionary),
            "architecture": f"weighted sum of {upstream.num_layers + 1} -> Linear({upstream.dim}, {cfg.hidden})"
            f" -> BiLSTM {cfg.lstm_layers} x {cfg.hidden} -> Linear({2 * cfg.hidden}, "
            f"{len(dictionary)}) -> CTC",
        },
        "config": vars(cfg).copy(),
        "seconds": {"extract": round(extract_s, 2), "train": round(train_s, 2)},
    }
    write_outputs(output_dir, result, hyps, valid.letters, hyp_words, ref_words)
    return dict(result, _upstream=upstream, _probe=probe)


def summary_text(r: Dict) -> str:
    up, dev, tr, cfg = r["upstream"], r["dev"], r["train"], r["config"]
    source = up["kind"] if up["kind"] in ("fbank", "mfcc") else f"{up['kind']} {os.path.basename(up['source'])}"
    curve = tr["curve"]
    lines = [
        f"probe of {source}: {up['num_layers']} block(s) + input, {up['dim']}-dim, {up['frame_rate']:g} Hz",
        f"downstream: {r['downstream']['architecture']} ({r['downstream']['params'] / 1e6:.2f} M params)",
        f"trained: {cfg['updates']} updates x {cfg['batch_size']} utterances, Adam lr {cfg['lr']:g}, seed {cfg['seed']}; "
        f"{tr['utterances']} {tr['split']} utterances ({tr['too_short']} too short for CTC)",
        f"train CTC loss: {curve[0]['loss']:.3f} (first {curve[0]['update']} updates) -> {curve[-1]['loss']:.3f} "
        f"(at update {curve[-1]['update']})",
        f"dev {dev['split']}: CER {dev['cer']:.2f} % ({dev['char_errors']}/{dev['chars']} chars), "
        f"WER {dev['wer']:.2f} % ({dev['word_errors']}/{dev['words']} words), {dev['utterances']} utterances",
        "learned layer weights"
        + (" (0: Transformer input, L: block L):" if up["num_layers"] else " (one layer: the features themselves):"),
    ]
    for layer, w in enumerate(r["layer_weights"]):
        mark = " <- largest" if layer == r["best_layer"] and len(r["layer_weights"]) > 1 else ""
        lines.append(f"  layer {layer:2d}  {w:.3f}  {'#' * round(w * 40)}{mark}")
    return "\n".join(lines) + "\n"


def write_outputs(
    output_dir: str, result: Dict, hyps: List[str], refs: List[str], hyp_words: List[str], ref_words: List[str]
) -> None:
    os.makedirs(output_dir, exist_ok=True)

    def lines(items):
        return "".join(f"{x}\n" for x in items)

    atomic_write_text(os.path.join(output_dir, "hypo.ltr"), lines(hyps))
    atomic_write_text(os.path.join(output_dir, "ref.ltr"), lines(refs))
    atomic_write_text(os.path.join(output_dir, "hypo.word"), lines(hyp_words))
    atomic_write_text(os.path.join(output_dir, "ref.word"), lines(ref_words))
    atomic_write_text(os.path.join(output_dir, "summary.txt"), summary_text(result))
    atomic_write_text(os.path.join(output_dir, "probe.json"), json.dumps(result, indent=1) + "\n")


def build_parser() -> argparse.ArgumentParser:
    d = ProbeConfig()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument(
        "--upstream",
        required=True,
        help="fbank, mfcc, or the path of a fast_hubert (pretrained or fine-tuned) or stock fairseq hubert checkpoint",
    )
    p.add_argument("--data", required=True, help="folder with {split}.tsv (and the labels, unless --label-dir)")
    p.add_argument("--label-dir", default=None, help="folder with {split}.ltr and dict.ltr.txt (default: --data)")
    p.add_argument("--train-split", default="train", help="split the probe is trained on (default: %(default)s)")
    p.add_argument("--valid-split", default="valid", help="split whose CER is reported (default: %(default)s)")
    p.add_argument("--output-dir", required=True, help="where probe.json, summary.txt and the hypotheses go")
    p.add_argument(
        "--hidden",
        type=int,
        default=d.hidden,
        help="BiLSTM units per direction and input projection size (default: %(default)s; SUPERB: 1024)",
    )
    p.add_argument("--lstm-layers", type=int, default=d.lstm_layers, help="BiLSTM layers (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=d.dropout, help="dropout (default: %(default)s, as SUPERB)")
    p.add_argument("--updates", type=int, default=d.updates, help="training updates (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="utterances per update (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--clip-norm", type=float, default=d.clip_norm, help="gradient norm clipping (default: %(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="seed of initialisation, dropout and batch order (default: %(default)s)",
    )
    p.add_argument(
        "--log-interval",
        type=int,
        default=d.log_interval,
        help="updates per training-curve point (default: %(default)s)",
    )
    p.add_argument("--device", default=d.device, help="torch device (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_no_resample_argument(p)
    return p


def positive(value, name: str) -> None:
    if not value > 0:
        raise SystemExit(f"--{name} must be positive, got {value}")


@console_script(PROG)
def main(argv=None) -> Dict:
    args = build_parser().parse_args(argv)
    for name in ("hidden", "lstm_layers", "updates", "batch_size", "lr", "log_interval"):
        positive(getattr(args, name), name.replace("_", "-"))
    cfg = ProbeConfig(
        hidden=args.hidden,
        lstm_layers=args.lstm_layers,
        dropout=args.dropout,
        updates=args.updates,
        batch_size=args.batch_size,
        lr=args.lr,
        clip_norm=args.clip_norm,
        seed=args.seed,
        log_interval=args.log_interval,
        device=args.device,
    )
    result = run_probe(
        args.upstream,
        args.data,
        args.output_dir,
        args.label_dir,
        args.train_split,
        args.valid_split,
        cfg,
        progress=not args.quiet,
        resample=not args.no_resample,
    )
    print(summary_text(result), end="")
    return {k: v for k, v in result.items() if not k.startswith("_")}


if __name__ == "__main__":
    main()
