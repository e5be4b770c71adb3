"""`coseg-synth`: writes a synthetic dataset (videos + ground truth): puppets or talking heads.

    coseg-synth --output_dir=data/puppets --num_videos=200 --num_frames=32 --size=64 --layouts=mp4,png
    coseg-synth --output_dir=data/heads --family=heads --layouts=png

then train with `dataset_params.root_dir=data/puppets/png` (or `.../mp4`); the heads with the
config `synthetic-heads`.
"""

from __future__ import annotations

import time

from absl import flags, logging

from coseg_tf import cli

FLAGS = flags.FLAGS


def _define_flags() -> None:
    # Defined when run as a command only, so importing this module never clashes with the
    # flags of other commands imported into the same process (e.g. by tests).
    flags.DEFINE_string("output_dir", None, "Output root (local or tf.io.gfile path).", required=True)
    cli.deprecated_alias("out_dir", "output_dir")
    flags.DEFINE_integer("num_videos", 200, "Number of videos (clips) over both splits.")
    flags.DEFINE_integer("num_frames", 32, "Frames per video.")
    flags.DEFINE_integer("size", 64, "Frame height and width in pixels (even for mp4/mov/avi).")
    flags.DEFINE_integer("seed", 0, "Seed; the same seed gives the same videos.")
    flags.DEFINE_list(
        "layouts", ["mp4", "png"], "Video layouts to write: mp4, mov, avi, gif, png, jpg, frames."
    )
    cli.deprecated_alias("formats", "layouts")
    flags.DEFINE_float("test_fraction", 0.2, "Fraction of identities in the test split.")
    flags.DEFINE_integer("clips_per_identity", 1, "Clips per puppet identity (for id_sampling).")
    flags.DEFINE_enum("part_style", "textured", ["textured", "flat"], "Striped parts or flat colours.")
    flags.DEFINE_integer("num_threads", 2, "Rendering threads.")
    from coseg_tf.data.synthetic import FAMILIES

    flags.DEFINE_enum(
        "family", "puppets", list(FAMILIES), "What the videos show: puppets (limbs) or heads (talking heads)."
    )


def _run(argv: list[str]) -> None:
    del argv
    from coseg_tf.data.synthetic import generate_synthetic_dataset

    start = time.time()
    roots = generate_synthetic_dataset(
        FLAGS.output_dir,
        num_videos=FLAGS.num_videos,
        num_frames=FLAGS.num_frames,
        size=FLAGS.size,
        seed=FLAGS.seed,
        formats=FLAGS.layouts,
        test_fraction=FLAGS.test_fraction,
        clips_per_identity=FLAGS.clips_per_identity,
        part_style=FLAGS.part_style,
        num_threads=FLAGS.num_threads,
        family=FLAGS.family,
    )
    logging.info("wrote %d videos in %.1f s", FLAGS.num_videos, time.time() - start)
    for fmt, root in roots.items():
        print(f"{fmt}: dataset_params.root_dir={root}")


def main() -> None:
    """Console-script entry point."""
    cli.run(_run, _define_flags, "coseg-synth")


if __name__ == "__main__":
    main()
