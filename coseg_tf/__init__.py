"""coseg-tf: Motion-supervised Co-Part Segmentation (Siarohin, Roy et al., 2020) in TensorFlow/Keras."""

__version__ = "0.1.0"
