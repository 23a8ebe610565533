"""Frame-level features to cluster: MFCC, fbank, or the output of one Transformer layer.

The features themselves come from :mod:`~..models.frame_features`; an extractor adds what a dump
needs: ``name``, ``dim``, ``frame_rate``, ``num_frames(n)`` (frames for an utterance of ``n``
samples, known before extraction so that shards can be preallocated), ``describe()`` (what goes
into the shard's ``.json``) and ``features_of_rows(manifest, rows)``: ``(row, (frames, dim) float32)``
for each row, input features computed one row at a time in ``workers`` processes, a model's layer in
batches of about ``batch_seconds`` of audio (rows longest first, so not in row order). The dump and
the on-the-fly labelling read their frames from it.
"""

import argparse
import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..data.batching import length_batches
from ..data.manifest import AudioManifest
from ..data.row_features import row_features
from ..features.cmvn import GlobalCMVN
from ..features.kaldi_fbank import SAMPLE_RATE
from ..models.frame_features import Chunking, InputFeatures, load_model_features
from ..utils.cli import add_no_resample_argument
from ..utils.errors import DataError

RowFeatures = Iterator[Tuple[int, np.ndarray]]

logger = logging.getLogger("fast_hubert.clustering")


class InputExtractor:
    """39-dim MFCC + deltas (HuBERT iteration 1) or 80-dim log-Mel fbank, both at 100 Hz; fbank
    optionally normalised with global CMVN stats."""

    def __init__(self, name: str, cmvn_path: Optional[str] = None):
        self.features = InputFeatures(name)
        self.name, self.dim, self.frame_rate = name, self.features.dim, self.features.frame_rate
        self.cmvn_path = str(cmvn_path) if cmvn_path else None
        self.cmvn = GlobalCMVN.load(cmvn_path, expected_dim=self.dim) if cmvn_path else None

    def num_frames(self, num_samples: int) -> int:
        return self.features.num_frames(num_samples)

    def describe(self) -> Dict:
        meta = {"feature": self.name, "dim": self.dim, "frame_rate": self.frame_rate}
        return dict(meta, cmvn=self.cmvn_path) if self.name == "fbank" else meta

    def compute(self, wav: np.ndarray) -> np.ndarray:
        feats = self.features.compute(wav)
        return self.cmvn(feats) if self.cmvn is not None else feats

    def features_of_rows(self, manifest: AudioManifest, rows: Sequence[int], workers: int = 1) -> RowFeatures:
        """In row order, computed in ``workers`` processes."""
        return zip(rows, row_features(self.compute, manifest, rows, workers))


