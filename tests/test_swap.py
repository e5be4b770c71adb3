"""Part swap: PartSwapper against graphs.part_swap, what "no part" and "every part" mean, coseg-swap.

Two models. The export tests' tiny puppet model (its segmenter fitted to the part labels,
its generator briefly to reconstruct) is enough for the identities (no part swapped = the
target's own auto-encoding; every id = the generator's reconstruction from the source).
"Every part moves the appearance toward the source" needs a model whose swap is meaningful,
which that one is not: its anchor (shift) head is untrained, so the segment motions
misplace the source's features, and it saw a single colour layout, so its decoder can paint
"torso colour" from position alone and its segmenter reads a blue torso as an arm. The
`swap_model` fixture therefore fits, on a copy, the part maps and the anchors (supervised:
labels and part centroids) and the generator on puppets of two colour layouts, so that
colour has to travel through the features. That takes ~15 s on one core.
"""

import subprocess

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import graphs, inference
from coseg_tf.data import video_io
from coseg_tf.export import saved_model, testing
from coseg_tf.model_files import LoadedModel, load_model
from coseg_tf.testing import run_module

# A second colour layout: every part gets a colour far from its usual one.
OTHER_LOOK = np.array(
    [[0, 0, 0], [0.2, 0.3, 0.9], [0.35, 0.2, 0.35], [0.95, 0.85, 0.2], [0.9, 0.3, 0.6]], np.float32
)


@pytest.fixture(scope="module")
def run(export_session):
    return testing.trained_run(export_session)


@pytest.fixture(scope="module")
def swapper(run):
    return inference.PartSwapper(inference.load_segmenter(run["keras_path"]))


def look(rng: np.random.Generator, other: bool) -> np.ndarray:
    if not other:
        return testing.puppet_colours(rng)
    return np.clip(OTHER_LOOK + rng.uniform(-0.05, 0.05, OTHER_LOOK.shape), 0, 1).astype(np.float32)


