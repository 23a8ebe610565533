"""The README.md model card written into an export folder."""

import os
from typing import Optional

CITATION = """@inproceedings{yang2023fasthubert,
  title     = {Fast-HuBERT: An Efficient Training Framework for Self-Supervised Speech Representation Learning},
  author    = {Yang, Guanrou and Ma, Ziyang and Zheng, Zhisheng and Song, Yakun and Niu, Zhikang and Chen, Xie},
  booktitle = {IEEE Automatic Speech Recognition and Understanding Workshop (ASRU)},
  year      = {2023}
}
@article{hsu2021hubert,
  title   = {HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden Units},
  author  = {Hsu, Wei-Ning and Bolte, Benjamin and Tsai, Yao-Hung Hubert and Lakhotia, Kushal and
             Salakhutdinov, Ruslan and Mohamed, Abdelrahman},
  journal = {IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  year    = {2021}
}"""


def _where(path) -> str:
    return os.path.basename(os.path.normpath(str(path))) if path else "?"


def _manifest_rows(task: dict, dataset: dict) -> str:
    """' (N utterances in train.tsv)' when the training manifest is still where the run read it."""
    data, split = task.get("data"), (dataset or {}).get("train_subset", "train")
    path = os.path.join(str(data), f"{split}.tsv") if data else None
    if not path or not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as f:
        rows = sum(1 for line in f if line.strip()) - 1
    return f" ({rows} utterances in `{split}.tsv`)"


def model_card(exported, checkpoint: str, vocab: Optional[list] = None) -> str:
    c = exported.config
    task = exported.checkpoint_cfg.get("task") or {}
    pre_task = ((exported.checkpoint_cfg.get("model") or {}).get("w2v_args") or {}).get("task") or {}
    labels = task.get("labels") or []
    rate = 100 / 2 ** len(c.subsampler_kernel_sizes)
    kind = "fine-tuned with letter CTC (fairseq `hubert_ctc`)" if exported.is_ctc else "pretrained (self-supervised)"
    loader = "AutoModelForCTC" if exported.is_ctc else "AutoModel"
    lines = [
        "---",
        "library_name: transformers",
        "tags: [audio, speech, fast-hubert, hubert" + (", automatic-speech-recognition]" if exported.is_ctc else "]"),
        "---",
        "# Fast-HuBERT (exported from fast-hubert)",
        "",
        f"A Fast-HuBERT model {kind}, exported from `{_where(checkpoint)}` by `fast-hubert-export`. "
        "It loads with transformers and torch only (`trust_remote_code=True`; the model code is in this folder).",
        "",
        "## What was trained on what",
        f"- Architecture: 80-dim Kaldi fbank + global CMVN -> {len(c.subsampler_kernel_sizes)} stride-2 Conv1d+GLU "
        f"({c.subsampler_channels} channels, kernels {list(c.subsampler_kernel_sizes)}) -> {c.subsampler_dim}-d -> "
        f"Transformer {c.num_hidden_layers} x {c.hidden_size} (FFN {c.intermediate_size}, {c.num_attention_heads} heads, "
        f"post-LN); {rate:g} frames per second.",
        f"- Training data (fairseq manifests in): `{_where(task.get('data'))}`"
        + _manifest_rows(task, exported.checkpoint_cfg.get("dataset"))
        + f"; labels: {', '.join(labels) or '?'}"
        + (f", label folder `{_where(task.get('label_dir'))}`" if task.get("label_dir") else ""),
        f"- Updates: {exported.num_updates if exported.num_updates is not None else '?'}",
        "- CMVN statistics of the training fbank: in `preprocessor_config.json` (`cmvn_mean`, `cmvn_inv_std`).",
    ]
    if exported.is_ctc and pre_task:
        lines.append(
            f"- Pretrained (before fine-tuning) on the manifests in `{_where(pre_task.get('data'))}`, "
            f"labels: {', '.join(pre_task.get('labels') or []) or '?'}"
        )
    if exported.is_ctc:
        lines.append(
            f"- CTC vocabulary: {len(vocab or [])} letters and symbols (`vocab.json`); blank `<s>` (id 0), "
            "`|` ends a word; greedy decoding as `fast-hubert-decode` (Viterbi)."
        )
    else:
        lines.append("- Not exported: the pretraining-only mask embedding and the k-means CE heads.")
    lines += [
        "",
        "## Layer convention",
        f"`output_hidden_states=True` returns {c.num_hidden_layers + 1} hidden states: `hidden_states[0]` is the "
        "Transformer input (projected subsampler output, before the positional convolution), `hidden_states[L]` the "
        "output of block L. The same numbering as fast-hubert's `FeatureExtractor` and `fast-hubert-dump --layer L`. "
        "Frames past an utterance's end are padding; `model.output_lengths(inputs['attention_mask'].sum(-1))` gives "
        "each utterance's frame count.",
        "",
        "## Use",
        "```python",
        "import soundfile as sf",
        f"from transformers import AutoFeatureExtractor, {loader}",
        "fe = AutoFeatureExtractor.from_pretrained(FOLDER, trust_remote_code=True)",
        f"model = {loader}.from_pretrained(FOLDER, trust_remote_code=True).eval()",
        "wav, sr = sf.read('utt.flac', dtype='float32')  # 16 kHz mono",
        "inputs = fe([wav], sampling_rate=16000, return_tensors='pt', padding=True)",
        "out = model(**inputs, output_hidden_states=True)",
        "```",
    ]
    if exported.is_ctc:
        lines += [
            "",
            "```python",
            "from transformers import pipeline",
            "asr = pipeline('automatic-speech-recognition', model=FOLDER, trust_remote_code=True)",
            "asr({'raw': wav, 'sampling_rate': 16000})['text']   # a file path needs ffmpeg",
            "```",
        ]
    lines += ["", "## Citation", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)
