"""The TF Serving SavedModel: layout, saved_model_cli, a TensorFlow-only process, every signature.

The model is the tiny config fitted for a few dozen steps on synthetic puppets
(`coseg_tf.export.testing`), exported once per session by `coseg-export` at 64x64.
"""

import json
import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import graphs, model_files
from coseg_tf.export import saved_model, testing, verify
from coseg_tf.testing import run_python

SIGNATURES = ("serving_default", "serve_uint8", "serve_bytes", "part_swap")
# TensorFlow's `saved_model_cli` console script, as `python -m` of the module it calls.
SAVED_MODEL_CLI = ["-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.fixture(scope="module")
def exported(export_session):
    return testing.full_export(export_session)


@pytest.fixture(scope="module")
def version_dir(exported):
    return os.path.join(exported["output_dir"], "coseg", "1")


@pytest.fixture(scope="module")
def model(exported):
    return model_files.load_model(exported["run"]["keras_path"])


@pytest.fixture(scope="module")
def loaded(version_dir):
    return tf.saved_model.load(version_dir)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    colours = testing.puppet_colours(rng)
    return np.stack([testing.render_puppet(64, rng, colours)[0] for _ in range(3)])


def test_tf_serving_layout(exported, version_dir):
    assert exported["result"].returncode == 0, exported["result"].stderr[-3000:]
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))
    # Only numeric version folders under the model name (TF Serving would try to load others).
    entries = [e for e in os.listdir(os.path.dirname(version_dir)) if not e.startswith(".")]
    assert entries == ["1"]


