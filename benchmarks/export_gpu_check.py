"""The exported transformers model on a GPU: CUDA against CPU, fp32 and bf16 (Markdown on stdout).

Exports a fast_hubert checkpoint with ``fast-hubert-export``, loads the folder through transformers
(``trust_remote_code``) and runs the batched feature extractor and the model on up to 16 real
utterances of a manifest: on the CPU in fp32 (the reference), on CUDA in fp32 and under bf16
autocast. Reports the largest absolute difference of the fbank (also against kaldi-native-fbank, the
training fbank), of every hidden state, and the time per batch.

    python benchmarks/export_gpu_check.py CHECKPOINT EXPORT_DIR MANIFEST

MANIFEST: a speech-folder manifest (``path`` column, relative to its folder), e.g. SPEECH_DIR/so762_dev.tsv.
``quality_vs_gpu_time.py`` runs it on the fast_hubert model it pretrains.
"""

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the script


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats=5):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a fast_hubert checkpoint")
    p.add_argument("export_dir", help="where fast-hubert-export writes the transformers folder")
    p.add_argument("manifest", help="a speech-folder manifest (its first 16 utterances are used)")
    return p.parse_args(argv)


def exported(checkpoint, export_dir):
    """The feature extractor and the model of the exported folder, loaded through transformers."""
    from transformers import AutoFeatureExtractor, AutoModel

    from fast_hubert_plugin.export.cli import export

    export(checkpoint, export_dir, overwrite=True)
    fe = AutoFeatureExtractor.from_pretrained(export_dir, trust_remote_code=True)
    return fe, AutoModel.from_pretrained(export_dir, trust_remote_code=True).eval()


def utterances(manifest) -> list:
    with open(manifest, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:16]
    return [sf.read(Path(manifest).parent / r["path"], dtype="float32")[0] for r in rows]


def feature_rows(fe, wavs, ref_in, cuda_in) -> None:
    """The fbank on CUDA against the CPU and against kaldi-native-fbank (training's), then the normalised
    features."""
    from fast_hubert_plugin.features.kaldi_fbank import compute_fbank

    mask = ref_in["attention_mask"].bool()  # fbank frames
    raw_cpu, frames = fe.fbank([torch.from_numpy(w) for w in wavs])
    raw_cuda, _ = fe.fbank([torch.from_numpy(w) for w in wavs], device=DEVICE)
    knf = max(float(np.abs(raw_cpu[i, : int(frames[i])].numpy() - compute_fbank(w)).max()) for i, w in enumerate(wavs))
    print("| comparison | max abs difference |\n|---|---|")
    print(f"| fbank, CUDA vs CPU (float64 inside) | {float((raw_cuda.cpu() - raw_cpu).abs().max()):.2e} |")
    print(f"| fbank, CPU export vs kaldi-native-fbank (training) | {knf:.2e} |")
    print(
        f"| normalised features, CUDA vs CPU (valid frames) | "
        f"{float((cuda_in['input_features'].cpu() - ref_in['input_features'])[mask].abs().max()):.2e} |"
    )


def hidden_state_rows(gpu, inputs, ref, out_mask) -> None:
    """Every hidden state on CUDA, fp32 and under bf16 autocast, against the CPU's in fp32."""
    out32 = gpu(**inputs, output_hidden_states=True).hidden_states
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out16 = gpu(**inputs, output_hidden_states=True).hidden_states
    for name, out in (("fp32", out32), ("bf16 autocast", out16)):
        diffs = [float((o.float().cpu() - r)[out_mask].abs().max()) for o, r in zip(out, ref)]
        scale = max(float(r[out_mask].abs().max()) for r in ref)
        print(
            f"| hidden states 0..{len(ref) - 1}, CUDA {name} vs CPU fp32 (valid frames; largest abs value "
            f"{scale:.1f}) | " + ", ".join(f"{d:.1e}" for d in diffs) + " |"
        )


def timing_line(fe, wavs, gpu, inputs) -> None:
    t_fe = timed(lambda: fe(wavs, sampling_rate=16000, return_tensors="pt", padding=True, device=DEVICE))
    t32 = timed(lambda: gpu(**inputs))

    def bf16():
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            gpu(**inputs)

    t16 = timed(bf16)
    print(
        f"\nMedian of 5 timed batches: feature extractor on CUDA {t_fe * 1e3:.1f} ms, model fp32 "
        f"{t32 * 1e3:.1f} ms, bf16 autocast {t16 * 1e3:.1f} ms."
    )


def main(argv=None):
    args = parse_args(argv)
    fe, model = exported(args.checkpoint, args.export_dir)
    wavs = utterances(args.manifest)
    gpu_name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (dry run)"
    print(f"# Exported fast_hubert on {gpu_name}\n")
    print(
        f"torch {torch.__version__}; {len(wavs)} utterances, {sum(map(len, wavs)) / 16000:.1f} s of audio in one "
        "padded batch; reference: the same folder on the CPU in fp32.\n"
    )
    with torch.inference_mode():
        ref_in = fe(wavs, sampling_rate=16000, return_tensors="pt", padding=True)
        ref = model(**ref_in, output_hidden_states=True).hidden_states
        cuda_in = fe(wavs, sampling_rate=16000, return_tensors="pt", padding=True, device=DEVICE)
        out_len = model.output_lengths(ref_in["attention_mask"].sum(-1))
        out_mask = torch.arange(ref[0].shape[1])[None, :] < out_len[:, None]  # 25 Hz frames
        feature_rows(fe, wavs, ref_in, cuda_in)
        gpu = model.to(DEVICE)
        inputs = {k: v.to(DEVICE) for k, v in cuda_in.items()}
        hidden_state_rows(gpu, inputs, ref, out_mask)
        timing_line(fe, wavs, gpu, inputs)


if __name__ == "__main__":
    main()
