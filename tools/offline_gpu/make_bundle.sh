#!/usr/bin/env bash
# Build a bundle that lets the project run on an offline GPU machine whose python3 (3.12) already holds
# CUDA torch, numpy, scikit-learn, matplotlib, tqdm, sacrebleu, transformers, but NOT fairseq, hydra,
# omegaconf, soundfile/cffi, kaldi-native-fbank, soxr, editdistance or faiss.
# Usage (from the project's root, after `make setup`):  tools/offline_gpu/make_bundle.sh [BUNDLE_DIR]
# BUNDLE_DIR (default .gpu_bundle) must be git-ignored (add it to .git/info/exclude) and carried to the
# GPU machine; there, `source BUNDLE_DIR/env.sh` makes `import fairseq, fast_hubert_plugin` and
# `fairseq-hydra-train` work. About 18 MB; the transfer limit is 64 MiB with the working tree, so keep
# data you carry beside it small (short FLAC subsets; tests/data already travels with the checkout).
set -eu
B=${1:-.gpu_bundle}; PYV=${PYV:-3.12}
SP=$(.venv/bin/python -c "import site; print(site.getsitepackages()[0])")
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$B"; mkdir -p "$B/site" "$B/whl"
# pure-Python packages, copied from the project's own venv (same versions as requirements.txt)
for p in fairseq fairseq_cli hydra omegaconf antlr4 soundfile.py _soundfile.py _soundfile_data pycparser; do
  cp -r "$SP/$p" "$B/site/"
done
find "$B/site" -name __pycache__ -prune -exec rm -rf {} +
find "$B/site/fairseq" -name "*.so" -delete                              # built for this Python: useless there
find "$B/site/fairseq/examples" -type f ! -name "*.py" -delete          # 12 MB of examples' data
cp "$HERE/data_utils_fast.py" "$B/site/fairseq/data/"                     # stands in for the Cython batching
# compiled dependencies: wheels for the GPU machine's Python
pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$B/whl" \
  cffi==2.1.1 kaldi-native-fbank==1.23.0 soxr==1.1.0 editdistance==0.8.1 bitarray==3.12.3
cp "$HERE/env.sh" "$B/env.sh"
du -sh "$B"
