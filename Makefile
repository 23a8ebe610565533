# fast-hubert: set-up, tests and the end-to-end demo (CPU). See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Keep every install, including fairseq-fixed's compiled build, on CPU torch.
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt PIP_DISABLE_PIP_VERSION_CHECK=1 $(PY) -m pip

.PHONY: setup setup-gpu test test-fast lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-base.txt requirements-fairseq.txt requirements-dev.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	# fairseq-fixed is an sdist compiled against the torch already in the venv (no isolated build env)
	$(PIP) install -q torch==2.13.0 numpy==2.4.6 cython==3.3.1 setuptools==84.2.1 wheel==0.48.0
	$(PIP) install -q --no-build-isolation -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-build-isolation --no-deps -r requirements-fairseq.txt
	$(PIP) uninstall -q -y torchaudio 2>/dev/null || true  # an older venv may hold the unloadable one
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import fast_hubert_plugin, fairseq, faiss, kaldi_native_fbank, transformers; print('fast-hubert environment ready')"
	touch $@

# GPU machines: CUDA torch from PyPI and faiss-gpu instead of faiss-cpu (no CPU constraint).
setup-gpu:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 numpy==2.4.6 cython==3.3.1 setuptools==84.2.1 wheel==0.48.0
	$(PY) -m pip install -q --no-build-isolation -r requirements-gpu.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -r requirements-fairseq.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import torch, faiss; print('cuda:', torch.cuda.is_available(), 'faiss gpus:', faiss.get_num_gpus())"
	touch $(VENV)/.installed

# The whole suite (what CI runs, after lint); the slowest tests are listed at the end.
test: setup
	OMP_NUM_THREADS=2 $(PY) -m pytest tests -q --durations=15

# The unit tier for the development loop: everything but the end-to-end trainings (tests/conftest.py, marker e2e).
test-fast: setup
	OMP_NUM_THREADS=2 $(PY) -m pytest tests -q -m "not e2e" --durations=10

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

demo: setup
	$(VENV)/bin/python examples/demo.py

bench: setup
	$(PY) benchmarks/train_step_speed.py

clean:
	rm -rf $(VENV) demo_output
