"""The package's folders depend on each other one way, so one utterance can be followed from the
manifest line to the loss by opening folders in order; each job has one implementation; and each
benchmark script stands on its own."""

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "fast_hubert_plugin"
# Lower layers never import higher ones; folders of the same layer never import each other.
LAYERS = {
    "config": 0,  # the shipped Hydra configs and the function that finds them
    "utils": 0,
    "features": 1,
    "fairseq_patches": 1,  # what registering changes in fairseq (registration.py applies it)
    "data": 2,
    "models": 3,
    "criterions": 3,
    "optim": 3,
    "tasks": 4,
    "clustering": 5,
    "finetuning": 5,
    "export": 5,
    "probing": 5.5,  # uses finetuning's CTC (not clustering: both build on models/frame_features.py); recipes may run it
    "cli": 6,
    "recipes": 6,
    "__init__": 7,  # the package itself and registration.py: registering imports everything
}


def folder_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "fast_hubert_plugin", module
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "__init__"


def imports_of(path: Path):
    return imports_in(path.read_text(encoding="utf-8"), path.relative_to(REPO))


def imports_in(text: str, rel: Path):
    """Modules of this package imported anywhere in the source ``text`` of file ``rel`` (relative to
    the repository), at module level or inside functions, with their line numbers."""
    package = list(rel.with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            else:
                names = [node.module] if node.module else []
            found += [(n, node.lineno) for n in names if n.startswith("fast_hubert_plugin")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("fast_hubert_plugin")]
    return found


def folder_graph():
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = folder_of(".".join(path.relative_to(REPO).with_suffix("").parts))
        for target_module, line in imports_of(path):
            target = folder_of(target_module)
            if target != source:
                edges.setdefault((source, target), []).append(f"{path.relative_to(REPO)}:{line}")
    return edges


def test_every_folder_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders <= set(LAYERS), folders - set(LAYERS)


def test_imports_point_down_only():
    wrong = {f"{a} -> {b}": where for (a, b), where in folder_graph().items() if LAYERS[b] >= LAYERS[a]}
    assert not wrong, f"imports against the layer order {LAYERS}: {wrong}"


def test_folder_graph_has_no_cycle():
    edges = folder_graph()
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != "open", f"cycle: {' -> '.join(stack + [node, nxt])}"
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in list(graph):
        if node not in state:
            visit(node, [])


def test_the_checker_sees_an_upward_import():
    """The graph above is built from real import statements, function-level ones included."""
    text = "import os\nfrom .fbank import x\n\ndef f():\n    from ..data.manifest import read_manifest\n"
    assert imports_in(text, Path("fast_hubert_plugin/features/x.py")) == [
        ("fast_hubert_plugin.features.fbank", 2),
        ("fast_hubert_plugin.data.manifest", 5),
    ]
    assert folder_of("fast_hubert_plugin.data.manifest") == "data" and folder_of("fast_hubert_plugin") == "__init__"


# export/hf/ is the code an exported folder carries alone (it imports nothing of the plugin but
# kaldi_fbank.py, which the exporter copies beside it): searched only where that copy is the home.
@pytest.mark.parametrize(
    "pattern,home,with_export",
    [
        (r"load_model_ensemble_and_task\(", "models/checkpoints.py", False),  # one checkpoint loader
        (r"arange\([^()]*(\([^()]*\))?[^()]*\)\[None, :\] >=", "utils/masks.py", False),  # one padding-mask helper
        (r"samples but .* says", "data/manifest.py", False),  # one audio length check
        (r"encoder\.extract_features\(\s*features, out_mask", "models/fast_hubert.py", False),  # one layer-output path
        (r"class \w*Unpickler", "features/cmvn.py", False),
        # one check of label and letter files: symbols in the dictionary, one line per manifest row
        (r"not in the dictionary", "data/labels.py", False),
        (r"lines but the manifest", "data/labels.py", False),
        # one check of audio files: present, readable, at 16 kHz
        (r"audio file\b.*not found", "features/audio.py", False),
        (r"\bsamplerate\b|\bsr != ", "features/audio.py", False),
        (r"^import soundfile|^from soundfile", "features/audio.py", False),  # one reader of audio files
        (r"^import soxr|^from soxr|\bresample_poly\b", "features/audio.py", False),  # one resampler
        # one rule for an utterance too short for a 25 ms fbank frame, the export's included
        (r"shorter than one|fewer than one", "features/kaldi_fbank.py", True),
        (r"FRAME_LENGTH_SAMPLES", "features/kaldi_fbank.py", True),
        # one decision of the model family: by class for a model, by registered name for a config
        (r"isinstance\([^()]*\b(Fast)?HubertModel\)", "models/family.py", False),
        (r"\bin FAST_HUBERT_NAMES\b", "models/family.py", False),
        # one frame-feature adapter (input features, a fast_hubert or a stock hubert checkpoint's
        # layers) for the clustering dump and the probe
        (r"feature_extractor\.conv_layers", "models/frame_features.py", False),
        (r"getattr\(cfg\.task, \"normalize\"", "models/frame_features.py", False),
        (r"requires_grad_\(False\)", "models/frame_features.py", False),
        (r"\bFeatureExtractor\(", "models/frame_features.py", False),
        (r"^import kaldi_native_fbank", "features/mfcc.py", False),  # one MFCC
        # one memory-mapped frame store (training fbank and clustering shards keep their file names)
        (r"open_memmap\(", "data/feature_store.py", False),
        (r"mmap_mode=", "data/feature_store.py", False),
        (r"np\.concatenate\(\[\[0\], np\.cumsum", "data/feature_store.py", False),
        # one loop computing features of a manifest's rows in worker processes (fbank for the training
        # store and for CMVN stats, k-means input features)
        (r"\bPool\(", "data/row_features.py", False),
        (r"\.imap\(", "data/row_features.py", False),
    ],
)
def test_one_implementation_per_job(pattern, home, with_export):
    where = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if (with_export or "export/hf" not in p.as_posix())
        and re.search(pattern, p.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert where == [home], where


def test_probing_does_not_reach_into_clustering():
    """Both build on the frame features of models/frame_features.py; neither imports the other."""
    edges = folder_graph()
    assert ("probing", "clustering") not in edges and ("clustering", "probing") not in edges, edges


def fairseq_imports_at_module_level(text: str):
    """Line numbers of the module-level statements of ``text`` that import fairseq (or fairseq_cli)."""
    lines = []
    for node in ast.parse(text).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n.split(".")[0] in ("fairseq", "fairseq_cli") for n in names):
            lines.append(node.lineno)
    return lines


def fairseq_is_imported_first(init_text: str) -> bool:
    """Whether a package's ``__init__`` imports fairseq before it imports any module of its own."""
    for node in ast.parse(init_text).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            return False
        if fairseq_imports_at_module_level(ast.unparse(node)):
            return True
    return False


FAIRSEQ_FREE = ("config", "utils", "features")  # and the package's own __init__ / registration


def test_fairseq_loads_before_the_modules_that_use_it():
    """Importing fairseq registers the plugin once the plugin is loaded (registration.py), and
    registering imports the task, model and criterion modules. A module that imported fairseq itself
    would be half-initialised then; so each folder whose modules import fairseq imports it in its
    ``__init__`` before any of its modules, and the light folders import none."""
    wrong = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        lines = fairseq_imports_at_module_level(path.read_text(encoding="utf-8"))
        if not lines or path.name == "__init__.py" and len(rel.parts) == 2:
            continue
        folder = rel.parts[0] if len(rel.parts) > 1 else "__init__"
        if folder in FAIRSEQ_FREE or folder == "__init__":
            wrong[str(rel)] = f"imports fairseq at line {lines[0]} in a folder that must not"
        elif not fairseq_is_imported_first((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")):
            wrong[str(rel)] = f"{folder}/__init__.py does not import fairseq before its modules"
    assert not wrong, wrong


def test_the_fairseq_checker_sees_a_late_import():
    assert fairseq_is_imported_first('"""Doc."""\n\nimport fairseq  # noqa\n\nfrom .a import b\n')
    assert not fairseq_is_imported_first("from . import a\nimport fairseq\n")
    assert not fairseq_is_imported_first("from .a import b\n")
    assert fairseq_imports_at_module_level("import os\nfrom fairseq.data import Dictionary\n") == [2]
    assert fairseq_imports_at_module_level("def f():\n    import fairseq\n") == []


def climbs_out(text: str, depth: int):
    """Paths in the source ``text`` of a file ``depth`` folders below the package's own folder that
    leave the package: ``Path(__file__).parents[N]`` or ``.parent`` chains above the package folder."""
    found = [m[0] for m in re.finditer(r"parents\[(\d+)\]", text) if int(m[1]) > depth]
    chains = re.finditer(r"__file__\)(?:\.resolve\(\))?((?:\.parent)+)", text)
    return found + [m[0] for m in chains if m[1].count(".parent") - 1 > depth]


# The one way out of the package: config_dir's fallback to a checkout's config/ when the package carries
# no copy of the configs (a built package does; test_configs.py checks both).
CHECKOUT_CONFIGS = {"config/__init__.py": ["parents[2]"]}


def test_the_package_stands_alone():
    """An installed package finds what it needs inside itself: no path leaves the package folder
    (the repository's examples, benchmarks; its configs only as the checkout's fallback), and the
    project's speech folder beside the repository is named by the demo and the benchmarks only, not here."""
    wrong = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in (".py", ".md", ".yaml"):
            continue
        text, rel = path.read_text(encoding="utf-8"), path.relative_to(PACKAGE)
        found = climbs_out(text, len(rel.parts) - 1) if path.suffix == ".py" else []
        found += re.findall(r"shared/speech|\"shared\"|\"config\"\s*/|\bREPO\b", text)
        if found != CHECKOUT_CONFIGS.get(rel.as_posix(), []):
            wrong[str(rel)] = found
    assert not wrong, wrong


def test_the_checker_sees_a_path_out_of_the_package():
    assert climbs_out("REPO = Path(__file__).resolve().parents[2]\n", 1) == ["parents[2]"]
    assert climbs_out("PLUGIN = Path(__file__).resolve().parents[1]\n", 1) == []  # the package folder
    assert climbs_out("ROOT = Path(__file__).parent.parent.parent\n", 1) == ["__file__).parent.parent.parent"]
    assert climbs_out("HERE = Path(__file__).resolve().parent\n", 0) == []


def test_cmvn_is_read_in_one_place():
    """A model's CMVN statistics are read when it is built (models/cmvn.py, from the stats file its
    config names or a checkpoint's tensors): no flag on the task for the model to look at, no call
    from the model back into the task. The stats file is otherwise read only to normalise features
    that have no model (the clustering's fbank)."""
    gone = r"\b(load_cmvn|pretrained_cmvn|model_from_checkpoint)\b"
    assert [str(p.relative_to(REPO)) for p in sorted(PACKAGE.rglob("*.py")) if re.search(gone, p.read_text())] == []
    readers = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if re.search(r"GlobalCMVN\.load\(", p.read_text(encoding="utf-8"))
    ]
    assert readers == ["clustering/extractors.py", "models/cmvn.py"], readers
    from fast_hubert_plugin.tasks.fast_hubert_pretraining import FastHubertPretrainingTask

    assert not {"load_cmvn", "pretrained_cmvn", "model_from_checkpoint"} & set(dir(FastHubertPretrainingTask))


# The benchmarks: scripts run as `python benchmarks/X.py`, each on its own; what several share lives in one
# module that is no benchmark (benchmarks/common.py).
BENCHMARKS = REPO / "benchmarks"
BENCHMARK_FILES = sorted(BENCHMARKS.glob("*.py"))
MAIN_LINES = 40  # a main reads at a glance: parse the arguments, call the named steps


def imported_modules(tree: ast.AST):
    """Every module an import statement names (top-level names; relative imports have none)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module.split(".")[0]


def edits_sys_path(tree: ast.AST) -> bool:
    """sys.path.insert / append / extend anywhere."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in ("insert", "append", "extend")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "path"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "sys"
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("path", BENCHMARK_FILES, ids=lambda p: p.name)
def test_no_benchmark_imports_another_or_edits_sys_path(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scripts = {p.stem for p in BENCHMARK_FILES} - {"common", path.stem}
    assert not scripts & set(imported_modules(tree)), f"{path.name} imports a benchmark script"
    assert not edits_sys_path(tree), f"{path.name} edits sys.path (scripts find common.py and the package as is)"


@pytest.mark.parametrize("path", BENCHMARK_FILES, ids=lambda p: p.name)
def test_benchmark_mains_are_short(path):
    mains = [
        node
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef) and node.name == "main"
    ]
    assert path.stem == "common" or len(mains) == 1, f"{path.name} has no main()"
    for main in mains:
        assert main.end_lineno - main.lineno + 1 <= MAIN_LINES, f"{path.name}: main() is longer than {MAIN_LINES} lines"


def test_the_benchmark_checks_see_what_they_look_for():
    tree = ast.parse("import sys\nfrom quality_vs_compute import run_tag\n\ndef f():\n    sys.path.insert(0, 'x')\n")
    assert "quality_vs_compute" in set(imported_modules(tree)) and edits_sys_path(tree)
    assert not edits_sys_path(ast.parse("import sys\nprint(sys.path)\n"))


@pytest.mark.parametrize("doc", ["benchmarks/gpu_records.sh", "benchmarks/README.md", "README.md", "Makefile"])
def test_the_benchmark_scripts_named_exist(doc):
    """Paths benchmarks/X.py and benchmarks/README.md's section titles (`X.py`) name files that exist."""
    text = (REPO / doc).read_text(encoding="utf-8")
    named = set(re.findall(r"benchmarks/(\w+\.(?:py|sh))", text)) | set(re.findall(r"^## `(\w+\.py)`", text, re.M))
    missing = sorted(n for n in named if not (BENCHMARKS / n).is_file())
    assert named and not missing, f"{doc} names {missing}"
