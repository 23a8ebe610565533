"""Build ``tests/data/checkpoints/``: a tiny ``fast_hubert`` checkpoint and the outputs it gives.

The checkpoint is written by fairseq's own ``Trainer.save_checkpoint`` (the call training makes,
so it holds ``cfg``, ``model``, ``task_state`` with the dictionary, ``optimizer_history``), from a
config parsed by fairseq's training parser: a 2-block, 32-dim model with random weights and random
CMVN statistics. ``reference.pt`` holds a fixed input and what the model that wrote the checkpoint
returned for it: the layer outputs of ``extract_features``, the masked-frame logits and targets
(``get_logits`` / ``get_targets``, masks keyed by ``rng_keys``) and the criterion's logging output
(masked frames only, and with ``pred_nomask_weight`` 0.5).

tests/test_checkpoint_compat.py loads the checkpoint with today's code and compares: checkpoints
trained with earlier versions keep loading (same state-dict names, strict load) and computing the
same numbers. The fixture was made by the code before the model was rebuilt from fairseq parts
(commit "Checkpoint-compatibility fixture"); rebuilding it with a later version would test nothing.
Usage, from the repository root:

    python tests/data/build_checkpoint_fixture.py [--output tests/data/checkpoints]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import fast_hubert_plugin  # noqa: E402,F401  (registers the task, model and criterion)
from fast_hubert_plugin.features.cmvn import GlobalCMVN  # noqa: E402

MODEL_ARGS = [
    "--encoder-layers", "2",
    "--encoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64",
    "--encoder-attention-heads", "2",
    "--conv-channels", "32",
    "--fbank-encoder-dim", "16",
    "--conv-pos", "8",
    "--conv-pos-groups", "4",
    "--supervised-layers", "[1]",
    "--label-rate", "50",
    "--mask-prob", "0.5",
    "--mask-length", "2",
    "--dropout", "0", "--attention-dropout", "0", "--activation-dropout", "0", "--dropout-input", "0",
    "--encoder-layerdrop", "0",
]  # fmt: skip
NUM_UNITS = 12
FBANK_LENGTHS = (57, 44)  # fbank frames of the two utterances of the fixed batch (one padded)
RNG_KEYS = (3, 4)


def fixed_batch():
    """(2, 57, 80) fbank, its padding mask, 50 Hz targets: deterministic, and stored with the outputs."""
    g = torch.Generator().manual_seed(0)
    T = max(FBANK_LENGTHS)
    source = torch.randn(len(FBANK_LENGTHS), T, 80, generator=g) * 3 + 10
    padding = torch.arange(T)[None, :] >= torch.tensor(FBANK_LENGTHS)[:, None]
    source = source.masked_fill(padding[..., None], 0.0)
    targets = torch.randint(4, 4 + NUM_UNITS, (len(FBANK_LENGTHS), (T + 1) // 2), generator=g)
    return source, padding, targets


def reference_outputs(model, criterion):
    """Everything the compatibility test compares, computed by ``model`` (eval mode, no dropout)."""
    source, padding, targets = fixed_batch()
    out = {"source": source, "padding_mask": padding, "target": targets, "rng_keys": torch.tensor(RNG_KEYS)}
    with torch.no_grad():
        for layer in (1, 2):
            x, pad = model.extract_features(source, padding, mask=False, output_layer=layer)
            out[f"layer{layer}"] = x
        out["out_padding_mask"] = pad
        net = model(source, [targets], padding, mask=True, rng_keys=out["rng_keys"])
        out["logits_masked"] = model.get_logits(net, is_masked=True)
        out["targets_masked"] = model.get_targets(net, is_masked=True)
        sample = {
            "id": torch.arange(len(FBANK_LENGTHS)),
            "net_input": {"source": source, "padding_mask": padding, "rng_keys": out["rng_keys"]},
            "target_list": [targets],
        }
        _, _, out["log"] = criterion(model, sample)
        # unmasked frames in the loss too: the criterion's other branch
        _, _, out["log_nomask"] = type(criterion)(criterion.task, pred_nomask_weight=0.5)(model, sample)
    return out


def build(output: Path) -> None:
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # relative paths only: the checkpoint's config names no folder of this machine
        try:
            Path("dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(NUM_UNITS)))
            rng = np.random.default_rng(0)
            GlobalCMVN(rng.normal(10, 2, 80), rng.uniform(1, 4, 80)).save("cmvn.npz")
            parser = options.get_training_parser()
            # fmt: off
            args = options.parse_args_and_arch(parser, [
                ".", "--task", "fast_hubert_pretraining", "--labels", '["km"]', "--label-dir", ".",
                "--label-rate", "50", "--cmvn-stats-path", "cmvn.npz",
                "--arch", "fast_hubert", *MODEL_ARGS,
                "--criterion", "fast_hubert",
                "--optimizer", "adam", "--lr", "0.0005", "--lr-scheduler", "fixed",
                "--max-tokens", "1000", "--cpu", "--seed", "1", "--no-save-optimizer-state",
            ])
            # fmt: on
            cfg = convert_namespace_to_omegaconf(args)
            task = tasks.setup_task(cfg.task)
            torch.manual_seed(0)
            model = task.build_model(cfg.model)
            criterion = task.build_criterion(cfg.criterion)
            trainer = Trainer(cfg, task, model, criterion)
            trainer.save_checkpoint(str(output / "fast_hubert_tiny.pt"), {})
        finally:
            os.chdir(cwd)
    torch.save(reference_outputs(model.eval(), criterion), output / "reference.pt")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "tests" / "data" / "checkpoints")
    build(parser.parse_args().output)
