"""What several benchmarks share; no benchmark itself.

- where records and speech are, and the lines a record is made of (``Log``, ``reproduce``);
- the speed benchmarks' training data: real speech with random unit labels (the cost of a step does not
  depend on the label values);
- the quality benchmarks' workspace, run names, CPU-cost calibration and baseline probes:
  quality_vs_compute.py, recipe_sweep.py, label_alignment.py and stock_control.py share one work folder
  and reuse each other's runs by name.

The plugin is imported inside the functions that use it: ``train_step_speed.py --official`` must run
without it (the official Fast-HuBERT code registers fairseq names that the plugin registers too).
"""

import importlib.util
import math
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# The speed benchmarks' speech folder: $FAST_HUBERT_SPEECH_DIR, else the project's beside the repository.
SPEECH_DIR = os.environ.get("FAST_HUBERT_SPEECH_DIR", str(REPO.parent / "shared" / "speech"))


def speech_folder():
    """The demo's module that chooses and reads the speech folder (``examples/speech_folder.py``), loaded
    from its file: the demo and the benchmarks choose their speech one way, without editing sys.path."""
    spec = importlib.util.spec_from_file_location("speech_folder", REPO / "examples" / "speech_folder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QUALITY_WORK_DIR = REPO / "quality_vs_compute_work"
LABEL_RATE = 50  # HuBERT's label rate; fast_hubert uses every second label with its 25 Hz frames


# ----------------------------------------------------------------------------- records
class Log:
    """Prints each message at once and keeps it for the record's log."""

    def __init__(self):
        self.lines: List[str] = []

    def __call__(self, msg: str) -> None:
        print(msg, flush=True)
        self.lines.append(msg)


def reproduce(script: str, argv: Optional[Sequence[str]]) -> str:
    """The command that made a record: ``python benchmarks/SCRIPT`` with ``argv`` (default sys.argv's)."""
    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{script} {' '.join(shlex.quote(a) for a in args)}".strip()


def machine(threads: Optional[int] = 1) -> str:
    """The CPU with its family and model, and the kernels torch picks: a virtualised "AMD EPYC" hides its
    generation, and a probe's last digit can differ between generations (other SIMD kernels)."""
    import torch

    from fast_hubert_plugin.utils.machine import cpu_fields

    fields = cpu_fields()
    cpu = (
        f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, "
        f"torch kernels {torch.backends.cpu.get_cpu_capability()})"
    )
    per_run = f" ({threads} thread{'s' if threads > 1 else ''} per run)" if threads else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}{per_run}, Python {platform.python_version()}"


# ----------------------------------------------------------------------------- the official code
# The official Fast-HuBERT code (github yanghaha0908/FastHuBERT, MIT; fetched, never committed) is a fairseq
# user dir: the benchmarks that run it take a folder OFFICIAL holding it as OFFICIAL/fasthubert_official.
OFFICIAL_PACKAGE = "fasthubert_official"

# The model section of fairseq's examples/hubert/config/pretrain/hubert_base_librispeech.yaml, label_rate
# (???) set to 50 Hz; the official Base YAML (config/pretrain/fasthubert_base_lirbispeech.yaml) copies it and
# adds its subsampler's kernels.
HUBERT_BASE_MODEL = dict(
    label_rate=50,
    skip_masked=False,
    skip_nomask=False,
    mask_prob=0.80,
    extractor_mode="default",
    conv_feature_layers="[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    final_dim=256,
    encoder_layerdrop=0.05,
    dropout_input=0.1,
    dropout_features=0.1,
    dropout=0.1,
    attention_dropout=0.1,
    feature_grad_mult=0.1,
    untie_final_proj=True,
    activation_dropout=0.0,
)
OFFICIAL_BASE_MODEL = dict(HUBERT_BASE_MODEL, conv_kernel_sizes="5,5")


