"""The recipe table: every setting of the official Fast-HuBERT configs against the configs we ship.

Reads the official pretraining and fine-tuning YAMLs (github yanghaha0908/FastHuBERT,
``config/pretrain/fasthubert_base_lirbispeech.yaml``, ``config/finetune/base_100h.yaml``), the
overrides its fine-tuning script passes (``finetune/fasthubert_finetune.sh``, the run behind the released
numbers) and, for the keys the YAMLs leave out, the official config classes' defaults (read from their
source with ``ast``, never imported) and fairseq's. With ``--official DIR`` (the checkout as
DIR/fasthubert_official) it extracts them into ``benchmarks/results/official_recipe_values.json``; without
it, it reads that file, so the table is regenerated without the checkout.

Our side: every YAML that ``fast_hubert_plugin.config.config_dir(kind)`` finds (pretraining and
fine-tuning), with the defaults of the dataclass fairseq builds for each group where a YAML leaves a
key out. Writes ``benchmarks/results/recipe_table.md``: one table per kind (a row per setting, a column
per config, the reason for each difference from the official value), and which of the paper's
systems each config reproduces. tests/test_recipe_table.py checks the committed table is current.

    python benchmarks/recipe_table.py --official OFFICIAL      # re-extract the official values
    python benchmarks/recipe_table.py                           # regenerate the table
"""

import argparse
import ast
import dataclasses
import json
import re
from pathlib import Path
from typing import Dict, List, Optional

from common import OFFICIAL_PACKAGE, RESULTS

OFFICIAL_VALUES = RESULTS / "official_recipe_values.json"
TABLE = RESULTS / "recipe_table.md"
OFFICIAL_COMMIT = "d1abaeecda5df04f790575f92fc689165631e685"
OFFICIAL_YAMLS = {
    "pretraining": "config/pretrain/fasthubert_base_lirbispeech.yaml",
    "finetuning": "config/finetune/base_100h.yaml",
}
OFFICIAL_RUN = "finetune/fasthubert_finetune.sh"
# The official config classes (source file, class) by group and registered name; their fields' defaults
# are read from the source, those they inherit from the fairseq dataclass beside them.
OFFICIAL_CLASSES = {
    ("task", "fasthubert_pretraining"): ("task/hubert_fbank_pretraining.py", "FastHubertPretrainingConfig"),
    ("model", "fasthubert"): ("model/fasthubert.py", "FastHubertConfig"),
    ("criterion", "fasthubert_ctc_bpe"): ("criterion/ctc_bpe.py", "CtcBpeCriterionConfig"),
}
FAIRSEQ_PARENTS = {
    ("task", "fasthubert_pretraining"): ("fairseq.tasks.hubert_pretraining", "HubertPretrainingConfig"),
    ("model", "fasthubert"): ("fairseq.models.hubert.hubert", "HubertConfig"),
    ("criterion", "fasthubert"): ("fairseq.criterions.hubert_criterion", "HubertCriterionConfig"),
    ("criterion", "fasthubert_ctc_bpe"): ("fairseq.criterions.ctc", "CtcCriterionConfig"),
}
# Settings the YAMLs leave to defaults that decide what is trained: one row each.
DEFAULT_ROWS = {
    "pretraining": [
        "model.ils",
        "model.predict_layers",
        "model.mask_length",
        "model.mask_selection",
        "model.logit_temp",
        "model.encoder_layers",
        "model.encoder_embed_dim",
        "model.encoder_ffn_embed_dim",
        "model.encoder_attention_heads",
        "model.conv_channels",
        "model.fbank_encoder_dim",
        "model.conv_pos",
        "model.conv_pos_groups",
        "model.required_seq_len_multiple",
        "optimization.update_freq",
    ],
    "finetuning": [
        "model.mask_channel_prob",
        "model.final_dropout",
        "lr_scheduler.phase_ratio",
        "lr_scheduler.init_lr_scale",
        "w2v.freq_mask_N",
        "w2v.freq_mask_F",
        "w2v.time_mask_N",
        "w2v.time_mask_T",
    ],
}
# Where our key differs from the official one.
OUR_KEY = {
    "task.stats_npz_path": "task.cmvn_stats_path",
    "criterion.bert_tokenizer": None,
    "w2v.freq_mask_N": "task.spec_aug_freq_masks",
    "w2v.freq_mask_F": "task.spec_aug_freq_width",
    "w2v.time_mask_N": "task.spec_aug_time_masks",
    "w2v.time_mask_T": "task.spec_aug_time_width",
}
DERIVED = ("ILS: supervised blocks (1-based)", "audio per GPU per step (s)", "audio per update (s)")

