"""fast-hubert-export: a fast-hubert checkpoint -> a Hugging Face transformers folder.

  fast-hubert-export CHECKPOINT.pt OUT_DIR [--dict dict.ltr.txt]

CHECKPOINT is a pretrained ``fast_hubert`` checkpoint or a fine-tuned ``hubert_ctc`` one. OUT_DIR gets:

  config.json, model.safetensors     the model (FastHubertModel, or FastHubertForCTC when fine-tuned)
  configuration_fast_hubert.py,      its code, loaded with trust_remote_code=True; it imports only
  modeling_fast_hubert.py,           torch, numpy and transformers
  feature_extraction_fast_hubert.py,
  kaldi_fbank.py                     the training fbank (the plugin's features/kaldi_fbank.py)
  preprocessor_config.json           16 kHz waveform -> Kaldi fbank + the checkpoint's CMVN statistics
  vocab.json, tokenizer_config.json, the letter vocabulary, a CTC tokenizer decoding as fast-hubert-decode,
  tokenization_fast_hubert.py,       and a Wav2Vec2Processor (fine-tuned checkpoints only), so
  processor_config.json              AutoModelForCTC, AutoProcessor and the ASR pipeline work
  README.md                          model card: what was trained on what, the layer convention, citation

The folder is written beside OUT_DIR and renamed into place when complete. A stock HuBERT
checkpoint is refused (transformers has its own converter for it).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from ..features import kaldi_fbank
from ..utils.cli import console_script
from .convert import ExportError, convert_checkpoint

HF_DIR = Path(__file__).resolve().parent / "hf"
CODE_FILES = ("configuration_fast_hubert.py", "modeling_fast_hubert.py", "feature_extraction_fast_hubert.py")
TOKENIZER_FILE = "tokenization_fast_hubert.py"
BLANK = "<s>"


def read_letter_dict(path: Path) -> List[str]:
    """fairseq's dictionary order: <s>, <pad>, </s>, <unk>, then one symbol per line of dict.ltr.txt."""
    symbols = [BLANK, "<pad>", "</s>", "<unk>"]
    if not path.is_file():
        raise ExportError(
            f"{path}: letter dictionary not found. Fix: pass --dict with the dict.ltr.txt the model was fine-tuned with"
        )
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 2 or not parts[0]:
                raise ExportError(
                    f"{path}, line {n}: expected 'symbol count'. Fix: pass the dict.ltr.txt of the "
                    "fine-tuning data (written by fast-hubert-prepare-ctc --write-dict)"
                )
            symbols.append(parts[0])
    return symbols


def letter_dict_path(exported, given: Optional[str]) -> Path:
    if given:
        return Path(given)
    task = exported.checkpoint_cfg.get("task") or {}
    labels = task.get("labels") or ["ltr"]
    label = labels[0] if isinstance(labels, list) else str(labels)
    for folder in (task.get("label_dir"), task.get("data")):
        if folder and (Path(folder) / f"dict.{label}.txt").is_file():
            return Path(folder) / f"dict.{label}.txt"
    raise ExportError(
        f"the letter dictionary dict.{label}.txt of the fine-tuning data was not found in "
        f"task.label_dir / task.data of the checkpoint. Fix: pass --dict PATH/dict.{label}.txt"
    )