def fit_parts_two_looks(segmenter: keras.Model, steps: int = 40, seed: int = 2) -> tuple[float, float]:
    """Supervised parts and anchors on puppets of both looks; returns (pixel accuracy, anchor MSE).

    The part maps are fitted to the labels (export/testing's fit_segmenter did so for one
    look only: a blue torso would read as an arm) and the shift head to each part's centroid
    ([-1, 1] corner-aligned, as the model's), so that the segment motions are right.
    """
    rng = np.random.default_rng(seed)
    optimizer = keras.optimizers.Adam(3e-3)
    variables = [v for v in segmenter.trainable_variables if v.path.split("/")[-2] != "affine"]
    assert any(v.path.split("/")[-2] == "shift" for v in variables), "no shift head variables found"
    grid = np.linspace(-1, 1, 64, dtype=np.float32)
    scale = int(round(1 / segmenter.scale_factor))

    @tf.function
    def step(images: tf.Tensor, labels: tf.Tensor, centres: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            out = segmenter(images, training=True)
            parts = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, out["segmentation"]))
            anchors = tf.reduce_mean(tf.square(out["shift"] - centres))
            loss = parts + 10.0 * anchors
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return parts, anchors

    def draw(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = [testing.render_puppet(64, rng, look(rng, other=i % 2 == 1)) for i in range(count)]
        centres = [
            [
                [grid[np.nonzero(lab == k)[1]].mean(), grid[np.nonzero(lab == k)[0]].mean()]
                for k in range(1, 5)
            ]
            for _, lab in pairs
        ]
        images = np.stack([p[0] for p in pairs])
        return images, np.stack([p[1][::scale, ::scale] for p in pairs]), np.array(centres, np.float32)

    for _ in range(steps):
        step(*draw(8))
    images, labels, centres = draw(8)
    out = segmenter(images, training=False)
    accuracy = float(np.mean(out["segmentation"].numpy().argmax(-1) == labels))
    return accuracy, float(np.mean(np.square(out["shift"].numpy() - centres)))


def fit_generator_two_looks(
    segmenter: keras.Model, generator: keras.Model, steps: int = 100, seed: int = 4
) -> float:
    """L1 reconstruction of a frame from another frame of the same puppet, puppets of either look."""
    rng = np.random.default_rng(seed)
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def step(source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        seg_source, seg_target = segmenter(source, training=False), segmenter(target, training=False)
        with tf.GradientTape() as tape:
            out = generator(
                {"source": source, "seg_source": seg_source, "seg_target": seg_target}, training=True
            )
            loss = tf.reduce_mean(tf.abs(out["prediction"] - target))
        variables = generator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    for _ in range(steps):
        pairs = []
        for i in range(4):
            colours = look(rng, other=i % 2 == 1)
            pairs.append(
                (testing.render_puppet(64, rng, colours)[0], testing.render_puppet(64, rng, colours)[0])
            )
        loss = step(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return float(loss)


def fit_swap_model(keras_path: str, generator_steps: int = 50) -> LoadedModel:
    """A copy of the test model fitted to puppets of two looks (docs/make_pictures.py uses it too)."""
    keras.utils.set_random_seed(1)
    model = load_model(keras_path)
    accuracy, anchor_error = fit_parts_two_looks(model.segmenter)
    l1 = fit_generator_two_looks(model.segmenter, model.generator, steps=generator_steps)
    assert accuracy > 0.9 and anchor_error < 0.01 and l1 < 0.08, (accuracy, anchor_error, l1)
    return model


@pytest.fixture(scope="module")
def swap_model(run):
    # A copy: the shared model stays as the other tests expect.
    return inference.PartSwapper(inference.KerasSegmenter(fit_swap_model(run["keras_path"])))


def scene(seed: int, frames: int = 4):
    """A source puppet of one look and target frames of a puppet of the other look, with labels."""
    rng = np.random.default_rng(seed)
    source_look, target_look = look(rng, other=seed % 2 == 0), look(rng, other=seed % 2 == 1)
    source, _ = testing.render_puppet(64, rng, source_look)
    targets = [testing.render_puppet(64, rng, target_look) for _ in range(frames)]
    return source, np.stack([t[0] for t in targets]), np.stack([t[1] for t in targets]), source_look


@pytest.mark.parametrize(("soft", "use_source"), [(True, False), (False, False), (True, True), (False, True)])
def test_swapping_no_part_is_the_targets_own_auto_encoding(run, swapper, soft, use_source):
    # graphs.part_swap: with no part selected the blend mask is 0 and the decoder gets the
    # target's own encoder features: decode(encode(target)), for every mask option.
    source, targets, _, _ = scene(0)
    result = swapper.swap(source, targets, [], soft=soft, use_source_segmentation=use_source)
    generator = run["model"].generator
    plain = generator.decode(generator.encode(result.targets, training=False), training=False).numpy()
    np.testing.assert_allclose(result.frames, plain, atol=1e-5)
    assert np.all(result.masks == 0)


@pytest.mark.parametrize("soft", [True, False])
def test_swapping_every_id_is_the_generators_reconstruction_from_the_source(run, swapper, soft):
    # Every id, background included: the mask is 1 everywhere (soft maps and one-hot maps
    # both sum to 1), so the result is the generator's own motion transfer of the source.
    source, targets, _, _ = scene(1)
    result = swapper.swap(source, targets, [0, 1, 2, 3, 4], soft=soft)
    model = run["model"]
    sources = np.repeat(result.source[None], len(targets), axis=0)
    seg_source = model.segmenter(sources, training=False)
    seg_target = model.segmenter(result.targets, training=False)
    predicted = model.generator(
        {"source": sources, "seg_source": seg_source, "seg_target": seg_target}, training=False
    )["prediction"]
    np.testing.assert_allclose(result.masks, 1.0, atol=1e-5)
    np.testing.assert_allclose(result.frames, predicted.numpy(), atol=2e-5)


def test_the_source_mask_is_the_sources_segmentation_moved_to_the_target(swapper):
    # With the target itself as the source the segment motions are the identity, so the
    # deformed source segmentation is the target's; another source gives another mask.
    _, targets, _, _ = scene(6, frames=2)
    own = swapper.swap(targets[0], targets[:1], [1, 3])
    moved = swapper.swap(targets[0], targets[:1], [1, 3], use_source_segmentation=True)
    np.testing.assert_allclose(moved.masks, own.masks, atol=1e-4)
    other = swapper.swap(targets[1], targets[:1], [1, 3], use_source_segmentation=True)
    assert np.abs(other.masks - own.masks).max() > 0.1


def test_the_default_swap_is_graphs_part_swap(run, swapper):
    source, targets, _, _ = scene(2)
    result = swapper.swap(source, targets, [1, 3])
    model = run["model"]
    mask = np.zeros((len(targets), 5), np.float32)
    mask[:, [1, 3]] = 1.0
    sources = np.repeat(result.source[None], len(targets), axis=0)
    expected = graphs.part_swap(model.segmenter, model.generator, sources, result.targets, mask)
    np.testing.assert_allclose(result.frames, expected["image"].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.masks, expected["blend_mask"].numpy(), atol=1e-6)
    hard = swapper.swap(source, targets, [1, 3], soft=False)
    assert set(np.unique(hard.masks)) <= {0.0, 1.0}
    labels = model.segmenter(result.targets, training=False)["segmentation"].numpy().argmax(-1)
    np.testing.assert_array_equal(hard.masks == 1.0, np.isin(labels, [1, 3]))


@pytest.mark.parametrize(("soft", "use_source"), [(True, False), (False, False), (True, True)])
def test_swapping_every_part_moves_every_foreground_pixel_toward_the_source(swap_model, soft, use_source):
    # Criterion: on the target's foreground (its parts' pixels less a two-pixel border, which
    # the 32x32 maps and the decoder blur), the swapped frame is closer to the colour the
    # source has for that pixel's part than the unswapped auto-encoding is, for at least 95%
    # of the pixels of each of three scenes (the fitted model reaches ~99%).
    shares = []
    for seed in (10, 11, 12):
        source, targets, labels, source_look = scene(seed)
        swapped = swap_model.swap(
            source, targets, [1, 2, 3, 4], soft=soft, use_source_segmentation=use_source
        )
        unswapped = swap_model.swap(source, targets, [])
        inside = np.stack(
            [cv2.erode((lab > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for lab in labels]
        )
        wanted = source_look[labels]
        closer = np.linalg.norm(swapped.frames - wanted, axis=-1) < np.linalg.norm(
            unswapped.frames - wanted, axis=-1
        )
        shares.append(float(closer[inside].mean()))
        # The target's background (less the same border) mostly stays the target's: mask 0 up to
        # the soft maps' tails, which reach a few pixels into it.
        background = np.stack(
            [cv2.erode((lab == 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for lab in labels]
        )
        step = background.shape[1] // swapped.masks.shape[1]  # the masks are at the maps' size
        untouched = (swapped.masks < 0.01)[background[:, ::step, ::step]].mean()
        assert untouched > 0.5, untouched
    assert min(shares) >= 0.95, shares


def test_saved_model_part_swap_matches_keras(run, swapper, tmp_path):
    version = saved_model.export_saved_model(load_model(run["keras_path"]), str(tmp_path), "coseg", 1)
    exported = inference.PartSwapper(inference.load_segmenter(version))
    source, targets, _, _ = scene(3, frames=3)
    np.testing.assert_allclose(
        exported.swap(source, targets, [2, 4]).frames, swapper.swap(source, targets, [2, 4]).frames, atol=1e-5
    )
    with pytest.raises(inference.InputError, match="soft masks from the target"):
        exported.swap(source, targets, [2], soft=False)


def test_bad_part_ids_and_models(run, swapper, tmp_path):
    source, targets, _, _ = scene(4, frames=1)
    with pytest.raises(inference.InputError, match=r"part id 5 is out of range.*K = 4.*ids 0\.\.4"):
        swapper.swap(source, targets, [1, 5])
    with pytest.raises(inference.InputError, match="out of range"):
        swapper.swap(source, targets, [-1])
    with pytest.raises(inference.InputError, match="integers"):
        swapper.swap(source, targets, ["1"])
    segmenter_only = tmp_path / "segmenter.keras"
    run["model"].segmenter.save(str(segmenter_only))
    with pytest.raises(inference.ModelLoadError, match="generator"):
        inference.PartSwapper.load(str(segmenter_only), run["config_path"])


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return run_module("coseg_tf.swap", args)


def test_coseg_swap_keeps_the_targets_frame_count_and_rate(run, tmp_path):
    import imageio.v2 as imageio

    rng = np.random.default_rng(5)
    colours = testing.puppet_colours(rng)
    # 7 frames at 12.5 fps, 80x100 (not the model's 64x64): cropped to the centre, resized.
    frames = [
        cv2.resize((testing.render_puppet(64, rng, colours)[0] * 255).astype(np.uint8), (100, 80))
        for _ in range(7)
    ]
    target = str(tmp_path / "target.mp4")
    with imageio.get_writer(target, fps=12.5, codec="libx264", macro_block_size=1, quality=None) as writer:
        for frame in frames:
            writer.append_data(frame)
    source = str(tmp_path / "source.png")
    cv2.imwrite(source, cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    output_dir = tmp_path / "out"
    result = _cli(
        ["--model", run["run_dir"], "--source", source, "--target", target, "--parts=1,3", "--side_by_side"]
        + ["--mask=hard", "--segmentation=source", f"--output_dir={output_dir}", "--video_formats=mp4,gif"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in output_dir.iterdir()) == ["target_swap.gif", "target_swap.mp4"]
    output = str(output_dir / "target_swap.mp4")
    written = video_io.read_video(output)
    capture = cv2.VideoCapture(output)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert len(written) == 7 and fps == pytest.approx(12.5)
    assert written.shape[1:3] == (64, 64 * 3 + 2 * 2)  # target | mask | result

    bad = _cli(
        ["--model", run["run_dir"], "--source", source, "--target", target, "--parts=1,9"]
        + [f"--output_dir={output_dir}"]
    )
    assert bad.returncode == 2 and "coseg-swap: error: part id 9" in bad.stderr, bad.stderr[-2000:]


def test_coseg_swap_still_takes_the_old_output_file_and_warns(run, tmp_path):
    # --output named the video file; as a deprecated spelling of --output_dir it still does.
    rng = np.random.default_rng(6)
    colours = testing.puppet_colours(rng)
    frames = [(testing.render_puppet(64, rng, colours)[0] * 255).astype(np.uint8) for _ in range(3)]
    target = video_io.write_video(str(tmp_path / "target.mp4"), frames[:2])
    source = video_io.write_video(str(tmp_path / "source.png"), frames[2:])
    output = tmp_path / "old" / "swapped.gif"
    result = _cli(
        ["--model", run["run_dir"], "--source", source, "--target", target, "--parts=1", f"--output={output}"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--output is deprecated: use --output_dir" in result.stderr
    assert len(video_io.read_video(str(output))) == 2