# Why our Base configs differ from the official value (the first column that differs is explained).
WHY = {
    "task._name": "our task's name; `fasthubert_pretraining` is registered too and runs the official YAML",
    "task.sample_rate": "ours keeps the audio's 16000 (the fbank is computed in the model); the official "
    "100 is the fbank frame rate of its precomputed `.npy` features; sizes are in frames in both",
    "task.stats_npz_path": "the same CMVN file (ours reads the official `global_cmvn.npy` too), named after "
    "what it holds; default `${task.data}/cmvn.npz`",
    "task.normalize": "not a key of ours: the fbank is normalised by the model's CMVN buffers",
    "task.fine_tuning": "the same switch (fine-tuning batches letters, not units)",
    "dataset.max_tokens": "**the official 1,400,000 is HuBERT's sample count copied into a frame-based "
    "dataset: 14,000 s of audio per GPU**; ours in pretraining: HuBERT-Base's 2,800 s per update, spread over "
    "the GPUs the config names (8 x 350 s = 35,000 frames each; 1 GPU: 1,400 s x update_freq 2), the "
    "memory fast_hubert saves (benchmarks/results/train_step_gpu_bf16.md); fine-tuning: HuBERT's 3,200,000 "
    "samples = 20,000 frames (200 s)",
    "dataset.num_workers": "loader processes per GPU: ours decode audio and draw the masks, the fbank runs on "
    "the GPU (benchmarks/results/loader_throughput_cpu.md)",
    "dataset.validate_after_updates": "validation is cheap: no need to wait for the freeze to end",
    "checkpoint.save_interval": "ours saves by updates (`save_interval_updates` 25,000) in pretraining",
    "checkpoint.keep_interval_updates": "one checkpoint kept (1.1 GB each at Base size)",
    "checkpoint.no_epoch_checkpoints": "epoch checkpoints are not needed to resume (checkpoint_last.pt)",
    "distributed_training.ddp_backend": "no unused parameter in ours (README: Multi-GPU); legacy_ddp because "
    "layerdrop leaves the dropped blocks without gradients",
    "distributed_training.distributed_world_size": "ours states the GPUs the batch was sized for (8 x 350 s, "
    "or 1 GPU x 1,400 s x update_freq 2 = HuBERT-Base's 2,800 s per update); the official YAML says 1 and "
    "its paper 8 V100",
    "distributed_training.nprocs_per_node": "the GPUs per node the config is sized for (8, or 1 for the 1-GPU configs)",
    "distributed_training.find_unused_parameters": "the official model keeps HubertModel's `label_embs_concat`, "
    "which gets no gradient (benchmarks/results/official_equivalence_cpu.md); ours has none",
    "criterion._name": "our criterion's name (`fasthubert` is registered too); fine-tuning: fairseq's letter "
    "`ctc` instead of the official WordPiece `fasthubert_ctc_bpe` (needs a BERT tokenizer file)",
    "criterion.loss_weights": "weighted HuBERT's feature penalty, which does not exist without the waveform CNN "
    "(inert in the official code too)",
    "optimization.update_freq": "1 GPU x 1,400 s x 2 (stock HuBERT: 350 s x 8): HuBERT-Base's 2,800 s per update",
    "common.fp16": "the 1-GPU configs train in bf16 (`common.bf16`), the precision of the GPU step records",
    "optimizer._name": "fairseq's adam settings in one fused CUDA kernel (README: Training on GPUs)",
    "lr_scheduler.warmup_steps": "ours gives the schedule as phase ratios (fairseq's wav2vec 2.0 recipes)",
    "lr_scheduler.hold_steps": "ours gives the schedule as phase ratios",
    "lr_scheduler.decay_steps": "ours gives the schedule as phase ratios",
    "lr_scheduler.phase_ratio": "fairseq's wav2vec 2.0 100 h recipe (10 % warm-up, 40 % hold, 50 % decay)",
    "model._name": "our model's name (`fasthubert` with the official keys is registered too)",
    "model.skip_nomask": "no key of ours: unmasked-frame logits are computed only when their weight is > 0 (the "
    "official code computes them at weight 0)",
    "model.extractor_mode": "HuBERT's waveform CNN settings: the official model builds that CNN and deletes it; "
    "ours never builds it",
    "model.conv_feature_layers": "HuBERT's waveform CNN, built and deleted by the official model (it sizes "
    "its LayerNorm); not used by ours",
    "model.final_dim": "HuBERT's cosine-loss projection: inert in both (CE head)",
    "model.untie_final_proj": "HuBERT's cosine-loss projection: inert in both (CE head)",
    "model.dropout_features": "applied to a copy of the features nothing reads, in the official code",
    "model.feature_grad_mult": "**the official code applies no GradMultiply: its 0.1 acts as 1.0**; ours scales "
    "the subsampler's gradient, so 1.0 is the official behaviour",
    "model.ils": "ours names supervised blocks directly (`supervised_layers`, 1-based); the ILS variant is "
    "its own config",
    "model.predict_layers": "0-based official blocks [3, 11] = our 1-based [4, 12]",
    "model.required_seq_len_multiple": "HuBERT's 2 pads odd lengths and then needs a padding mask in every "
    "attention layer (ours: 1)",
    "finetuning:model.mask_prob": "**the official fine-tuning never masks the Transformer input: its forward skips "
    "`apply_mask` when `features_only`, and SpecAugment on the fbank runs instead**; ours says so with 0",
    "finetuning:model.mask_channel_prob": "as mask_prob: inert in the official fine-tuning, 0 in ours",
    "model.freeze_finetune_updates": "fairseq's wav2vec 2.0 100 h recipe trains the encoder from the start "
    "(base_10h / base_1h freeze it for 10,000 updates)",
    "w2v.freq_mask_N": "SpecAugment on the fbank in fine-tuning: the official code takes it from the pretrained "
    "model's config, ours from the fine-tuning task",
    "ILS: supervised blocks (1-based)": "the official Base YAML trains ILS (blocks 4 and 12); our Base config "
    "without ILS is the paper's Fast-HuBERT row, `fast_hubert_base_ils.yaml` the ILS one",
    "audio per GPU per step (s)": "see `dataset.max_tokens`",
    "audio per update (s)": "official: 14,000 s x 1 GPU per its YAML (its paper: 8 V100, batch not published); "
    "ours: HuBERT-Base's 2,800 s",
    # fine-tuning, where the reason differs from pretraining's
    "finetuning:task.stats_npz_path": "null: the pretrained checkpoint carries its CMVN statistics as buffers (the "
    "official fine-tuning reads the stats file again)",
    "finetuning:common.tensorboard_logdir": "not set: fine-tuning logs to the JSON log (set it for curves)",
    "finetuning:criterion.bert_tokenizer": "the WordPiece tokenizer of the official `fasthubert_ctc_bpe`: ours "
    "trains letters (`ltr`, fairseq's `ctc`)",
    "finetuning:optimization.max_update": "fairseq's recipes by amount of labelled data: 100 h 80,000 (what the "
    "official run used), 10 h 25,000, 1 h 13,000",
    "finetuning:optimization.lr": "fairseq's recipes by amount of labelled data: 100 h 3e-5 (what the official run "
    "used), 10 h 2e-5, 1 h 5e-5",
    "finetuning:audio per GPU per step (s)": "official YAML: HuBERT's 3,200,000 samples read as frames, 32,000 s "
    "per GPU (its run overrode 8,750 frames = 87.5 s); ours: HuBERT's 200 s",
    "finetuning:audio per update (s)": "official run: 87.5 s x update_freq 8 = 700 s on 1 GPU; ours: 200 s per "
    "GPU, set world size / update_freq for the batch of your recipe",
}


