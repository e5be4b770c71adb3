"""The commands' shared entry point: flags defined when a command runs, not on import."""

import importlib
import os

import pytest
from absl import flags

from coseg_tf import cli
from coseg_tf.errors import CosegError

COMMANDS = [
    "coseg_tf.data.prepare",
    "coseg_tf.data.make_synthetic",
    "coseg_tf.train",
    "coseg_tf.evaluate",
    "coseg_tf.export.main",
    "coseg_tf.segment",
    "coseg_tf.swap",
    "coseg_tf.demo",
]


def test_importing_every_command_defines_no_flags():
    for module in COMMANDS:
        assert callable(importlib.import_module(module).main)
    ours = {
        name
        for name in flags.FLAGS
        if flags.FLAGS.find_module_defining_flag(name, "").startswith(("coseg_tf", "__main__"))
    }
    assert ours == set()  # so one process can import every command


def test_report_error_names_the_command_and_the_error(capsys):
    status = cli.report_error("coseg-eval", FileNotFoundError("model path not found: /no/model"))
    assert status == cli.BAD_INPUT == 2
    assert capsys.readouterr().err == "coseg-eval: error: model path not found: /no/model\n"
    assert cli.report_error("coseg-export", ValueError("x"), cli.CHECK_FAILED) == 1
    assert capsys.readouterr().err == "coseg-export: error: x\n"


def test_an_output_dir_that_cannot_be_one_is_refused(tmp_path, monkeypatch):
    cli.check_output_dir(str(tmp_path / "new" / "deeper"), "--output_dir")  # made later: fine
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(CosegError, match=f"^--output_dir={a_file} is a file, not a directory$"):
        cli.check_output_dir(str(a_file), "--output_dir")
    with pytest.raises(CosegError, match=f"{a_file} is a file, not a directory"):
        cli.check_output_dir(str(a_file / "below"), "--model_dir")
    # Read-only folders (root writes anyway, so the permission test is os.access's answer).
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(CosegError, match=f"--model_dir={tmp_path}/run: {tmp_path} is not writable"):
        cli.check_output_dir(str(tmp_path / "run"), "--model_dir")


def test_report_error_keeps_the_message_on_one_line(capsys):
    cli.report_error("coseg-train", ValueError("first line\n  second line"))
    assert capsys.readouterr().err == "coseg-train: error: first line second line\n"
