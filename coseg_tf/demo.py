"""The main job (`make demo`): synthetic puppets -> training -> held-out foreground IoU -> picture.

  python -m coseg_tf.demo --output_dir runs/demo

1. writes the synthetic puppet videos with their ground truth (`<output_dir>/data`),
2. trains `configs/synthetic.yaml` on the training videos (`<output_dir>/model`; re-running
   resumes, a finished run is not retrained),
3. segments every frame of the held-out (test) videos and reports the foreground IoU
   (paper Sec. 4.1: O = sum of the K part channels > 0.5 against the ground-truth mask),
4. draws held-out frames with the predicted parts beside the ground-truth parts
   (`<output_dir>/heldout_parts.png`) and writes `<output_dir>/results.json`,
5. exports the trained model with `coseg-export` (`<output_dir>/export`: a TF Serving
   SavedModel and float32 TFLite models at the frame size, checked against Keras).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags, logging

from coseg_tf import cli
from coseg_tf import config as config_lib

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """The command's flags, defined when it runs (importing the module defines none)."""
    flags.DEFINE_string(
        "output_dir", "runs/demo", "Where the data, the model, the picture and results.json go."
    )
    cli.deprecated_alias("workdir", "output_dir")
    flags.DEFINE_string("config", "synthetic", "Config name or path (train on the synthetic set).")
    flags.DEFINE_integer("num_videos", 120, "Synthetic videos to generate (20% of identities held out).")
    flags.DEFINE_integer("num_frames", 48, "Frames per synthetic video.")
    flags.DEFINE_integer("data_seed", 0, "Seed of the synthetic data set.")
    flags.DEFINE_integer("seed", 0, "Training seed.")
    flags.DEFINE_enum(
        "mixed_precision",
        "auto",
        list(config_lib.PRECISIONS),
        "auto: mixed_bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX), else off.",
    )
    flags.DEFINE_multi_string("set", [], "Config overrides section.key=value, repeatable.")
    flags.DEFINE_integer(
        "steps", None, "Training budget in steps (default: the config's epochs).", lower_bound=1
    )
    flags.DEFINE_integer("num_pictures", 8, "Held-out frames in the picture.")
    flags.DEFINE_bool(
        "export",
        True,
        "Export the trained model with coseg-export to <output_dir>/export (SavedModel, float32 "
        "TFLite at the frame size, agreement checks).",
    )


def generate_data(root: str, num_videos: int, num_frames: int, seed: int) -> str:
    """The synthetic set as side-by-side PNG strips (lossless, fast to decode); returns its root_dir.

    Args:
      root: Folder to generate into; a set already there with the same counts and seed is reused.
      num_videos: Videos to render.
      num_frames: Frames per video.
      seed: Seed of the set.

    Returns:
      The PNG layout's root_dir, `root/png`.
    """
    from coseg_tf.data.synthetic import generate_synthetic_dataset

    marker = os.path.join(root, "ground_truth", "info.json")
    if os.path.exists(marker):
        with open(marker) as f:
            info = json.load(f)
        if (info.get("num_videos"), info.get("num_frames"), info.get("seed")) == (
            num_videos,
            num_frames,
            seed,
        ):
            logging.info("synthetic data already in %s", root)
            return os.path.join(root, "png")
    roots = generate_synthetic_dataset(
        root, num_videos=num_videos, num_frames=num_frames, size=64, seed=seed, formats=("png",)
    )
    return roots["png"]


def segment_videos(segmenter, frames: np.ndarray, batch: int = 64) -> np.ndarray:
    """Segmentation [T, h, w, K+1] of a video's frames (inference mode).

    Args:
      segmenter: The Keras `SegmentationModule`.
      frames: float32 [T, H, W, 3] frames in [0, 1].
      batch: Frames per call.

    Returns:
      float32 [T, h, w, K+1] soft part maps.
    """
    import tensorflow as tf

    out = []
    for start in range(0, len(frames), batch):
        chunk = tf.constant(frames[start : start + batch])
        out.append(segmenter(chunk, training=False)["segmentation"].numpy())
    return np.concatenate(out)


