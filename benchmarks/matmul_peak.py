"""The chip's measured matrix-product peak: the denominator of model FLOPs utilisation (MFU) in the GPU
records. Square products (default 8192^3 in bf16) timed with CUDA events, 5 rounds of ``--iters`` after 3
warm-up products; the peak is the fastest round (``matmul_peak_flops`` in
``fast_hubert_plugin/utils/flops.py``). Its last line, ``PEAK_TFLOPS=...``, is what ``gpu_records.sh`` passes
to the other parts as ``--peak-tflops``.

    python benchmarks/matmul_peak.py --device cuda --output benchmarks/results/matmul_peak_cuda.md
    python benchmarks/matmul_peak.py --device cpu --n 1024 --dtype fp32      # a rehearsal
"""

import argparse
import os

from fast_hubert_plugin.utils.atomic import atomic_write_text
from fast_hubert_plugin.utils.flops import matmul_peak_flops
from fast_hubert_plugin.utils.machine import describe

from common import reproduce


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--n", type=int, default=8192, help="the products' side")
    p.add_argument("--iters", type=int, default=20, help="products per timed round")
    p.add_argument("--output", default=None)
    return p.parse_args(argv)


def record(args, argv, peak: dict) -> list:
    rounds = ", ".join(f"{r / 1e12:.4g}" for r in peak["rounds"])
    return [
        f"# Measured matrix-product peak ({args.dtype}, {args.device})",
        "",
        f"Reproduce: `{reproduce('matmul_peak.py', argv)}`",
        "",
        f"- machine: {describe(args.device)}; load average {os.getloadavg()[0]:.2f}",
        f"- {peak['n']} x {peak['n']} @ {peak['n']} x {peak['n']}, {peak['iters']} products per round, 5 rounds after "
        f"3 warm-up products",
        "",
        "| peak (TFLOP/s, fastest round) | rounds (TFLOP/s) |",
        "|---:|---|",
        f"| {peak['flops'] / 1e12:.4g} | {rounds} |",
        "",
    ]


def main(argv=None):
    args = parse_args(argv)
    peak = matmul_peak_flops(args.device, args.dtype, args.n, args.iters)
    out = record(args, argv, peak)
    if args.output:
        atomic_write_text(args.output, "\n".join(out))
    print("\n".join(out))
    print(f"PEAK_TFLOPS={peak['flops'] / 1e12:.4g}")


if __name__ == "__main__":
    main()
