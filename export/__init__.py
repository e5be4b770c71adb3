"""Export of trained models to SavedModel (TF Serving) and TFLite/LiteRT; installed as `coseg_tf.export`."""
