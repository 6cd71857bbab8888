"""Config loading: YAML + dotted overrides, type checks, unknown keys, round trip."""
import pytest
import yaml

from rvos.errors import ConfigError
from rvos.train.config import TrainConfig, from_dict, load_config, save_config, to_dict


def test_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {root: /x, clip: {num_frames: 3}}\noptim: {lr: 1.0e-4}\nmodel: {vision: tiny}\n")
    cfg = load_config(p, ["optim.lr=2e-4", "loop.steps=7", "data.clip.size=[64, 96]", "optim.decay_steps=[5, 9]",
                          "model.fpn_dims=[8,8,8]", "method.params.w_dice=2", "data.val_split=null", "loop.amp=off"])
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.loop.steps == 7 and cfg.data.clip.num_frames == 3 and cfg.data.clip.size == (64, 96)
    assert cfg.optim.decay_steps == [5, 9] and cfg.model.vision == "tiny" and cfg.model.fpn_dims == (8, 8, 8)
    assert cfg.method.params == {"w_dice": 2} and cfg.data.val_split is None and cfg.optim.backbone_lr == 2.5e-5


@pytest.mark.parametrize("override, match", [
    ("optim.lrr=1", "optim.lrr"),
    ("loop.steps=1.5", "loop.steps"),
    ("loop.progress=maybe", "loop.progress"),
    ("model.dims=3", "model.dims"),
    ("data.clip.size=[1,2,3]", "data.clip.size"),
    ("nothing=1", "nothing"),
    ("optim.lr", "key=value"),
    ("optim.lr.x=1", "optim.lr"),
    ("model.vision=resnet", "model.vision"),
])
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_missing_and_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="missing config"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, ["data.root=/d", "optim.lr=3e-4", "model.vision=tiny"])
    save_config(cfg, tmp_path / "config.yaml")
    back = from_dict(TrainConfig, yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert to_dict(back) == to_dict(cfg) and back.model == cfg.model