# ----------------------------------------------------------------------------- reading configs
def flatten(tree, prefix: str = "") -> Dict[str, object]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_yaml(path: Path) -> Dict[str, object]:
    """The YAML's settings as dotted keys (interpolations kept as written), without hydra's."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {k: v for k, v in flatten(tree).items() if not k.startswith("hydra.")}


def dataclass_defaults(cls) -> Dict[str, object]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return {k: v.value if hasattr(v, "value") and not isinstance(v, (int, float, str)) else v for k, v in out.items()}


def source_defaults(path: Path, class_name: str) -> Dict[str, object]:
    """Defaults of a dataclass's own fields, from its source: ``name: type = field(default=...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    out = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Call):
            for kw in node.value.keywords:
                if kw.arg == "default":
                    out[node.target.id] = ast.literal_eval(kw.value)
    return out


def fairseq_group_defaults(group: str, name: Optional[str]) -> Dict[str, object]:
    """fairseq's defaults for a config group: the registered dataclass of ``name`` for model, task,
    criterion, optimizer and lr_scheduler (the plugin's names included), FairseqConfig's otherwise."""
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.models import MODEL_DATACLASS_REGISTRY
    from fairseq.optim import OPTIMIZER_DATACLASS_REGISTRY
    from fairseq.optim.lr_scheduler import LR_SCHEDULER_DATACLASS_REGISTRY
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    import fast_hubert_plugin  # noqa: F401  (registers our names with fairseq)

    registries = {
        "model": MODEL_DATACLASS_REGISTRY,
        "task": TASK_DATACLASS_REGISTRY,
        "criterion": CRITERION_DATACLASS_REGISTRY,
        "optimizer": OPTIMIZER_DATACLASS_REGISTRY,
        "lr_scheduler": LR_SCHEDULER_DATACLASS_REGISTRY,
    }
    if group in registries:
        cls = registries[group].get(name)
        return dataclass_defaults(cls) if cls is not None else {}
    fields = {f.name: f.type for f in dataclasses.fields(FairseqConfig)}
    return dataclass_defaults(fields[group]) if dataclasses.is_dataclass(fields.get(group)) else {}