def evaluate(segmenter, dataset_params: dict, data_root: str) -> tuple[float, dict]:
    """Mean foreground IoU over every frame of every held-out video, and frames for the picture.

    Args:
      segmenter: The Keras `SegmentationModule`.
      dataset_params: The config's `dataset_params` (its test split is read).
      data_root: The synthetic set's root, for its ground truth.

    Returns:
      (mean IoU, {"frames": count, "videos": count, "picks": (name, frame, segmentation, labels) of
      each video's middle frame}).

    Raises:
      RuntimeError: The test split has no videos.
    """
    from coseg_tf.data import iterate_videos, load_ground_truth
    from coseg_tf.metrics import foreground_iou

    ious, picks = [], []
    for name, frames in iterate_videos(dataset_params, split="test"):
        truth = load_ground_truth(data_root, "test", name)
        segmentation = segment_videos(segmenter, frames)
        ious.append(foreground_iou(segmentation, truth["mask"]))
        t = len(frames) // 2
        picks.append((name, frames[t], segmentation[t], truth["labels"][t]))
    if not ious:
        raise RuntimeError("no held-out videos to evaluate")
    per_frame = np.concatenate(ious)
    return float(per_frame.mean()), {"frames": int(per_frame.size), "videos": len(ious), "picks": picks}


def part_scores(model_dir: str, data_root: str) -> dict[str, float]:
    """The part figures of `coseg-eval` on the held-out puppets (8 frames a video), as it scores them.

    NMI and ARI inside the foreground (pooled), issue 21's per-frame part NMI, and the landmark
    error of a linear regression from part centroids fitted on the training videos.

    Args:
      model_dir: The trained run's folder (read by `coseg-eval`'s `load_predictor`).
      data_root: The synthetic set's root.

    Returns:
      `nmi_foreground`, `ari_foreground`, `part_nmi_fg` and `landmark_mae_sum_256` (NaN without landmarks).
    """
    from coseg_tf import evaluate as evaluate_lib

    segmenter = evaluate_lib.load_predictor(model_dir)
    splits = evaluate_lib.load_splits("synthetic", data_root, frames_per_video=8)
    results = evaluate_lib.evaluate(segmenter, splits, evaluate_lib.EvalSettings())
    parts, landmarks = results["parts"], results["landmark_regression"]
    return {
        "nmi_foreground": parts["nmi_foreground"],
        "ari_foreground": parts["ari_foreground"],
        "part_nmi_fg": parts["part_nmi_fg"],
        "landmark_mae_sum_256": landmarks["mae_sum_256"] if landmarks["available"] else float("nan"),
    }


def write_picture(picks: list, path: str, num_segments: int, scale: int = 4) -> str:
    """Rows of [frame | predicted parts over it | predicted part map | ground-truth part map].

    Args:
      picks: The (name, frame, segmentation, labels) of `evaluate`.
      path: The PNG to write.
      num_segments: K, for the part colours.
      scale: Zoom of the picture.

    Returns:
      The written path.
    """
    import cv2

    from coseg_tf import visualize

    rows = []
    for _, frame, segmentation, labels in picks:
        height, width = frame.shape[:2]
        seg = cv2.resize(segmentation, (width, height), interpolation=cv2.INTER_LINEAR)
        hard = np.where(seg[..., 1:].sum(-1) > 0.5, seg[..., 1:].argmax(-1) + 1, 0)
        rows.append(
            [
                frame,
                visualize.overlay_parts(frame, segmentation),
                visualize.label_colors(hard, num_segments),
                visualize.label_colors(labels, int(max(labels.max(), 10))),
            ]
        )
    return visualize.write_png(path, visualize.grid(rows, border=1, zoom=scale))


def export_model(model_dir: str, output_dir: str, frame_size: tuple[int, int]) -> bool:
    """`coseg-export` of the run, as a user runs it; False (and its error shown) if it fails.

    A separate process: the export defines its own flags, and a failed export must not lose
    the training results already written.

    Args:
      model_dir: The trained run's folder (`--model`).
      output_dir: The export's `--output_dir`.
      frame_size: (height, width) of the TFLite models.

    Returns:
      True if the export exited with 0.
    """
    command = [
        sys.executable,
        "-m",
        "coseg_tf.export.main",
        f"--model={model_dir}",
        f"--output_dir={output_dir}",
        "--version=1",
        "--overwrite",
        f"--tflite_size={frame_size[0]}x{frame_size[1]}",
        "--tflite_variants=float32",
        "--part_swap_variants=float32",
    ]
    logging.info("exporting: %s", " ".join(command[1:]))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        logging.error("coseg-export failed (exit %d):\n%s", done.returncode, done.stderr[-3000:])
    return done.returncode == 0


