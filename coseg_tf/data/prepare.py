"""`coseg-prepare`: converts a video dataset to sharded TFRecords for the fastest input pipeline.

    coseg-prepare --config=configs/taichi-256-sem.yaml --output_dir=gs://bucket/taichi-tfr
    coseg-prepare --data_dir=data/puppets/png --frame_shape=64,64 --output_dir=data/puppets-tfr

The source can be any layout the pipeline reads; frames are resized to the frame shape and
stored as PNG (lossless, default) or JPEG. Afterwards point `dataset_params.root_dir` at
`output_dir`: the pipeline recognises the manifest and reads the records.
"""

from __future__ import annotations

import time

from absl import app, flags, logging

from coseg_tf import cli

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined when run as a command only (see make_synthetic.py).
    flags.DEFINE_string(
        "config", None, "Config YAML path or packaged config name whose dataset_params describe the source."
    )
    flags.DEFINE_string(
        "data_dir", None, "Source dataset root; overrides dataset_params.root_dir of the config."
    )
    cli.deprecated_alias("root_dir", "data_dir")
    flags.DEFINE_list("frame_shape", None, "Frame height,width (overrides the config's frame_shape).")
    flags.DEFINE_bool("id_sampling", None, "Split by identity when the source has no train/test folders.")
    flags.DEFINE_string("output_dir", None, "Output folder (local or tf.io.gfile path).", required=True)
    cli.deprecated_alias("out_dir", "output_dir")
    flags.DEFINE_list("splits", ["train", "test"], "Splits to convert.")
    flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Frame encoding.")
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality (with --image_format=jpeg).")
    flags.DEFINE_float("shard_mb", 64.0, "Approximate shard size in MiB.")
    flags.DEFINE_integer("seed", 0, "Seed of the train split's record order.")
    flags.DEFINE_integer("num_threads", 2, "Decoding/encoding threads.")


def dataset_params_from_flags() -> dict:
    """The source's `dataset_params`: the `--config`'s, overridden by the data flags.

    Returns:
      `dataset_params` with at least `root_dir`.

    Raises:
      app.UsageError: `--frame_shape` is not height,width, or no root_dir is given.
    """
    params: dict = {}
    if FLAGS.config:
        from coseg_tf.config import config_path, load_config

        params = dict(load_config(config_path(FLAGS.config))["dataset_params"])
    if FLAGS.data_dir:
        params["root_dir"] = FLAGS.data_dir
    if FLAGS.frame_shape:
        if len(FLAGS.frame_shape) != 2:
            raise app.UsageError("--frame_shape is height,width")
        params["frame_shape"] = [int(FLAGS.frame_shape[0]), int(FLAGS.frame_shape[1]), 3]
    if FLAGS.id_sampling is not None:
        params["id_sampling"] = FLAGS.id_sampling
    if not params.get("root_dir"):
        raise app.UsageError("give --data_dir or a --config with dataset_params.root_dir")
    return params


def _run(argv: list[str]) -> None:
    del argv
    from coseg_tf import fileio
    from coseg_tf.data import video_io
    from coseg_tf.data.catalog import DatasetStats

    params = dataset_params_from_flags()
    cli.check_output_dir(FLAGS.output_dir, "--output_dir")
    # Checked before the output folder is made, which the conversion does first.
    if not fileio.isdir(params["root_dir"]):
        raise video_io.DatasetError(
            f"--data_dir (dataset_params.root_dir) {params['root_dir']} does not exist or is not a folder"
        )
    from coseg_tf.data.tfrecords import convert_to_tfrecords  # TensorFlow: after the checks above

    stats = DatasetStats(params["root_dir"])
    start = time.time()
    manifest = convert_to_tfrecords(
        params,
        FLAGS.output_dir,
        splits=FLAGS.splits,
        image_format=FLAGS.image_format,
        jpeg_quality=FLAGS.jpeg_quality,
        shard_mb=FLAGS.shard_mb,
        seed=FLAGS.seed,
        num_threads=FLAGS.num_threads,
        stats=stats,
    )
    for split, info in manifest["splits"].items():
        print(f"{split}: {len(info['videos'])} videos in {len(info['shards'])} shard(s)")
    print(f"skipped: {stats.num_skipped}")
    logging.info("converted in %.1f s", time.time() - start)
    print(f"dataset_params.root_dir={FLAGS.output_dir}")


def main() -> None:
    """Console-script entry point."""
    cli.run(_run, _define_flags, "coseg-prepare")


if __name__ == "__main__":
    main()