def official_defaults(official_dir: Path, group: str, name: str) -> Dict[str, object]:
    """Defaults of an official config class: its own fields from its source, then its fairseq parent's."""
    import importlib

    out = {}
    if (group, name) in FAIRSEQ_PARENTS:  # the plugin registers these names too: never ask the registry
        module, cls = FAIRSEQ_PARENTS[(group, name)]
        out.update(dataclass_defaults(getattr(importlib.import_module(module), cls)))
    else:
        out.update(fairseq_group_defaults(group, name))
    if (group, name) in OFFICIAL_CLASSES:
        path, cls = OFFICIAL_CLASSES[(group, name)]
        out.update(source_defaults(Path(official_dir) / OFFICIAL_PACKAGE / path, cls))
    return out


def with_defaults(settings: Dict[str, object], keys: List[str], defaults_of) -> Dict[str, dict]:
    """{key: {"value", "source"}} for the YAML's keys and ``keys``, missing ones from their group's defaults."""
    out = {k: {"value": v, "source": "yaml"} for k, v in settings.items()}
    for key in keys:
        group, field = key.split(".", 1)
        if key in out or group == "w2v":
            continue
        defaults = defaults_of(group, settings.get(f"{group}._name"))
        if field in defaults:
            out[key] = {"value": defaults[field], "source": "default"}
    return out


def run_overrides(path: Path) -> Dict[str, object]:
    """``key=value`` overrides of a fairseq-hydra-train command in a shell script (paths left out)."""
    out = {}
    for m in re.finditer(r"^([a-z_]+\.[a-z_.]+)=(\S+)", path.read_text(encoding="utf-8"), re.M):
        if "/" not in m[2]:
            value = m[2]
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
            out[m[1]] = value
    return out


def extract_official(official_dir: Path) -> dict:
    """The official values of every setting the table shows, with where each comes from."""
    base = Path(official_dir) / OFFICIAL_PACKAGE
    out = {"commit": OFFICIAL_COMMIT, "files": dict(OFFICIAL_YAMLS, run=OFFICIAL_RUN)}
    pretrain_model = official_defaults(official_dir, "model", "fasthubert")
    for kind, rel in OFFICIAL_YAMLS.items():
        settings = read_yaml(base / rel)
        values = with_defaults(settings, DEFAULT_ROWS[kind], lambda g, n: official_defaults(official_dir, g, n))
        for key in DEFAULT_ROWS[kind]:
            if key.startswith("w2v."):  # fine-tuning SpecAugment: the pretrained model config's defaults
                values[key] = {"value": pretrain_model[key[4:]], "source": "default (pretrained model config)"}
        out[kind] = values
    out["finetuning_run"] = run_overrides(base / OFFICIAL_RUN)
    return out