def import_official(official_dir: Path) -> None:
    """Imports the package ``fasthubert_official`` from its folder in ``official_dir`` (its import registers
    its task, model and criterion names: never in a process where the plugin registered its own)."""
    if OFFICIAL_PACKAGE in sys.modules:
        return
    init = Path(official_dir) / OFFICIAL_PACKAGE / "__init__.py"
    if not init.is_file():
        raise SystemExit(
            f"{init} not found: put the official Fast-HuBERT checkout (github yanghaha0908/FastHuBERT) in "
            f"{Path(official_dir) / OFFICIAL_PACKAGE}"
        )
    spec = importlib.util.spec_from_file_location(OFFICIAL_PACKAGE, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[OFFICIAL_PACKAGE] = module
    spec.loader.exec_module(module)


def unit_dictionary(num_units: int = 500):
    """A fairseq Dictionary of ``num_units`` unit ids (after its 4 special symbols)."""
    from fairseq.data.dictionary import Dictionary

    d = Dictionary()
    for i in range(num_units):
        d.add_symbol(str(i))
    return d


class DummyTask:
    """What a criterion built outside a task needs: FairseqCriterion.__init__ reads only target_dictionary."""

    target_dictionary = None


# ----------------------------------------------------------------------------- speed benchmarks' data
def speech_rows(speech_dir: Path, manifests: Sequence[str], min_seconds: float) -> List[Dict[str, str]]:
    """The rows (id, path, num_samples, ...) of speech-folder manifests, utterances of at least ``min_seconds``."""
    rows = []
    for name in manifests:
        lines = (Path(speech_dir) / name).read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        rows += [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    rows = [r for r in rows if int(r["num_samples"]) >= min_seconds * 16000]
    if not rows:
        raise SystemExit(f"{', '.join(manifests)}: no utterance of at least {min_seconds} s in {speech_dir}")
    return rows


def write_random_unit_data(
    data: Path, speech_dir: Path, splits: Dict[str, List[Dict[str, str]]], num_units: int, cmvn_split: str = "valid"
) -> Path:
    """A fairseq data folder: ``{split}.tsv`` and ``{split}.km`` (random units at 50 Hz, the same labels for
    a row listed twice), ``dict.km.txt`` and the ``cmvn.npz`` of ``cmvn_split`` (fast-hubert-cmvn)."""
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = {}
    for split, rows in splits.items():
        for r in rows:
            if r["path"] not in labels:
                n = round(int(r["num_samples"]) / 16000 * LABEL_RATE)
                labels[r["path"]] = " ".join(map(str, rng.integers(0, num_units, n)))
        root = Path(speech_dir).resolve()
        (data / f"{split}.tsv").write_text(
            f"{root}\n" + "".join(f"{r['path']}\t{r['num_samples']}\n" for r in rows), encoding="utf-8"
        )
        (data / f"{split}.km").write_text("".join(labels[r["path"]] + "\n" for r in rows), encoding="utf-8")
    (data / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(num_units)), encoding="utf-8")
    cmd = [sys.executable, "-m", "fast_hubert_plugin.cli.cmvn", str(data / f"{cmvn_split}.tsv")]
    subprocess.run(cmd + ["--output", str(data / "cmvn.npz")], check=True, cwd=REPO)
    return data


# ----------------------------------------------------------------------------- quality benchmarks
def spread(values) -> float:
    """max - min of a cell's values (0 for one value): the seeds' spread a difference has to beat."""
    return (max(values) - min(values)) if len(values) > 1 else 0.0


def verdict(met: bool, *values: float) -> str:
    """A target's verdict; "not assessed" when one of the numbers it compares was not run (NaN)."""
    return (
        "not assessed (a run it needs was not run)"
        if any(math.isnan(v) for v in values)
        else ("met" if met else "not met")
    )


CALIBRATION_UPDATES = {"fast_hubert": (2, 42), "fast_hubert_ils": (2, 42), "hubert": (2, 10)}
BASELINES = ("fbank", "mfcc", "init")


def add_workspace_args(parser) -> None:
    """The flags of the shared workspace: the speech it is made of and its folder."""
    parser.add_argument(
        "--speech-dir", type=Path, help="as the demo's (default: ../shared/speech, else Mini LibriSpeech)"
    )
    parser.add_argument("--work-dir", type=Path, default=QUALITY_WORK_DIR)


def workspace(
    work_dir: Path, speech_dir: Optional[Path], clusters: int = 100, threads: int = 2, device: Optional[str] = None
):
    """The shared workspace, prepared up to the iteration-1 (MFCC) units (stages done before are reused);
    ``device`` ("cpu", "cuda") is where its trainings, dumps and probes run (None: each tool's choice)."""
    from fast_hubert_plugin.recipes.two_iterations import Workspace

    speech = speech_folder()
    corpus = speech.load_speech(speech.resolve_speech_dir(speech_dir))
    return Workspace(work_dir, corpus, clusters=clusters, threads=threads, device=device).prepare().iteration1_units()


def recipe_label(recipe_name: str, overrides) -> str:
    """A recipe's name in its runs' names: '' without overrides, so that every default run is shared."""
    return recipe_name if overrides else ""


def recipe_prefix(system: str, recipe_name: str) -> str:
    """What the calibration and pretraining runs of a system's recipe are named after ('' = the defaults)."""
    return f"{system}{recipe_name and '_' + recipe_name}"


def run_tag(system: str, recipe_name: str, budget: float, seed: int) -> str:
    """The runs' names below the work folder: recipe_sweep.py names its runs as quality_vs_compute.py does,
    so that the benchmark reuses them."""
    return f"{recipe_prefix(system, recipe_name)}_b{budget:g}_s{seed}"


def seconds_per_update(ws, system, updates=None, overrides=(), label: str = "", clock: str = "cpu") -> float:
    """(seconds of a longer run - seconds of a 2-update run) / the update difference: start-up cancels.
    ``clock``: "cpu" counts the user + system time of the training process (the CPU benchmarks), "wall" its
    wall-clock (a GPU's time: run the calibrations one at a time). ``overrides`` (a tuned recipe or a model
    size, named ``label``) are trained with, since batch and model size set the cost."""
    from fast_hubert_plugin.recipes.two_iterations import ITERATION1_LABEL_RATE, pretrain

    short, long = updates or CALIBRATION_UPDATES[system.name]
    runs = [
        pretrain(
            ws.work / "calibration",
            f"{recipe_prefix(system.name, label)}_{n}",
            system,
            ws.pretrain_data,
            ws.iteration1_labels,
            ITERATION1_LABEL_RATE,
            n,
            extra=overrides,
            threads=1,
            progress=False,
            quiet=True,
            device=ws.device,
        )
        for n in (short, long)
    ]
    seconds = [{"cpu": run.cpu_s, "wall": run.wall_s}[clock] for run in runs]
    cost = (seconds[1] - seconds[0]) / (long - short)
    if cost <= 0:  # start-up noise larger than the updates' cost
        sys.exit(
            f"{system.name}: the calibration runs ({short} and {long} updates) could not measure the cost of an "
            "update; give --calibration-updates a larger difference"
        )
    return cost


def baseline_upstream(ws, name: str, overrides=(), label: str = ""):
    """(title, probe name, upstream) of a no-pretraining baseline of BASELINES: an input feature, or
    fast_hubert's initial weights (built with ``overrides``, a model size named ``label``)."""
    from fast_hubert_plugin.recipes.two_iterations import ITERATION1_LABEL_RATE, SYSTEMS, untrained

    if name in ("fbank", "mfcc"):
        return name, name, name
    run_name = f"{recipe_prefix('fast_hubert', label)}_init"
    run = untrained(
        ws.work / "runs",
        run_name,
        SYSTEMS["fast_hubert"],
        ws.pretrain_data,
        ws.iteration1_labels,
        ITERATION1_LABEL_RATE,
        quiet=True,
        device=ws.device,
        extra=overrides,
    )
    return "fast_hubert, never pretrained", run_name, run.checkpoint


def baseline_probe(ws, name: str, probe_updates: int, threads: int = 1):
    """(title, probe dev CER) of a no-pretraining baseline of BASELINES."""
    from fast_hubert_plugin.recipes.two_iterations import probe

    title, probe_name, upstream = baseline_upstream(ws, name)
    return title, probe(ws, probe_name, upstream, probe_updates, threads=threads)["cer"]