def export(checkpoint: str, out_dir: str, dict_path: Optional[str] = None, overwrite: bool = False) -> Path:
    """Write the transformers folder of ``checkpoint`` to ``out_dir`` (atomically: rename when complete)."""
    from transformers import Wav2Vec2Processor

    from .hf.feature_extraction_fast_hubert import FastHubertFeatureExtractor
    from .hf.modeling_fast_hubert import FastHubertForCTC, FastHubertModel
    from .hf.tokenization_fast_hubert import FastHubertCTCTokenizer
    from .model_card import model_card

    out = Path(out_dir)
    if not os.path.isfile(checkpoint):
        raise ExportError(
            f"{checkpoint}: checkpoint not found. Fix: pass a checkpoint_best.pt / checkpoint_last.pt "
            "of a fast-hubert pretraining or fine-tuning run"
        )
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: already exists. Fix: choose a new folder or pass --overwrite")
    exported = convert_checkpoint(checkpoint)
    vocab = None
    if exported.is_ctc:
        path = letter_dict_path(exported, dict_path)
        vocab = read_letter_dict(path)
        if len(vocab) != exported.config.vocab_size:
            raise ExportError(
                f"{path}: {len(vocab)} symbols (with <s> <pad> </s> <unk>) but the CTC head has "
                f"{exported.config.vocab_size} outputs. Fix: pass the dict.ltr.txt the model was fine-tuned with"
            )

    cls = FastHubertForCTC if exported.is_ctc else FastHubertModel
    model = cls(exported.config)
    missing, unexpected = model.load_state_dict(exported.state_dict, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"{checkpoint}: weights do not fit the exported model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    # a pretrained export loads in AutoModelForCTC too (new head, vocab_size=...): fine-tuning with transformers
    model.config.auto_map = {
        "AutoConfig": "configuration_fast_hubert.FastHubertConfig",
        "AutoModel": "modeling_fast_hubert.FastHubertModel",
        "AutoModelForCTC": "modeling_fast_hubert.FastHubertForCTC",
    }
    fe = FastHubertFeatureExtractor(
        feature_size=exported.config.num_mel_bins, cmvn_mean=exported.cmvn_mean, cmvn_inv_std=exported.cmvn_inv_std
    )
    fe_auto = {"AutoFeatureExtractor": "feature_extraction_fast_hubert.FastHubertFeatureExtractor"}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in CODE_FILES:
            shutil.copyfile(HF_DIR / name, tmp / name)
        shutil.copyfile(kaldi_fbank.__file__, tmp / "kaldi_fbank.py")
        if exported.is_ctc:
            shutil.copyfile(HF_DIR / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
            vocab_file = tmp / "vocab.json"
            vocab_file.write_text(
                json.dumps({s: i for i, s in enumerate(vocab)}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
            tokenizer = FastHubertCTCTokenizer(str(vocab_file))
            Wav2Vec2Processor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            _add_auto_map(
                tmp / "tokenizer_config.json",
                {"AutoTokenizer": ["tokenization_fast_hubert.FastHubertCTCTokenizer", None]},
            )
            _add_auto_map(tmp / "processor_config.json", fe_auto, optional=True, nested="feature_extractor")
        fe.save_pretrained(tmp)
        _add_auto_map(tmp / "preprocessor_config.json", fe_auto)
        (tmp / "README.md").write_text(model_card(exported, checkpoint, vocab), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _add_auto_map(path: Path, entries: dict, optional: bool = False, nested: Optional[str] = None) -> None:
    """Name the remote-code classes in a saved json (and in its ``nested`` section, which transformers reads first)."""
    if optional and not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("auto_map", {}).update(entries)
    if nested and isinstance(data.get(nested), dict):
        data[nested].setdefault("auto_map", {}).update(entries)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@console_script("fast-hubert-export")
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="fast-hubert-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="fast_hubert (pretrained) or hubert_ctc (fine-tuned) checkpoint")
    parser.add_argument("out_dir", help="folder to write (must not exist, unless --overwrite)")
    parser.add_argument(
        "--dict",
        help="fine-tuned checkpoints: the dict.ltr.txt they were trained with "
        "(default: from the checkpoint's task.label_dir / task.data)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    args = parser.parse_args(argv)
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise SystemExit("transformers is not installed. Fix: pip install 'fast-hubert[hf]'") from None
    try:
        out = export(args.checkpoint, args.out_dir, args.dict, args.overwrite)
    except ExportError as e:
        raise SystemExit(str(e)) from None
    print(f"exported {args.checkpoint} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
