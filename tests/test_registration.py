"""The plugin registers with fairseq whenever both are loaded, in either order, and its light parts
(features, config) import without fairseq and change nothing (registration.py). Each case runs in a
fresh interpreter: what was imported first is the point."""

import json
import subprocess
import sys

from conftest import REPO

CHECKPOINT = REPO / "tests" / "data" / "checkpoints" / "fast_hubert_tiny.pt"

REPORT = """
import json, logging, sys, torch
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.file_io import PathManager
from fairseq.models import MODEL_REGISTRY
from fairseq.optim import OPTIMIZER_REGISTRY
from fairseq.tasks import TASK_REGISTRY
from fairseq import utils
from fairseq.distributed import utils as distributed_utils
from argparse import Namespace
from fast_hubert_plugin.config import user_dir
utils.import_user_module(Namespace(user_dir=str(user_dir())))  # what fairseq does for common.user_dir
ckpt = torch.load(sys.argv[1], map_location="cpu")  # weights_only: needs the allowlist
root = logging.getLogger()
print(json.dumps({
    "task": "fast_hubert_pretraining" in TASK_REGISTRY,
    "model": "fast_hubert" in MODEL_REGISTRY,
    "criterion": "fast_hubert" in CRITERION_REGISTRY,
    "optimizer": "torch_adamw" in OPTIMIZER_REGISTRY,
    "atomic_copy": PathManager.copy.__name__ == "atomic_copy",
    "torchrun_on_cpu": distributed_utils._infer_torch_distributed_launch_init.__name__ == "infer_torchrun_init",
    "checkpoint_keys": sorted(ckpt)[:2],
    "root_logger": [root.level, len(root.handlers)],
    "fairseq_loader": type(sys.modules["fairseq"].__loader__).__name__,
}))
"""


def run_python(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_features_and_config_import_without_fairseq_or_patches():
    out = run_python(
        "import sys, torch\n"
        "before = set(map(str, torch.serialization.get_safe_globals()))\n"
        "import fast_hubert_plugin.features, fast_hubert_plugin.config, fast_hubert_plugin.features.mfcc\n"
        "after = set(map(str, torch.serialization.get_safe_globals()))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fairseq', 'fairseq_cli', 'hydra')), after == before)\n"
    )
    assert out.split() == ["[]", "True"], out


def registered_as_expected(out: str, plugin_first: bool = True):
    got = json.loads(out.strip().splitlines()[-1])
    assert got["task"] and got["model"] and got["criterion"] and got["optimizer"], got
    assert got["atomic_copy"] and got["torchrun_on_cpu"], got
    assert got["checkpoint_keys"] == ["args", "cfg"], got  # fairseq's checkpoint loaded weights-only
    if (
        plugin_first
    ):  # WARNING, no handler: fairseq's basicConfig(DEBUG) undone (imported before, it is fairseq's doing)
        assert got["root_logger"] == [30, 0], got
    assert got["fairseq_loader"] == "SourceFileLoader", got  # the wrapper leaves no trace


def test_a_light_import_then_fairseq_registers_when_fairseq_loads():
    registered_as_expected(run_python("import fast_hubert_plugin.features\n" + REPORT, str(CHECKPOINT)))


def test_the_plugin_alone_then_fairseq_registers_when_fairseq_loads():
    registered_as_expected(run_python("import fast_hubert_plugin\n" + REPORT, str(CHECKPOINT)))


def test_fairseq_then_the_plugin_registers_at_once():
    registered_as_expected(
        run_python("import fairseq, fast_hubert_plugin\n" + REPORT, str(CHECKPOINT)), plugin_first=False
    )


def test_a_module_that_uses_fairseq_imported_first_registers_everything():
    """Its folder imports fairseq before the module, so registering never meets it half-initialised."""
    for module in ("data.fbank_dataset", "criterions.fast_hubert_criterion", "fairseq_patches.checkpoint_copy"):
        registered_as_expected(run_python(f"import fast_hubert_plugin.{module}\n" + REPORT, str(CHECKPOINT)))


def test_register_on_request_lets_a_plain_torch_load_read_a_fairseq_checkpoint():
    code = "import sys, torch\n{}\ntorch.load(sys.argv[1], map_location='cpu')\nprint('LOADED')"
    refused = subprocess.run(
        [sys.executable, "-c", code.format("import fast_hubert_plugin"), str(CHECKPOINT)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert refused.returncode != 0 and "fairseq.data.dictionary.Dictionary" in refused.stderr  # nothing patched yet
    out = run_python(code.format("import fast_hubert_plugin\nfast_hubert_plugin.register()"), str(CHECKPOINT))
    assert out.strip().endswith("LOADED"), out
