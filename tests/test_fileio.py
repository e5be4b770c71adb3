"""Paths: local files through the standard library (no TensorFlow import), URLs through tf.io.gfile."""

import subprocess
import sys
import textwrap

import numpy as np

from coseg_tf import fileio
from coseg_tf.testing import quiet_env


def test_a_file_url_is_local_and_a_cloud_url_is_remote(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    url = f"file://{path}"
    assert fileio.is_url(url) and not fileio.is_remote(url) and fileio.local_path(url) == str(path)
    assert fileio.is_remote("gs://bucket/a.txt") and not fileio.is_url(str(path))
    assert fileio.exists(url) and not fileio.isdir(url) and fileio.isdir(f"file://{tmp_path}")
    assert fileio.read_bytes(url) == b"x" and fileio.listdir(str(tmp_path)) == ["a.txt"]
    with fileio.open_file(url, "r") as f:
        assert f.read() == "x"
    assert fileio.join("gs://bucket/", "/a/", "b.txt") == "gs://bucket/a/b.txt"


def test_local_configs_and_weights_are_read_without_importing_tensorflow(tmp_path):
    """What lets a command refuse a bad local file before it pays for importing TensorFlow."""
    (tmp_path / "c.yaml").write_text("train_params:\n  batch_size: 2\n")
    np.savez(tmp_path / "w.npz", **{"segmentation_module/a": np.ones(2)})
    (tmp_path / "bad.pth.tar").write_bytes(b"PK\x03\x04 cut short")
    yaml_path, npz_path, bad_path = (str(tmp_path / n) for n in ("c.yaml", "w.npz", "bad.pth.tar"))
    code = textwrap.dedent(
        f"""
        import sys
        from coseg_tf import cli, config, pth_reader
        assert config.read_yaml_mapping({yaml_path!r}) == {{"train_params": {{"batch_size": 2}}}}
        assert list(pth_reader.read_state_file({npz_path!r})) == ["segmentation_module/a"]
        cli.check_weights_file({npz_path!r})
        try:
            cli.check_weights_file({bad_path!r})
            raise SystemExit("a truncated checkpoint passed the check")
        except pth_reader.CheckpointReadError as e:
            assert "bad.pth.tar" in str(e), e
        print("tensorflow" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=quiet_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_a_cloud_file_is_read_and_copied_through_tf_io_gfile():
    import tensorflow as tf

    url = "ram://coseg-fileio/a.bin"  # TensorFlow's in-memory file system stands in for gs://
    with tf.io.gfile.GFile(url, "wb") as f:
        f.write(b"cloud")
    assert fileio.is_remote(url) and fileio.exists(url) and fileio.read_bytes(url) == b"cloud"
    with fileio.local_copy(url) as local:
        assert not fileio.is_url(local) and open(local, "rb").read() == b"cloud"
    assert not fileio.exists(local)  # the temporary copy is gone
