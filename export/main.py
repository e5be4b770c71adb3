"""`coseg-export`: SavedModel for TF Serving and TFLite/LiteRT models, each checked against Keras.

    coseg-export --model=runs/vox --output_dir=exported          # the run's final/model.keras
    coseg-export --model=runs/vox/checkpoints --output_dir=exported   # its latest checkpoint
    coseg-export --model=vox-10segments.pth.tar --config=vox-256-sem-10segments \\
        --output_dir=exported                                     # an original checkpoint

Writes `<output_dir>/<model_name>/<version>/` (the SavedModel), `<output_dir>/tflite/*.tflite`
and `<output_dir>/export_report.json`; prints an agreement table and exits with status 1
when an artifact is below its threshold (the artifacts are kept for inspection), 2 on a
usage or input error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from absl import app, flags, logging

from coseg_tf import cli

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """The command's flags, defined when it runs (importing the module defines none)."""
    cli.define_model_flags(
        "A run folder (its final/model.keras), a .keras file, a tf.train checkpoint (folder or prefix) "
        "or an original .pth.tar/.pth/.npz.",
        required=False,
    )
    flags.DEFINE_multi_string(
        "set", [], "Config override section.key=value (YAML value), repeatable, e.g. --set a.b=1."
    )
    cli.deprecated_alias("config_override", "set")
    flags.DEFINE_string("output_dir", None, "Base folder of the export.")
    flags.DEFINE_string(
        "model_name",
        "coseg",
        "TF Serving model name: the SavedModel goes to <output_dir>/<model_name>/<version>/.",
    )
    flags.DEFINE_integer("version", None, "SavedModel version; default: one more than the largest present.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing SavedModel version.")
    flags.DEFINE_list("formats", ["saved_model", "tflite"], "What to export: saved_model, tflite.")
    flags.DEFINE_bool(
        "part_swap",
        True,
        "Also export part swap (SavedModel signature and TFLite models); "
        "needs a model file with the generator.",
    )
    flags.DEFINE_bool(
        "resize_to_input",
        False,
        "SavedModel: resize the maps (and the part-swap image) back "
        "to the input size; default: the model's resolution.",
    )
    flags.DEFINE_list(
        "tflite_variants",
        ["float32", "float16", "dynamic_int8", "int8"],
        "Segmenter TFLite variants: float32, float16, dynamic_int8, int8.",
    )
    flags.DEFINE_list(
        "part_swap_variants", ["float32", "float16"], "Part-swap TFLite variants: float32, float16."
    )
    flags.DEFINE_string("tflite_size", "256", "Fixed TFLite input size: N or HxW.")
    flags.DEFINE_multi_string(
        "images",
        [],
        "Sample image files or globs (repeatable); default: frames from "
        "the data pipeline (dataset_params.root_dir).",
    )
    flags.DEFINE_string(
        "split", "test", "Data-pipeline split of the check frames (int8 calibration uses train)."
    )
    flags.DEFINE_integer("num_samples", 8, "Frame pairs for the agreement checks.")
    flags.DEFINE_integer("calibration_samples", 32, "Frames for int8 calibration.")
    flags.DEFINE_bool(
        "allow_random_samples",
        False,
        "Without a dataset or --images, check and calibrate on "
        "random images (smoke runs only: label agreement means little there).",
    )
    flags.DEFINE_bool("verify", True, "Run the agreement checks.")
    flags.DEFINE_integer("num_threads", 2, "LiteRT interpreter threads for the checks.")
    flags.DEFINE_float(
        "max_float_diff",
        1e-4,
        "float32 artifacts: max |diff| of segmentation/shift, affine / max(1, |affine|).",
    )
    flags.DEFINE_float("min_agreement_float16", 0.98, "Segmenter float16: share of same part labels.")
    flags.DEFINE_float("min_agreement_dynamic_int8", 0.98, "Segmenter dynamic-range int8: same labels.")
    flags.DEFINE_float("min_agreement_int8", 0.95, "Segmenter int8: share of same part labels.")
    flags.DEFINE_float("max_part_swap_diff", 1e-4, "Part swap float32: max |diff| of the image.")
    flags.DEFINE_float(
        "max_part_swap_float16_mean_diff", 1e-2, "Part swap float16: mean |diff| of the image."
    )


