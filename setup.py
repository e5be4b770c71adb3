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
    # The working set checked together on CPU. TensorFlow itself comes from an extra: its CPU
    # and CUDA builds are two distributions of one `tensorflow` import package, and pip would
    # install both side by side if the base requirement named one of them. So
    #   pip install "coseg-tf[cpu]"   tensorflow-cpu (what `make install` and CI use)
    #   pip install "coseg-tf[gpu]"   tensorflow[and-cuda], with the CUDA libraries
    # and a bare `pip install coseg-tf` leaves the TensorFlow of the environment as it is.
    install_requires=[
        "keras==3.15.1",
        "numpy>=2.4,<2.5",
        "absl-py==2.5.1",
        "pyyaml>=6.0,<7",
        "opencv-python-headless==5.0.0.93",
        "imageio==2.38.1",
        "imageio-ffmpeg==0.8.1",
        "ai-edge-litert==2.3.0",
        # The trainer writes TensorBoard summaries and the commands point to `tensorboard
        # --logdir`; TensorFlow 2.21 no longer depends on it.
        "tensorboard==2.21.0",
        "tqdm>=4.66",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu==2.21.0"],
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        "test": ["pytest>=8", "pytest-xdist==3.8.0", "ruff==0.17.5", "import-linter==2.17", "build==1.6.1"],
        # The TF Serving client (gRPC/REST request protos). tensorflow-serving-api requires the
        # `tensorflow` distribution: install it with the gpu extra, or alone in a client
        # environment (with the cpu extra pip would add `tensorflow` beside tensorflow-cpu).
        "serving": ["tensorflow-serving-api==2.21.0"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
