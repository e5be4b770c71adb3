"""Installs coseg-tf. `export/` and `configs/` are mapped into the `coseg_tf` namespace."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
README = HERE / "README.md"

# Every sub-package (a directory with __init__.py) of coseg_tf/ and export/;
# tests/packaging/check_wheel.sh fails if a module of the source tree is not in the wheel.
PACKAGES = (
    ["coseg_tf"]
    + [f"coseg_tf.{p}" for p in find_packages("coseg_tf")]
    + ["coseg_tf.configs", "coseg_tf.export"]
    + [f"coseg_tf.export.{p}" for p in find_packages("export")]
)

# One console script per command, each also `python -m MODULE`; Bazel has a py_binary of the
# same name (coseg_tf/BUILD, COMMANDS). tests/packaging/check_wheel.sh runs each with --help.
CONSOLE_SCRIPTS = [
    "coseg-prepare = coseg_tf.data.prepare:main",
    "coseg-synth = coseg_tf.data.make_synthetic:main",
    "coseg-train = coseg_tf.train:main",
    "coseg-eval = coseg_tf.evaluate:main",
    "coseg-export = coseg_tf.export.main:main",
    "coseg-segment = coseg_tf.segment:main",
    "coseg-swap = coseg_tf.swap:main",
]

setup(
    name="coseg-tf",
    version="0.1.0",
    description="Motion-supervised Co-Part Segmentation (Siarohin, Roy et al., 2020) in TensorFlow/Keras",
    long_description=README.read_text(encoding="utf-8") if README.is_file() else "",
    long_description_content_type="text/markdown",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Console",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
    python_requires=">=3.10,<3.13",
    packages=PACKAGES,
    package_dir={"coseg_tf": "coseg_tf", "coseg_tf.configs": "configs", "coseg_tf.export": "export"},
    package_data={"coseg_tf.configs": ["*.yaml"]},
    # The working set checked together on CPU (see README, "Installing").
    install_requires=[
        "tensorflow-cpu==2.21.0",
        "keras==3.15.1",
        "numpy>=2.4,<2.5",
        "absl-py==2.5.1",
        "pyyaml>=6.0,<7",
        "opencv-python-headless==5.0.0.93",
        "imageio==2.38.1",
        "imageio-ffmpeg==0.8.1",
        "ai-edge-litert==2.3.0",
        "tqdm>=4.66",
    ],
    extras_require={
        "test": ["pytest>=8", "tensorboard==2.21.0", "ruff==0.17.5", "import-linter==2.17", "build==1.6.1"],
        # The TF Serving client (gRPC/REST request protos). tensorflow-serving-api requires the
        # `tensorflow` distribution, which pip installs beside tensorflow-cpu (same version,
        # same `tensorflow` import package).
        "serving": ["tensorflow-serving-api==2.21.0"],
        # CUDA build. pip cannot drop tensorflow-cpu from install_requires, so this adds
        # tensorflow[and-cuda] (same version, same `tensorflow` import package) and the CUDA
        # libraries; see README, "Installing".
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