def _run(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    started = time.time()
    cli.check_output_dir(FLAGS.output_dir, "--output_dir")
    workdir = os.path.abspath(FLAGS.output_dir)
    os.makedirs(workdir, exist_ok=True)
    data_root = os.path.join(workdir, "data")
    root_dir = generate_data(data_root, FLAGS.num_videos, FLAGS.num_frames, FLAGS.data_seed)
    data_seconds = time.time() - started

    from coseg_tf import trainer
    from coseg_tf.distribute import resolve_precision

    config = cli.resolve_config(FLAGS.config, FLAGS.set, root_dir, None)
    precision = resolve_precision(FLAGS.mixed_precision)
    options = trainer.TrainOptions(
        model_dir=os.path.join(workdir, "model"),
        mixed_precision=precision,
        seed=FLAGS.seed,
        max_steps=FLAGS.steps,
        image_every=100,
        log_every=20,
    )
    train_started = time.time()
    trained = trainer.Trainer(config, options)
    result = trained.train()
    train_seconds = time.time() - train_started

    score, info = evaluate(trained.task.model.segmenter, config["dataset_params"], data_root)
    parts = part_scores(options.model_dir, data_root)
    k = config["model_params"]["common_params"]["num_segments"]
    picks = info["picks"]
    step = max(1, len(picks) // FLAGS.num_pictures)
    picture = write_picture(
        picks[::step][: FLAGS.num_pictures], os.path.join(workdir, "heldout_parts.png"), k
    )
    export_dir = os.path.join(workdir, "export")
    export_started = time.time()
    exported = FLAGS.export and export_model(
        options.model_dir, export_dir, tuple(config["dataset_params"]["frame_shape"][:2])
    )
    export_seconds = time.time() - export_started
    results = {
        "foreground_iou": score,
        **parts,
        "heldout_videos": info["videos"],
        "heldout_frames": info["frames"],
        "steps": result.step,
        "skipped_steps": result.skipped_steps,
        "final_losses": result.losses,
        "mixed_precision": precision,
        "seconds": {
            "data": data_seconds,
            "training": train_seconds,
            "export": export_seconds,
            "total": time.time() - started,
        },
        "export": export_dir if exported else None,
        "picture": picture,
        "model_dir": options.model_dir,
        "final_weights": result.final_dir,
    }
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print()
    print(f"held-out foreground IoU: {score:.4f} ({info['frames']} frames of {info['videos']} test videos)")
    print(
        f"held-out parts: NMI fg {parts['nmi_foreground']:.4f} (pooled), "
        f"ARI fg {parts['ari_foreground']:.4f}, part NMI fg {parts['part_nmi_fg']:.4f} (per frame); "
        f"landmark MAE sum {parts['landmark_mae_sum_256']:.1f} (pixels at 256, from part centroids)"
    )
    print(
        f"time: {results['seconds']['total'] / 60:.1f} min (training {train_seconds / 60:.1f} min, "
        f"{result.step} steps, {precision})"
    )
    print(f"data:          {data_root}")
    print(f"checkpoints:   {options.model_dir}/checkpoints")
    print(f"final weights: {result.final_dir}")
    print(f"picture:       {picture}  (frame | predicted parts | predicted part map | ground truth)")
    print(f"results:       {os.path.join(workdir, 'results.json')}")
    print(f"TensorBoard:   tensorboard --logdir {options.model_dir}/logs")
    if exported:
        print(f"export:        {export_dir}  (SavedModel coseg/1 for TF Serving, *.tflite, report)")
    elif FLAGS.export:
        print(f"export:        FAILED (error above); retry: coseg-export --model={options.model_dir}")
        return cli.CHECK_FAILED
    return 0


def main() -> None:
    """Console-script entry point."""
    cli.run(_run, _define_flags, "coseg-demo")


if __name__ == "__main__":
    main()
