"""Geometry ops against NumPy references and the edge cases training hits."""

import numpy as np
import pytest
import tensorflow as tf

from coseg_tf import geometry


def _numpy_grid_sample(image, grid, border):
    """Reference bilinear sampler with corner-aligned coordinates, one image."""
    h, w, _ = image.shape
    out = np.zeros(grid.shape[:2] + (image.shape[2],))
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            x = (grid[i, j, 0] + 1) / 2 * (w - 1)
            y = (grid[i, j, 1] + 1) / 2 * (h - 1)
            if border:
                x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            for xc, yc in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
                if 0 <= xc < w and 0 <= yc < h:
                    out[i, j] += image[yc, xc] * (1 - abs(x - xc)) * (1 - abs(y - yc))
    return out


def test_coordinate_grid_is_corner_aligned_x_first():
    grid = geometry.make_coordinate_grid(3, 5).numpy()
    assert grid.shape == (3, 5, 2)
    np.testing.assert_allclose(grid[0, 0], [-1, -1])
    np.testing.assert_allclose(grid[2, 4], [1, 1])
    np.testing.assert_allclose(grid[1, 1], [-0.5, 0])


def test_identity_grid_reproduces_the_image():
    image = tf.random.uniform((2, 7, 9, 3))
    grid = tf.broadcast_to(geometry.make_coordinate_grid(7, 9), (2, 7, 9, 2))
    np.testing.assert_allclose(geometry.grid_sample(image, grid).numpy(), image.numpy(), atol=1e-6)


@pytest.mark.parametrize("mode", ["zeros", "border"])
def test_grid_sample_matches_numpy_reference(mode):
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(1, 6, 8, 2)).astype(np.float32)
    grid = rng.uniform(-1.4, 1.4, size=(1, 5, 4, 2)).astype(np.float32)
    got = geometry.grid_sample(image, grid, padding_mode=mode).numpy()[0]
    np.testing.assert_allclose(got, _numpy_grid_sample(image[0], grid[0], mode == "border"), atol=1e-5)


def test_grid_sample_non_finite_coordinates_read_zeros():
    image = tf.ones((1, 4, 4, 1))
    grid = tf.constant([[[[np.nan, 0.0], [np.inf, -np.inf]]]], tf.float32)
    np.testing.assert_array_equal(geometry.grid_sample(image, grid).numpy(), 0.0)
    with pytest.raises(ValueError, match="padding_mode"):
        geometry.grid_sample(image, grid, padding_mode="reflection")


def test_inverse_2x2_matches_numpy_and_stays_finite():
    rng = np.random.default_rng(1)
    matrices = rng.normal(size=(3, 4, 2, 2)).astype(np.float32) + 2 * np.eye(2, dtype=np.float32)
    np.testing.assert_allclose(
        geometry.inverse_2x2(matrices).numpy(), np.linalg.inv(matrices), rtol=1e-4, atol=1e-5
    )
    singular = tf.constant([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [2.0, 4.0]]])
    assert np.all(np.isfinite(geometry.inverse_2x2(singular).numpy()))
    nan = tf.constant([[[np.nan, 0.0], [0.0, 1.0]]])
    np.testing.assert_array_equal(geometry.inverse_2x2(nan).numpy(), [np.eye(2)])


def test_soft_argmax_of_a_peak_is_its_coordinate():
    logits = np.full((1, 5, 7, 1), -1e4, np.float32)
    logits[0, 3, 2, 0] = 0.0
    heatmap = geometry.spatial_softmax(tf.constant(logits), temperature=0.1)
    np.testing.assert_allclose(
        geometry.soft_argmax(heatmap).numpy(), [[[2 * 2 / 6 - 1, 2 * 3 / 4 - 1]]], atol=1e-6
    )


def test_antialias_kernel_and_downsample():
    kernel, pad = geometry.gaussian_kernel(0.25)
    assert kernel.shape == (13, 13) and pad == 6
    np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-6)
    image = tf.ones((1, 64, 64, 3))
    small = geometry.antialias_downsample(image, 0.25).numpy()
    assert small.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(small[0, 4:12, 4:12], 1.0, atol=1e-5)  # zero padding only darkens the rim
    assert small[0, 0, 0, 0] < 0.9
    with pytest.raises(ValueError, match="1/n"):
        geometry.antialias_downsample(image, 0.3)


def test_nearest_upsampling_repeats_rows_and_columns():
    x = tf.random.uniform((2, 3, 5, 4))
    expected = np.repeat(np.repeat(x.numpy(), 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(geometry.upsample_nearest_2x(x).numpy(), expected)