# ----------------------------------------------------------------------------- our configs
def our_configs(kind: str) -> Dict[str, Dict[str, object]]:
    """{config name: settings} of every YAML the package ships for ``kind``, found through config_dir."""
    from fast_hubert_plugin.config import config_dir

    return {p.stem: read_yaml(p) for p in sorted(config_dir(kind).glob("*.yaml"))}


def our_value(settings: Dict[str, object], key: str):
    """(value, from the YAML?) of an official row's key in one of our configs; (None, None) if no such key."""
    ours = OUR_KEY.get(key, key)
    if ours is None:
        return None, None
    if ours in settings:
        return settings[ours], True
    group, field = ours.split(".", 1)
    defaults = fairseq_group_defaults(group, settings.get(f"{group}._name"))
    return (defaults[field], False) if field in defaults else (None, None)


def frames_per_second(settings: Dict[str, object], official: bool) -> float:
    """What a size counts per second of audio: fbank frames (100), or samples for stock HuBERT's task."""
    if official or str(settings.get("task._name", "")).startswith(("fast_hubert", "fasthubert")):
        return 100.0
    return float(settings.get("task.sample_rate", 16000))


def derived(settings: Dict[str, object], kind: str, official: bool, get) -> Dict[str, object]:
    """The derived rows of one config; ``get(key)`` is its value of a key (defaults included)."""
    out = {}
    world = get("distributed_training.distributed_world_size") or 1
    freq = get("optimization.update_freq") or [1]
    if get("dataset.max_tokens") is not None:
        per_gpu = get("dataset.max_tokens") / frames_per_second(settings, official)
        out["audio per GPU per step (s)"] = f"{per_gpu:,.1f}"
        out["audio per update (s)"] = f"{per_gpu * world * freq[0]:,.1f} ({world} GPU x {freq[0]})"
    if kind == "pretraining":
        name = str(get("model._name"))
        layers = get("model.encoder_layers") or 12
        if official:
            blocks = [int(b) + 1 for b in ast.literal_eval(get("model.predict_layers"))] if get("model.ils") else []
        elif name.startswith("fast"):
            blocks = ast.literal_eval(str(settings.get("model.supervised_layers", "[]")))
        else:
            blocks = None
        out[DERIVED[0]] = "last (cosine loss)" if blocks is None else str(sorted(set(blocks) | {layers}))
    return out


def show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text.replace("|", "\\|")


def is_base(name: str, settings: Dict[str, object]) -> bool:
    """A config of the paper's model at its scale (our naming: "base"), not stock HuBERT: the one whose
    differences from the official values the table explains."""
    return "base" in name and settings.get("model._name") != "hubert"


# ----------------------------------------------------------------------------- the table
def paper_system(name: str, settings: Dict[str, object], kind: str) -> str:
    """Which of the paper's systems a config reproduces, from what it sets."""
    model = settings.get("model._name")
    if kind == "finetuning":
        if settings.get("task._name") == "hubert_pretraining":
            return "none: stock HuBERT's fine-tuning at the tiny size (the control of the demo's comparison)"
        hours = re.search(r"(\d+)h", name)
        if hours and hours[1] == "100":
            return (
                "the paper's train-clean-100 fine-tuning (SpecAugment on the fbank as the official code), with "
                "letter CTC where the released system used WordPiece-2000 CTC"
            )
        if hours:
            return (
                f"fine-tuning a Base model on {hours[1]} h with letter CTC (fairseq's HuBERT recipe, SpecAugment on "
                "the fbank as the official code); the official code ships a 100 h recipe only"
            )
        return "none: sized for 2 CPU cores (tests, demo)"
    if model == "hubert":
        return (
            "stock HuBERT Base (fairseq's recipe), the paper's baseline"
            if "base" in name
            else ("none: stock HuBERT at the tiny size (the control of the demo's comparison)")
        )
    layers = settings.get("model.encoder_layers", 12)
    ils = ast.literal_eval(str(settings.get("model.supervised_layers", "[]")))
    if settings.get("model.encoder_embed_dim", 768) != 768:
        return "none: sized for 2 CPU cores (tests, demo)" + (" (with ILS)" if ils else "")
    what = "Fast-HuBERT Base (fbank, 40 ms, CE)" if settings.get("model.conv_kernel_sizes") == "5,5" else "Fast-HuBERT"
    return f"{what} + ILS at blocks {sorted(set(ils) | {layers})}" if ils else f"{what}, without ILS"


