"""Package definition of tb_deadneurons (setuptools)."""

from setuptools import find_packages, setup

TENSORFLOW = "tensorflow-cpu>=2.16,<2.22"
# Tests pin PyTorch's CPU build: 2.13.0 is the CPU wheel this project's
# machines carry; an unpinned "torch" resolves to the multi-GB CUDA build,
# which can crash when imported into one process with TensorFlow.
TORCH_TEST = "torch==2.13.0"

setup(
    name="tb_deadneurons",
    version="0.1.0",
    description="TensorBoard plugin that shows when and where a network's units die",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tb_deadneurons", "tb_deadneurons.*"]),
    package_data={"tb_deadneurons": ["static/*", "proto/*.proto"]},
    include_package_data=True,
    # The viewing side (TensorBoard + the plugin + the report CLI) needs no
    # TensorFlow; the writer does.
    install_requires=["tensorboard>=2.16", "protobuf>=6.31.1", "numpy>=1.24"],
    extras_require={
        "tensorflow": ["tensorflow>=2.16,<2.22"],
        "tensorflow-cpu": [TENSORFLOW],
        "demo": [TENSORFLOW, "scikit-learn>=1.3"],
        "torch": ["torch>=2.1"],
        "lightning": ["torch>=2.1", "lightning>=2.2"],
        "jax": ["jax>=0.4.30"],
        "notebook": ["pandas>=2", "matplotlib>=3.7"],
        "test": [
            TENSORFLOW,
            TORCH_TEST,
            "jax[cpu]>=0.4.30",
            "keras-hub>=0.20",
            "transformers>=4.40",
            "lightning>=2.2",
            "pandas>=2",
            "matplotlib>=3.7",
            "scikit-learn>=1.3",
            "pytest>=8",
            "playwright>=1.45",
            "werkzeug>=2",
            "ruff>=0.6",
            # protoc 31.1 (= protobuf 6.31.1, our lowest runtime) for the
            # test that regenerates the committed _pb2 module.
            "grpcio-tools==1.74.0",
        ],
    },
    entry_points={
        "tensorboard_plugins": [
            "deadneurons = tb_deadneurons.plugin:DeadNeuronsLoader",
        ],
        "console_scripts": ["tb-deadneurons = tb_deadneurons.cli:main"],
    },
    classifiers=[
        "Framework :: TensorFlow",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
