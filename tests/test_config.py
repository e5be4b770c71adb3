"""Config loading: the published configs load unchanged, typos are named, overrides apply."""

import pytest

from coseg_tf import config as cfg

PUBLISHED = ["vox-256-sem-5segments", "vox-256-sem-10segments", "vox-256-sem-15segments", "taichi-256-sem"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_configs_load_with_paper_values(name):
    c = cfg.load_config(cfg.packaged_config_path(name))
    assert c["dataset_params"]["frame_shape"] == [256, 256, 3]
    assert c["dataset_params"]["id_sampling"] is True
    seg = cfg.segmenter_kwargs(c)
    assert seg["temperature"] == 0.1 and seg["scale_factor"] == 0.25 and seg["num_blocks"] == 5
    assert seg["estimate_affine_part"] is True
    gen = cfg.generator_kwargs(c)
    assert gen["num_bottleneck_blocks"] == 6 and gen["estimate_visibility"] is True
    assert c["train_params"]["num_repeats"] == 50
    assert c["train_params"]["num_epochs"] == (10 if name.startswith("taichi") else 5)
    expected_k = {"vox-256-sem-5segments": 5, "vox-256-sem-15segments": 15}.get(name, 10)
    assert seg["num_segments"] == gen["num_segments"] == expected_k


def test_the_heads_config_is_the_synthetic_recipe():
    # One recipe judged on two data families: configs/synthetic-heads.yaml must follow synthetic.yaml.
    heads = cfg.load_config(cfg.packaged_config_path("synthetic-heads"))
    assert heads == cfg.load_config(cfg.packaged_config_path("synthetic"))


def test_unknown_key_is_named():
    with pytest.raises(cfg.ConfigError, match="train_params.transform_params.sigma_afine"):
        cfg.build_config({"train_params": {"transform_params": {"sigma_afine": 0.1}}})


def test_both_learning_rate_spellings_are_accepted():
    a = cfg.build_config({"train_params": {"lr_segmentation_module": 1e-3, "lr_reconstruction_module": 2e-3}})
    b = cfg.build_config({"train_params": {"lr_segmentation": 1e-3, "lr_reconstruction": 2e-3}})
    assert a == b and a["train_params"]["lr_segmentation"] == 1e-3


def test_overrides_parse_yaml_values_and_reject_unknown_keys():
    c = cfg.build_config({}, ["train_params.batch_size=8", "train_params.scales=[1, 0.5]"])
    assert c["train_params"]["batch_size"] == 8 and c["train_params"]["scales"] == [1, 0.5]
    with pytest.raises(cfg.ConfigError, match="train_params.batch"):
        cfg.build_config({}, ["train_params.batch=8"])
    with pytest.raises(cfg.ConfigError, match="not of the form"):
        cfg.build_config({}, ["train_params.batch_size"])


def test_a_bad_override_is_named_as_given_not_by_the_config_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train_params:\n  batch_size: 4\n")
    with pytest.raises(cfg.OverrideError) as raised:
        cfg.load_config(str(path), ["train_params.batch=8"])
    assert str(raised.value).startswith("override 'train_params.batch=8': unknown config key")
    assert str(path) not in str(raised.value)
    with pytest.raises(cfg.OverrideError, match="'batch_size' is not a config section"):
        cfg.load_config(str(path), ["train_params.batch_size.x=8"])
    # a value that fails validation names the file and the overrides that led to it
    with pytest.raises(cfg.ConfigError) as raised:
        cfg.load_config(str(path), ["train_params.segmentation_warmup.epochs=-1"])
    message = str(raised.value)
    assert message.startswith(f"{path}: train_params.segmentation_warmup needs")
    assert "after the overrides ['train_params.segmentation_warmup.epochs=-1']" in message
    # a bad file is still named by its path
    path.write_text("train_params:\n  batch: 4\n")
    with pytest.raises(cfg.ConfigError, match=f"^{path}: unknown config key 'train_params.batch'"):
        cfg.load_config(str(path))


@pytest.mark.parametrize(
    "variant,affine,visibility,stop,motion",
    [
        ("naive", False, False, True, False),
        ("shift_only", False, False, True, True),
        ("affine_only", True, False, True, True),
        ("v_backprop", True, True, False, True),
        ("full", True, True, True, True),
    ],
)
def test_variant_sets_module_flags(variant, affine, visibility, stop, motion):
    c = cfg.build_config({"model_params": {"variant": variant}})
    assert cfg.segmenter_kwargs(c)["estimate_affine_part"] is affine
    gen = cfg.generator_kwargs(c)
    assert (gen["estimate_visibility"], gen["visibility_stop_gradient"], gen["use_motion"]) == (
        visibility,
        stop,
        motion,
    )


def test_bad_variant_and_missing_file():
    with pytest.raises(cfg.ConfigError, match="variant"):
        cfg.build_config({"model_params": {"variant": "fancy"}})
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        cfg.load_config("nope.yaml")


def test_segmentation_warmup_is_checked():
    assert cfg.build_config({})["train_params"]["segmentation_warmup"] == {"epochs": 0, "factor": 1.0}
    for bad in ({"epochs": -1}, {"epochs": 1.5}, {"factor": 0}):
        with pytest.raises(cfg.ConfigError, match="segmentation_warmup"):
            cfg.build_config({"train_params": {"segmentation_warmup": bad}})


def test_keys_nothing_reads_are_named_in_a_warning_when_set(caplog):
    with caplog.at_level("WARNING", logger="absl"):
        cfg.build_config(
            {"dataset_params": {"pairs_list": "data/vox256.csv"}, "visualizer_params": {"kp_size": 3}}
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "'dataset_params.pairs_list' is set but not used" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="absl"):
        cfg.build_config({}, ["visualizer_params.colormap=viridis"])
        cfg.load_config(cfg.packaged_config_path("vox-256-sem-10segments"))  # defaults: no warning
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "config key 'visualizer_params.colormap' is set but not used: "
        "training images use coseg-tf's own part colours"
    ]
