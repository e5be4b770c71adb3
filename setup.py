"""Installs coseg-tf. `export/` and `configs/` are mapped into the `coseg_tf` namespace."""

from setuptools import setup

setup(
    name="coseg-tf",
    version="0.1.0",
    description="Motion-supervised Co-Part Segmentation (Siarohin, Roy et al., 2020) in TensorFlow/Keras",
    python_requires=">=3.10,<3.13",
    packages=["coseg_tf", "coseg_tf.configs", "coseg_tf.export"],
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
        "test": ["pytest>=8", "tensorboard==2.21.0", "ruff==0.17.5"],
    },
    entry_points={"console_scripts": []},
)
