"""Training with transformers encoders: one step frozen / fine-tuned (own learning rates), the checkpoint leaves a
frozen hf encoder out and records its name, revision and weights hash, and loading it with the encoder missing or
replaced fails clearly."""
import shutil

import pytest
import torch

from hf_helpers import offline_hub, save_tiny, text_configs, vision_configs
from rvos.errors import ConfigError
from rvos.models import ModelConfig
from rvos.train.checkpoint import checkpoint_path, load_checkpoint, load_model_from_checkpoint
from rvos.train.config import TrainConfig, from_dict
from rvos.train.loop import Trainer
from train_helpers import tiny_records, tiny_train_config


@pytest.fixture()
def folders(tmp_path):
    return {"convnext": save_tiny(vision_configs()["convnext"], tmp_path / "convnext"),
            "swin": save_tiny(vision_configs()["swin"], tmp_path / "swin"),
            "roberta": save_tiny(text_configs()["roberta"], tmp_path / "roberta", tokenizer=True),
            "bert": save_tiny(text_configs()["bert"], tmp_path / "bert", tokenizer=True)}


def train_one_step(out, vision: str, text: str, vision_frozen: bool, text_frozen: bool, **loop):
    cfg = tiny_train_config(steps=1, **loop)
    cfg.model = ModelConfig(vision=f"hf:{vision}", vision_frozen=vision_frozen, text=f"hf:{text}",
                            text_frozen=text_frozen, dim=16, num_heads=2, fpn_dims=(16, 16, 8), mask_dim=8, dyn_hidden=8)
    cfg.optim.backbone_lr, cfg.optim.text_lr = 1e-4, 2e-5
    t = Trainer(cfg, out, records=tiny_records(2))
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    parts = t.fit()
    return t, before, parts


def changed(t, before, prefix) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in t.model.state_dict().items() if k.startswith(prefix))


def test_frozen_vision_cached_features_and_fine_tuned_text(folders, tmp_path):
    t, before, parts = train_one_step(tmp_path / "run", folders["convnext"], folders["roberta"], True, False,
                                      feature_cache="memory")
    assert parts["loss"] > 0 and t.step == 1
    lrs = {g["name"]: g["lr"] for g in t.optimizer.param_groups}
    assert lrs == {"text": 2e-5, "head": 3e-3}  # the text encoder at its own rate; the frozen vision has no group
    assert changed(t, before, "text.") and changed(t, before, "head.") and not changed(t, before, "vision.")
    ck = load_checkpoint(checkpoint_path(tmp_path / "run"))
    assert ck["omitted"] == ["vision."] and not any(k.startswith("vision.") for k in ck["model"])
    rec = ck["encoders"]["vision."]
    assert rec["name"] == f"hf:{folders['convnext']}" and rec["revision"] is None and len(rec["sha256"]) == 64
    model, _ = load_model_from_checkpoint(checkpoint_path(tmp_path / "run"))
    x = torch.rand(1, 2, 3, 32, 48)
    t.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x, ["the red car"]).mask_logits, t.model(x, ["the red car"]).mask_logits, atol=1e-6)


def test_fine_tuned_vision_and_frozen_text(folders, tmp_path):
    t, before, _ = train_one_step(tmp_path / "run", folders["swin"], folders["bert"], False, True)
    lrs = {g["name"]: g["lr"] for g in t.optimizer.param_groups}
    assert lrs == {"backbone": 1e-4, "head": 3e-3}
    assert changed(t, before, "vision.") and not changed(t, before, "text.")
    ck = load_checkpoint(checkpoint_path(tmp_path / "run"))
    assert ck["omitted"] == ["text."] and set(ck["encoders"]) == {"text."}
    assert any(k.startswith("vision.model.") for k in ck["model"])  # the fine-tuned encoder is stored


def test_missing_or_other_encoder_fails_clearly(folders, tmp_path):
    vision = shutil.copytree(folders["convnext"], tmp_path / "my-convnext")
    train_one_step(tmp_path / "run", vision, folders["roberta"], True, False, feature_cache="off")
    path = checkpoint_path(tmp_path / "run")
    sha = load_checkpoint(path)["encoders"]["vision."]["sha256"]
    save_tiny(vision_configs()["convnext"], vision, seed=1)  # same architecture and path, other weights
    with pytest.raises(ConfigError, match=rf"trained with the frozen vision encoder hf:.*my-convnext, weights sha256 "
                                          rf"{sha[:12]}.*other weights"):
        load_model_from_checkpoint(path)
    with pytest.raises(ConfigError, match="trained with the frozen vision encoder"):  # --resume checks it too
        Trainer(from_dict(TrainConfig, load_checkpoint(path)["config"]), tmp_path / "run", records=tiny_records(2),
                resume=True)
    shutil.rmtree(vision)
    with pytest.raises(ConfigError, match=rf"{path.name}: its model cannot be built here \(it needs the frozen encoders "
                                          rf"vision: hf:.*my-convnext, weights sha256 {sha[:12]}.*neither a folder"):
        load_model_from_checkpoint(path)



def test_hub_encoder_checkpoint_pins_the_commit(folders, monkeypatch, tmp_path):
    commit = offline_hub(monkeypatch, tmp_path / "hub", "tiny/convnext", vision_configs()["convnext"])
    train_one_step(tmp_path / "run", "tiny/convnext", folders["roberta"], True, False)
    path = checkpoint_path(tmp_path / "run")
    assert load_checkpoint(path)["encoders"]["vision."]["revision"] == commit
    _, cfg = load_model_from_checkpoint(path)
    assert cfg.model.vision == "hf:tiny/convnext" and cfg.model.vision_revision == commit  # rebuilt at that commit
