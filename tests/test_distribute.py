"""Strategy and precision helpers (coseg_tf.distribute): one list of precision names."""

import pytest

from coseg_tf import config as config_lib
from coseg_tf import distribute, task, trainer


def test_the_trainer_and_the_commands_share_one_precision_list():
    assert distribute.PRECISIONS is config_lib.PRECISIONS
    assert trainer.resolve_precision is task.resolve_precision is distribute.resolve_precision


def test_auto_resolves_to_a_policy_of_this_machine():
    expected = "mixed_bfloat16" if distribute.cpu_has_native_bf16() else "off"
    assert distribute.resolve_precision("auto") == expected  # no GPU here
    for name in ("off", "mixed_bfloat16", "mixed_float16"):
        assert distribute.resolve_precision(name) == name


def test_an_unknown_precision_or_strategy_is_named():
    with pytest.raises(ValueError, match="unknown mixed precision 'fp8'; choose from"):
        distribute.resolve_precision("fp8")
    with pytest.raises(ValueError, match="unknown strategy 'tpu'"):
        distribute.make_strategy("tpu")
    assert distribute.is_chief(distribute.make_strategy("default"))
