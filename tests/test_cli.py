"""The commands' shared entry point: flags defined when a command runs, not on import."""

import importlib

from absl import flags

from coseg_tf import cli

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
