"""fast-hubert: Fast-HuBERT pretraining as a fairseq user-dir plugin.

Exact, tested versions live in requirements.txt (CPU) and are installed by `make setup`;
the ranges below are what the code needs.
"""

from setuptools import find_packages, setup

CONFIG_PACKAGES = ["fast_hubert_plugin.config.pretraining", "fast_hubert_plugin.config.finetuning"]

setup(
    name="fast-hubert",
    version="0.1.0",
    description="Fast-HuBERT self-supervised speech pretraining as a fairseq plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["fast_hubert_plugin", "fast_hubert_plugin.*"]) + CONFIG_PACKAGES,
    # The repository's config/ is the one copy of the Hydra configs; a built package carries it as
    # fast_hubert_plugin/config/{pretraining,finetuning}/ (fast_hubert_plugin.config_dir finds either).
    package_dir={package: f"config/{package.rsplit('.', 1)[1]}" for package in CONFIG_PACKAGES},
    package_data={package: ["*.yaml"] for package in CONFIG_PACKAGES},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "fairseq-fixed==0.12.3.1",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3,<2.4",
        "soundfile>=0.12",
        "soxr>=0.5",
        "kaldi-native-fbank>=1.20",
        "tqdm>=4.60",
        "tensorboardX>=2.6",
        "editdistance>=0.6",
    ],
    extras_require={
        # Exactly one FAISS build: faiss-cpu here, faiss-gpu on CUDA machines.
        "cpu": ["faiss-cpu>=1.8"],
        "gpu": ["faiss-gpu>=1.8"],
        "report": ["matplotlib>=3.7"],
        "bench": ["scikit-learn>=1.3"],
        "lm": ["flashlight-text>=0.0.7"],
        "dev": ["pytest>=8", "pytest-random-order>=1.2"],
        # fast-hubert-export and loading its folders (tested with transformers 5.24: config dataclasses, masking utils)
        "hf": ["transformers>=5.24,<6", "safetensors>=0.8"],
    },
    entry_points={
        "console_scripts": [
            "fast-hubert-cmvn=fast_hubert_plugin.cli.cmvn:main",
            "fast-hubert-store-fbank=fast_hubert_plugin.cli.store_fbank:main",
            "fast-hubert-dump=fast_hubert_plugin.clustering.dump:main",
            "fast-hubert-learn-kmeans=fast_hubert_plugin.clustering.learn:main",
            "fast-hubert-apply-kmeans=fast_hubert_plugin.clustering.apply:main",
            "fast-hubert-label=fast_hubert_plugin.clustering.label:main",
            "fast-hubert-cluster-report=fast_hubert_plugin.clustering.report:main",
            "fast-hubert-prepare-ctc=fast_hubert_plugin.finetuning.prepare:main",
            "fast-hubert-decode=fast_hubert_plugin.finetuning.decode:main",
            "fast-hubert-export=fast_hubert_plugin.export.cli:main",
            "fast-hubert-probe=fast_hubert_plugin.probing.probe:main",
            # fairseq-hydra-train with the plugin registered first (torchrun without GPUs)
            "fast-hubert-hydra-train=fast_hubert_plugin.hydra_train:main",
        ]
    },
)