def parse_size(text: str) -> tuple[int, int]:
    """ "256" -> (256, 256); "256x192" -> (256, 192) (height x width).

    Args:
      text: `--tflite_size`: "N" or "HxW".

    Returns:
      (height, width).

    Raises:
      app.UsageError: `text` is not N or HxW with positive integers.
    """
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise app.UsageError(f"--tflite_size must be N or HxW, got {text!r}") from None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise app.UsageError(f"--tflite_size must be N or HxW with positive sizes, got {text!r}")
    return size  # type: ignore[return-value]


def _check_choices(values: list[str], allowed: tuple[str, ...], flag: str) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {unknown}; choose from {list(allowed)}")


def _export(argv: list[str]) -> int:
    """The export; returns the process exit status."""
    del argv
    from coseg_tf import config as config_lib
    from coseg_tf import model_files
    from coseg_tf.export import samples, saved_model, tflite, verify

    if not FLAGS.model or not FLAGS.output_dir:
        raise app.UsageError("--model and --output_dir are required")
    cli.check_output_dir(FLAGS.output_dir, "--output_dir")
    _check_choices(FLAGS.formats, ("saved_model", "tflite"), "formats")
    _check_choices(FLAGS.tflite_variants, tflite.SEGMENTER_VARIANTS, "tflite_variants")
    _check_choices(FLAGS.part_swap_variants, tflite.PART_SWAP_VARIANTS, "part_swap_variants")
    size = parse_size(FLAGS.tflite_size)
    thresholds = verify.Thresholds(
        float32_max_diff=FLAGS.max_float_diff,
        float16_label_agreement=FLAGS.min_agreement_float16,
        dynamic_int8_label_agreement=FLAGS.min_agreement_dynamic_int8,
        int8_label_agreement=FLAGS.min_agreement_int8,
        part_swap_float32_max_diff=FLAGS.max_part_swap_diff,
        part_swap_float16_mean_diff=FLAGS.max_part_swap_float16_mean_diff,
    )

    model = model_files.load_model(FLAGS.model, config_lib.config_path(FLAGS.config))
    if FLAGS.set:
        model.config = config_lib.build_config(model.config, FLAGS.set)
    problem = config_lib.frame_size_problem(model.config, *size, training=False)
    if "tflite" in FLAGS.formats and problem:
        raise app.UsageError(f"--tflite_size={FLAGS.tflite_size}: {problem}")
    part_swap = FLAGS.part_swap and model.generator is not None
    if FLAGS.part_swap and model.generator is None:
        logging.warning("%s has no generator: part swap is not exported", model.source)
    print(f"model: {model.source}; K = {model.num_segments}; frame size {model.frame_size}")

    need_samples = FLAGS.verify or ("tflite" in FLAGS.formats and "int8" in FLAGS.tflite_variants)
    pairs, origin = None, ""
    if need_samples:
        pairs, origin = samples.sample_pairs(
            model.config,
            FLAGS.num_samples,
            split=FLAGS.split,
            image_patterns=FLAGS.images,
            allow_random=FLAGS.allow_random_samples,
        )
        print(f"check frames: {len(pairs)} pairs from {origin}")

    report: dict[str, Any] = {
        "model": model.source,
        "num_segments": model.num_segments,
        "frame_size": list(model.frame_size),
        "sample_origin": origin,
        "artifacts": {},
        "checks": [],
    }
    checks: list[verify.Check] = []

    if "saved_model" in FLAGS.formats:
        start = time.perf_counter()
        path = saved_model.export_saved_model(
            model,
            FLAGS.output_dir,
            FLAGS.model_name,
            FLAGS.version,
            part_swap=part_swap,
            resize_to_input=FLAGS.resize_to_input,
            overwrite=FLAGS.overwrite,
        )
        print(f"SavedModel: {path} ({time.perf_counter() - start:.1f} s)")
        report["artifacts"]["saved_model"] = path
        if FLAGS.verify:
            checks += verify.verify_saved_model(path, model, pairs, thresholds)

    if "tflite" in FLAGS.formats:
        folder = os.path.join(FLAGS.output_dir, "tflite")
        os.makedirs(folder, exist_ok=True)
        sized = verify.at_size(pairs, size) if pairs is not None else None
        for variant in FLAGS.tflite_variants:
            representative = None
            if variant == "int8":
                representative = _calibration_frames(model, size, origin, samples)
            start = time.perf_counter()
            content = tflite.convert_segmenter(model, variant, size, representative)
            report["artifacts"][f"segmenter_{variant}"] = _write_tflite(
                folder, "segmenter", variant, size, content, start
            )
            if FLAGS.verify:
                checks.append(
                    verify.verify_tflite_segmenter(
                        content, variant, model, sized[:, 1], thresholds, FLAGS.num_threads
                    )
                )
        if part_swap:
            for variant in FLAGS.part_swap_variants:
                start = time.perf_counter()
                content = tflite.convert_part_swap(model, variant, size)
                report["artifacts"][f"part_swap_{variant}"] = _write_tflite(
                    folder, "part_swap", variant, size, content, start
                )
                if FLAGS.verify:
                    checks.append(
                        verify.verify_tflite_part_swap(
                            content, variant, model, sized, thresholds, FLAGS.num_threads
                        )
                    )

    report["checks"] = [c.as_dict() for c in checks]
    report["passed"] = all(c.passed for c in checks)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with open(os.path.join(FLAGS.output_dir, "export_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    if checks:
        print("\nAgreement with Keras:")
        print(verify.format_table(checks))
    failed = [c.artifact for c in checks if not c.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)} below threshold", file=sys.stderr)
        return cli.CHECK_FAILED
    return 0


def _calibration_frames(model: Any, size: tuple[int, int], origin: str, samples: Any) -> list:
    """int8 calibration frames: the training split of the pipeline (or the same source as the checks)."""
    count = max(1, (FLAGS.calibration_samples + 1) // 2)
    pairs, _ = samples.sample_pairs(
        model.config,
        count,
        split="train",
        image_patterns=FLAGS.images,
        allow_random=FLAGS.allow_random_samples,
        seed=1,
    )
    frames = samples.resize(pairs.reshape(-1, *pairs.shape[2:]), size)[: FLAGS.calibration_samples]
    print(f"int8 calibration: {len(frames)} frames from {origin or 'the samples'}")
    return [frame[None] for frame in frames]


def _write_tflite(
    folder: str, kind: str, variant: str, size: tuple[int, int], content: bytes, started: float
) -> str:
    """Writes one converted model into `folder` (whole or not at all) and says so; returns its path."""
    from coseg_tf.export import tflite

    path = os.path.join(folder, tflite.file_name(FLAGS.model_name, kind, variant, size))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(content)
    os.replace(tmp, path)
    print(f"TFLite: {path} ({len(content) / 1e6:.2f} MB, {time.perf_counter() - started:.1f} s)")
    return path


def _run(argv: list[str]) -> int:
    cli.check_weights_file(FLAGS.model)  # before TensorFlow loads: a damaged weights file fails at once
    from coseg_tf.export.tflite import ConversionError

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's savers log every file at INFO
    try:
        return _export(argv)
    except ConversionError as e:  # the model is fine; the converter could not take it
        return cli.report_error("coseg-export", e, cli.CHECK_FAILED)


def main() -> None:
    """Console-script entry point (`coseg-export`)."""
    cli.run(_run, _define_flags, "coseg-export")


if __name__ == "__main__":
    main()