def test_saved_model_cli_show_lists_every_signature(version_dir):
    out = run_python([*SAVED_MODEL_CLI, "show", "--dir", version_dir, "--all"], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in out.stdout
    assert "dtype: DT_UINT8" in out.stdout and "dtype: DT_STRING" in out.stdout
    for output in (
        "segmentation",
        "parts",
        "foreground",
        "shift",
        "affine",
        "input_size",
        "image",
        "blend_mask",
    ):
        assert f"outputs['{output}']" in out.stdout


def _saved_model_cli_run(version_dir, signature, args, outdir):
    return run_python(
        [*SAVED_MODEL_CLI, "run", "--dir", version_dir, "--tag_set", "serve", "--signature_def", signature]
        + [*args, "--outdir", str(outdir)],
        timeout=180,
    )


def test_saved_model_cli_run_segments(version_dir, tmp_path, frames):
    # saved_model_cli run loads through the session-based loader that TF Serving uses.
    np.save(tmp_path / "images.npy", frames[:2])
    out = _saved_model_cli_run(
        version_dir, "serving_default", ["--inputs", f"images={tmp_path / 'images.npy'}"], tmp_path / "out"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    segmentation = np.load(tmp_path / "out" / "segmentation.npy")
    parts = np.load(tmp_path / "out" / "parts.npy")
    assert segmentation.shape == (2, 32, 32, 5)
    np.testing.assert_allclose(segmentation.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(parts, segmentation.argmax(-1))


def test_saved_model_cli_run_bytes(version_dir, tmp_path, frames):
    png = tf.io.encode_png(np.round(frames[0] * 255).astype(np.uint8)).numpy()
    np.save(tmp_path / "images.npy", np.array([png], dtype=object), allow_pickle=True)
    out = _saved_model_cli_run(
        version_dir, "serve_bytes", ["--inputs", f"images={tmp_path / 'images.npy'}"], tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert np.load(tmp_path / "foreground.npy").shape == (1, 32, 32)


def test_saved_model_cli_run_part_swap(version_dir, tmp_path, frames):
    np.save(tmp_path / "source.npy", frames[:1])
    np.save(tmp_path / "target.npy", frames[1:2])
    np.save(tmp_path / "mask.npy", np.array([[0, 1, 0, 0, 0]], np.float32))
    inputs = (
        f"source={tmp_path / 'source.npy'};target={tmp_path / 'target.npy'};part_mask={tmp_path / 'mask.npy'}"
    )
    out = _saved_model_cli_run(version_dir, "part_swap", ["--inputs", inputs], tmp_path / "out")
    assert out.returncode == 0, out.stderr[-2000:]
    image = np.load(tmp_path / "out" / "image.npy")
    assert image.shape == (1, 64, 64, 3) and 0.0 <= image.min() and image.max() <= 1.0


def test_fresh_tensorflow_only_process_calls_every_signature(version_dir, tmp_path):
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tensorflow as tf

        model = tf.saved_model.load(sys.argv[1])
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(2, 80, 100, 3), dtype=np.uint8)
        out = {}
        seg = model.signatures["serving_default"](images=tf.constant(pixels / 255.0, tf.float32))
        out["float"] = {k: v.shape.as_list() for k, v in seg.items()}
        out["uint8"] = model.signatures["serve_uint8"](images=tf.constant(pixels))["parts"].shape.as_list()
        encoded = [tf.io.encode_png(pixels[0]).numpy(), tf.io.encode_jpeg(pixels[1]).numpy()]
        got = model.signatures["serve_bytes"](images=tf.constant(encoded))
        out["bytes"] = got["segmentation"].shape.as_list()
        out["bytes_input_size"] = got["input_size"].numpy().tolist()
        mask = np.zeros((2, 5), np.float32)
        mask[:, 2] = 1.0
        swap = model.signatures["part_swap"](
            source=tf.constant(pixels / 255.0, tf.float32),
            target=tf.constant(pixels[::-1] / 255.0, tf.float32),
            part_mask=tf.constant(mask),
        )
        out["swap"] = swap["image"].shape.as_list()
        out["project_modules"] = sorted(m for m in sys.modules if m.startswith("coseg"))
        print(json.dumps(out))
        """
    )
    path = tmp_path / "client.py"
    path.write_text(script)
    result = run_python([str(path), version_dir], cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["project_modules"] == []
    assert out["float"]["segmentation"] == [2, 32, 32, 5]
    assert out["float"]["affine"] == [2, 4, 2, 2]
    assert out["float"]["input_size"] == [2, 2]
    assert out["uint8"] == [2, 32, 32]
    assert out["bytes"] == [2, 32, 32, 5]
    assert out["bytes_input_size"] == [[80, 100], [80, 100]]
    assert out["swap"] == [2, 64, 64, 3]


def test_signatures_agree_with_keras(loaded, model, frames):
    pairs = np.stack([frames[:2], frames[1:]], axis=1)
    checks = verify.verify_saved_model_signatures(loaded, model, pairs)
    assert {c.artifact for c in checks} == {
        "saved_model:serving_default",
        "saved_model:serve_uint8",
        "saved_model:serve_bytes (PNG)",
        "saved_model:part_swap",
    }
    for check in checks:
        assert check.value <= 1e-4, check
        assert check.passed


def test_any_input_size_is_resized_to_the_frame_size(loaded, model, frames):
    big = tf.image.resize(frames, (96, 128), method="bilinear").numpy().clip(0, 1)
    got = loaded.signatures["serving_default"](images=tf.constant(big))
    reference = graphs.segment(
        model.segmenter, tf.image.resize(big, (64, 64), method="bilinear", antialias=True).numpy().clip(0, 1)
    )
    np.testing.assert_allclose(got["segmentation"], reference["segmentation"], atol=1e-4)
    np.testing.assert_array_equal(got["input_size"], [[96, 128]] * 3)


def test_part_swap_edge_cases_match_the_paper_construction(loaded, model, frames):
    source, target = frames[:1], frames[1:2]
    everything = loaded.signatures["part_swap"](
        source=tf.constant(source), target=tf.constant(target), part_mask=tf.ones((1, 5))
    )
    seg_source = model.segmenter(source, training=False)
    seg_target = model.segmenter(target, training=False)
    reconstruction = model.generator(
        {"source": source, "seg_source": seg_source, "seg_target": seg_target}, training=False
    )["prediction"]
    # All parts (soft maps sum to one): the generator's own reconstruction of the target.
    np.testing.assert_allclose(everything["image"], reconstruction, atol=1e-4)
    np.testing.assert_allclose(everything["blend_mask"], 1.0, atol=1e-5)
    nothing = loaded.signatures["part_swap"](
        source=tf.constant(source), target=tf.constant(target), part_mask=tf.zeros((1, 5))
    )
    autoencoded = model.generator.decode(model.generator.encode(target, training=False), training=False)
    np.testing.assert_allclose(nothing["image"], autoencoded, atol=1e-4)
    one = np.zeros((1, 5), np.float32)
    one[0, 2] = 1.0
    swapped = loaded.signatures["part_swap"](
        source=tf.constant(source), target=tf.constant(target), part_mask=tf.constant(one)
    )
    np.testing.assert_allclose(swapped["blend_mask"], seg_target["segmentation"][..., 2], atol=1e-5)


BAD_INPUTS = [
    ("serving_default", {"images": np.zeros((64, 64, 3), np.float32)}, "must be a [batch, height, width, 3]"),
    (
        "serving_default",
        {"images": np.zeros((1, 64, 64, 4), np.float32)},
        "must be a [batch, height, width, 3]",
    ),
    ("serving_default", {"images": np.full((1, 64, 64, 3), 255.0, np.float32)}, "must be in [0, 1]"),
    ("serving_default", {"images": np.full((1, 8, 8, 3), np.nan, np.float32)}, "must be in [0, 1]"),
    ("serving_default", {"images": np.zeros((1, 0, 64, 3), np.float32)}, "height and width must be > 0"),
    ("serving_default", {"images": np.zeros((0, 64, 64, 3), np.float32)}, "images: the batch is empty"),
    ("serve_uint8", {"images": np.zeros((0, 64, 64, 3), np.uint8)}, "images: the batch is empty"),
    ("serve_bytes", {"images": np.zeros((0,), bytes)}, "images: the batch is empty"),
    (
        "part_swap",
        {
            "source": np.zeros((0, 64, 64, 3), np.float32),
            "target": np.zeros((0, 64, 64, 3), np.float32),
            "part_mask": np.zeros((0, 5), np.float32),
        },
        "source: the batch is empty",
    ),
    ("serve_uint8", {"images": np.zeros((1, 2, 64, 64, 3), np.uint8)}, "must be a [batch, height, width, 3]"),
    ("serve_uint8", {"images": np.zeros((1, 64, 64, 1), np.uint8)}, "must be a [batch, height, width, 3]"),
    ("serve_bytes", {"images": np.array([b"not an image"])}, "is not a JPEG, PNG, GIF or BMP file"),
    ("serve_bytes", {"images": np.array([[b"x"]])}, "must be a [batch] vector of encoded"),
    (
        "part_swap",
        {
            "source": np.zeros((1, 64, 64, 3), np.float32),
            "target": np.zeros((1, 64, 64, 3), np.float32),
            "part_mask": np.zeros((1, 4), np.float32),
        },
        "part_mask must be a [batch, 5]",
    ),
    (
        "part_swap",
        {
            "source": np.zeros((2, 64, 64, 3), np.float32),
            "target": np.zeros((1, 64, 64, 3), np.float32),
            "part_mask": np.zeros((1, 5), np.float32),
        },
        "must have the same batch size",
    ),
    (
        "part_swap",
        {
            "source": np.zeros((1, 64, 64, 3), np.float32),
            "target": np.zeros((1, 64, 64, 3), np.float32),
            "part_mask": np.full((1, 5), 2.0, np.float32),
        },
        "part_mask values must be in [0, 1]",
    ),
    (
        "part_swap",
        {
            "source": np.zeros((1, 64, 64), np.float32),
            "target": np.zeros((1, 64, 64, 3), np.float32),
            "part_mask": np.zeros((1, 5), np.float32),
        },
        "source must be a [batch, height, width, 3]",
    ),
]


@pytest.mark.parametrize(
    "signature,inputs,message", BAD_INPUTS, ids=lambda x: x if isinstance(x, str) else ""
)
def test_bad_inputs_fail_with_a_clear_message(loaded, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    assert message in str(error.value)


def test_wrong_dtype_is_rejected_by_the_signature(loaded):
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)) as error:
        loaded.signatures["serving_default"](images=tf.zeros((1, 64, 64, 3), tf.uint8))
    assert "float" in str(error.value) and "uint8" in str(error.value)


def test_truncated_image_fails_inside_the_decoder(loaded, frames):
    png = tf.io.encode_png(np.round(frames[0] * 255).astype(np.uint8)).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serve_bytes"](images=tf.constant([png[: len(png) // 3]]))


def test_resize_to_input_export(model, tmp_path, frames):
    path = saved_model.export_saved_model(
        model, str(tmp_path), "coseg", part_swap=False, resize_to_input=True
    )
    assert path.endswith(os.path.join("coseg", "1"))
    loaded = tf.saved_model.load(path)
    assert "part_swap" not in loaded.signatures
    images = tf.image.resize(frames, (48, 80)).numpy().clip(0, 1)
    got = loaded.signatures["serving_default"](images=tf.constant(images))
    assert got["segmentation"].shape == (3, 48, 80, 5)
    np.testing.assert_array_equal(got["parts"], np.argmax(got["segmentation"], -1))
    np.testing.assert_allclose(got["foreground"], 1.0 - got["segmentation"][..., 0], atol=1e-6)
    pngs = [tf.io.encode_png(np.zeros((h, 40, 3), np.uint8)).numpy() for h in (30, 31)]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="all images of a request must have the same size"
    ):
        loaded.signatures["serve_bytes"](images=tf.constant(pngs))
    # The next export goes to the next version; an existing version is not overwritten silently.
    assert saved_model.next_version(os.path.dirname(path)) == 2
    with pytest.raises(FileExistsError):
        saved_model.export_saved_model(model, str(tmp_path), "coseg", 1, part_swap=False)