class LayerExtractor:
    """Hidden state ``layer`` of a fast_hubert (pretrained or fine-tuned) or stock fairseq hubert
    checkpoint: layers 0..N of fast_hubert (0: the Transformer input), 1..N of hubert, at the
    model's own frame rate (25 Hz for the 40 ms fast_hubert model, 50 Hz for hubert)."""

    name = "layer"

    def __init__(
        self, checkpoint: str, layer: int, device: str = "cpu", batch_seconds: float = 100.0, chunking=Chunking()
    ):
        self.checkpoint, self.layer, self.device = str(checkpoint), int(layer), device
        self.batch_seconds, self.chunking = batch_seconds, chunking
        self.features = load_model_features(self.checkpoint, device)
        self.family, self.model = self.features.kind, self.features.model
        self.dim, self.frame_rate = self.features.dim, self.features.frame_rate
        lowest, n_layers = self.features.first_layer, self.features.num_layers
        if not lowest <= self.layer <= n_layers:
            raise DataError(
                self.checkpoint,
                f"layer {self.layer} does not exist: this {self.family} model has {n_layers} Transformer layers",
                f"use --layer between {lowest} and {n_layers}",
            )

    def num_frames(self, num_samples: int) -> int:
        return self.features.num_frames(num_samples)

    def describe(self) -> Dict:
        return {
            "feature": self.name,
            "dim": self.dim,
            "frame_rate": self.frame_rate,
            "checkpoint": self.checkpoint,
            "layer": self.layer,
            "model": self.family,
            "chunk_seconds": self.chunking.seconds,
            "chunk_context_seconds": self.chunking.context_seconds,
        }

    def extract(self, wavs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Features of a batch of waveforms: list of (num_frames(len(wav)), dim) float32."""
        return self.features.layer_batch(wavs, self.layer, self.chunking)

    def features_of_rows(self, manifest: AudioManifest, rows: Sequence[int], workers: int = 1) -> RowFeatures:
        """In batches of about ``batch_seconds`` of padded audio, longest rows first (``workers`` unused:
        the model is the work)."""
        sizes = [manifest.num_samples[i] for i in rows]
        for batch in length_batches(sizes, int(self.batch_seconds * SAMPLE_RATE)):
            batch_rows = [rows[k] for k in batch]
            yield from zip(batch_rows, self.extract([manifest.read_audio(i) for i in batch_rows]))


@dataclass(frozen=True)
class FeatureSource:
    """Which frame features, and how a model computes them: the same for fast-hubert-dump and
    fast-hubert-label, so that labels computed on the fly are those of a dump."""

    feature: str  # mfcc, fbank or layer
    cmvn: Optional[str] = None  # fbank: CMVN stats to normalise with
    checkpoint: Optional[str] = None  # layer: the model
    layer: Optional[int] = None
    device: str = "cpu"
    batch_seconds: float = 100.0  # layer: padded audio per forward pass
    chunking: Chunking = Chunking()  # layer: long utterances in pieces
    workers: int = 1  # mfcc/fbank: processes
    resample: bool = True  # audio that is not 16 kHz mono: converted on load (False: refused)

    def settings(self) -> Dict:
        """What decides the features' values, as recorded in a dump's or a labelling's ``.json``."""
        is_layer = self.feature == "layer"
        return {
            "feature": self.feature,
            "cmvn": os.path.abspath(self.cmvn) if self.cmvn and self.feature == "fbank" else None,
            "checkpoint": os.path.abspath(self.checkpoint) if self.checkpoint and is_layer else None,
            "layer": self.layer if is_layer else None,
            "chunk_seconds": self.chunking.seconds if is_layer else None,
            "chunk_context_seconds": self.chunking.context_seconds if is_layer else None,
        }


def build_extractor(source: FeatureSource):
    """The extractor of ``source``: loads the checkpoint of a layer."""
    if source.feature in ("mfcc", "fbank"):
        return InputExtractor(source.feature, source.cmvn if source.feature == "fbank" else None)
    if source.feature == "layer":
        if source.checkpoint is None or source.layer is None:
            raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
        return LayerExtractor(source.checkpoint, source.layer, source.device, source.batch_seconds, source.chunking)
    raise SystemExit(f"unknown --feature {source.feature!r}: choose mfcc, fbank or layer")


def check_row_frames(manifest: AudioManifest, row: int, feats: np.ndarray, expected: int) -> None:
    """The frames computed for a row are as many as its manifest num_samples promise."""
    if feats.shape[0] != expected:
        raise DataError(
            manifest.audio_path(row),
            f"{feats.shape[0]} frames, expected {expected} from num_samples in {manifest.where(row)}",
            "regenerate the manifest from the audio",
        )


def add_source_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    """The features and the shard of the manifest to ``verb``: the same flags for fast-hubert-dump and
    fast-hubert-label, so that labels computed on the fly are those of the dump."""
    p.add_argument(
        "--feature",
        required=True,
        choices=["mfcc", "fbank", "layer"],
        help="which frame features (fbank precomputed for training: fast-hubert-store-fbank)",
    )
    p.add_argument("--split", help="name used in the output file names (default: the manifest's file stem)")
    p.add_argument("--cmvn", help="fbank only: CMVN stats (.npz from fast-hubert-cmvn) to normalise with")
    p.add_argument("--checkpoint", help="layer only: fairseq checkpoint (fast_hubert or stock hubert)")
    p.add_argument("--layer", type=int, help="layer only: 1-based Transformer block whose output is used")
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=100.0,
        help="layer only: seconds of (padded) audio per forward pass (fast_hubert; hubert runs one "
        "utterance at a time) (default: %(default)s)",
    )
    p.add_argument(
        "--chunk-seconds",
        type=float,
        default=Chunking.seconds,
        help="layer only: an utterance longer than this runs in pieces of this many seconds, bounding memory "
        "(fairseq's max_chunk is 100 s) (default: %(default)s)",
    )
    p.add_argument(
        "--chunk-context-seconds",
        type=float,
        default=Chunking.context_seconds,
        help="layer only: audio each piece also sees on either side, its frames dropped (default: %(default)s)",
    )
    p.add_argument("--device", default=None, help="layer only: torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--nshard", type=int, default=1, help="number of shards the manifest is split into (default: %(default)s)"
    )
    p.add_argument(
        "--rank",
        type=int,
        default=0,
        help=f"which shard to {verb} (0-based); run one job per rank (default: %(default)s)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="mfcc/fbank: processes computing features (default: %(default)s)"
    )
    add_no_resample_argument(p)


def source_options(args: argparse.Namespace) -> Tuple[FeatureSource, Dict]:
    """The features and the shard (``split``, ``nshard``, ``rank``) :func:`add_source_arguments` gives, checked."""
    if not 0 <= args.rank < args.nshard:
        raise SystemExit(f"--rank must be in [0, {args.nshard}), got {args.rank}")
    if args.feature != "fbank" and args.cmvn:
        raise SystemExit("--cmvn applies to --feature fbank only")
    if args.feature == "layer" and (args.checkpoint is None or args.layer is None):
        raise SystemExit("--feature layer needs --checkpoint CKPT and --layer L")
    if args.chunk_seconds <= 0 or args.chunk_context_seconds < 0:
        raise SystemExit("--chunk-seconds must be > 0 and --chunk-context-seconds >= 0")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    source = FeatureSource(
        args.feature,
        args.cmvn,
        args.checkpoint,
        args.layer,
        args.device,
        args.batch_seconds,
        Chunking(args.chunk_seconds, args.chunk_context_seconds),
        args.workers,
        not args.no_resample,
    )
    return source, {"split": args.split, "nshard": args.nshard, "rank": args.rank}