def table(kind: str, official: dict, ours: Dict[str, Dict[str, object]]) -> List[str]:
    values = official[kind]
    keys = list(values) + [k for k in DERIVED if kind == "pretraining" or k != DERIVED[0]]
    run = official["finetuning_run"] if kind == "finetuning" else None

    def official_get(key):
        return values[key]["value"] if key in values else None

    official_derived = derived({k: v["value"] for k, v in values.items()}, kind, True, official_get)
    ours_derived = {}
    for name, settings in ours.items():
        ours_derived[name] = derived(settings, kind, False, lambda key, s=settings: our_value(s, key)[0])
    header = ["setting", "official YAML"] + (["official run (`fasthubert_finetune.sh`)"] if run else [])
    header += [f"`{n}`" for n in ours] + ["why ours differs (Base configs)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        if key in DERIVED:
            ref = official_derived.get(key)
            cells = [ours_derived[n].get(key) for n in ours]
        else:
            ref = values[key]["value"]
            cells = []
            for settings in ours.values():
                value, from_yaml = our_value(settings, key)
                cells.append(None if from_yaml is None else value)
        shown = [("=" if show(c) == show(ref) else show(c)) for c in cells]
        base_differs = any(is_base(n, s) and show(c) != show(ref) for (n, s), c in zip(ours.items(), cells))
        why = WHY.get(f"{kind}:{key}", WHY.get(key, "**not explained**")) if base_differs else ""
        source = "" if key in DERIVED or values[key]["source"] == "yaml" else f" ({values[key]['source']})"
        row = [f"`{key}`" if key not in DERIVED else key, show(ref) + source]
        row += [show(run[key]) if key in run else ""] if run else []
        lines.append("| " + " | ".join(row + shown + [why]) + " |")
    return lines


def document(official: dict) -> List[str]:
    kinds = {kind: our_configs(kind) for kind in ("pretraining", "finetuning")}
    out = [
        "# The recipe table: the official Fast-HuBERT configs against ours",
        "",
        "Generated by `python benchmarks/recipe_table.py` from the official YAMLs (github yanghaha0908/FastHuBERT at "
        f"{official['commit'][:7]}: `{official['files']['pretraining']}`, `{official['files']['finetuning']}`, and "
        f"the overrides of `{official['files']['run']}`, extracted into `official_recipe_values.json`) and every YAML "
        "the package ships (`fast_hubert_plugin.config.config_dir`). A value the YAML leaves out is the config "
        "class's default (marked so for the official side; for ours, shown as the value). `=`: our value is the "
        "official one. Sizes: the official task and ours count fbank frames (100 per second), stock HuBERT's "
        "samples (16,000 per second).",
        "",
        "## Which of the paper's systems each config reproduces",
        "",
        "| config | system |",
        "|---|---|",
        f"| official `{official['files']['pretraining']}` | Fast-HuBERT Base + ILS at blocks [4, 12] (`ils` and "
        "`predict_layers` [3, 11] are its model defaults), the released system's recipe (trained on MonoBERT units, "
        "which the config does not name) |",
        f"| official `{official['files']['finetuning']}` + `{official['files']['run']}` | fine-tuning on "
        "train-clean-100 with WordPiece-2000 CTC (`fasthubert_ctc_bpe`), the paper's 100 h row |",
    ]
    for kind, configs in kinds.items():
        out += [f"| `{kind}/{name}.yaml` | {paper_system(name, s, kind)} |" for name, s in configs.items()]
    for kind, configs in kinds.items():
        out += ["", f"## {kind.capitalize()}", "", *table(kind, official, configs)]
    return out + [""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, help="a folder holding the official code as fasthubert_official")
    p.add_argument("--output", type=Path, default=TABLE)
    args = p.parse_args(argv)
    if args.official:
        write(OFFICIAL_VALUES, json.dumps(extract_official(args.official), indent=1) + "\n")
    official = json.loads(OFFICIAL_VALUES.read_text(encoding="utf-8"))
    write(args.output, "\n".join(document(official)))


def write(path: Path, text: str) -> None:
    from fast_hubert_plugin.utils.atomic import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
