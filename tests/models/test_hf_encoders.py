"""Encoders from transformers (`model.vision=hf:...`, `model.text=hf:...`) on tiny random models of each family,
saved to a temporary folder and read back by path (nothing is downloaded: HF_HUB_OFFLINE=1)."""
import json
import shutil

import pytest
import torch

from hf_helpers import offline_hub, save_tiny, text_configs, vision_configs
from rvos.errors import ConfigError
from rvos.models import ModelConfig, build_model
from rvos.models.hf import CLIP_MEAN, HFTextEncoder, HFVisionEncoder, config_stage_strides, pick_levels
from rvos.models.vision import IMAGENET_MEAN


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {k: save_tiny(c, root / k, tokenizer=k == "clip_full") for k, c in vision_configs().items()}
    out.update({k: save_tiny(c, root / k, tokenizer=True) for k, c in text_configs().items()})
    return out


# family -> (widths of C2..C5 read from its config, the strides the model computes them at)
EXPECTED = {
    "convnext": ((8, 16, 24, 32), (4, 8, 16, 32)),  # hidden_sizes
    "swin": ((8, 16, 32, 64), (4, 8, 16, 32)),  # embed_dim * 2**stage
    "dinov2": ((16,) * 4, (14,) * 4),  # hidden_size, patch 14: resampled to 4..32
    "clip_vision": ((16,) * 4, (8,) * 4),
    "siglip_vision": ((16,) * 4, (8,) * 4),
    "clip_full": ((16,) * 4, (8,) * 4),  # the vision tower of a full CLIP checkpoint
}


@pytest.mark.parametrize("family", list(EXPECTED))
def test_vision_levels_from_config(folders, family):
    enc = HFVisionEncoder(f"hf:{folders[family]}", frozen=True)
    assert (enc.channels, enc.native_strides, enc.strides) == (*EXPECTED[family], (4, 8, 16, 32))
    feats = enc(torch.rand(2, 3, 66, 98))  # odd size: padded inside, each level cropped to ceil(H / stride)
    assert [tuple(f.shape) for f in feats] == [(2, c, -(-66 // s), -(-98 // s)) for c, s in zip(enc.channels, enc.strides)]
    assert all(torch.isfinite(f).all() and not f.requires_grad for f in feats)
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training


@pytest.mark.parametrize("family", ["convnext", "swin", "dinov2"])
def test_config_strides_equal_measured(folders, family):
    """The strides rvos reads from the config are the ones the backbone computes (measured on a blank frame)."""
    enc = HFVisionEncoder(f"hf:{folders[family]}", frozen=True)
    stages = [s for s in enc.model.config.stage_names if s.startswith("stage")]
    assert config_stage_strides(enc.model.config, stages) == enc._measure_strides()


def test_pick_levels():
    assert pick_levels([4, 8, 16, 32]) == [0, 1, 2, 3]
    assert pick_levels([4, 4, 8, 16, 32]) == [1, 2, 3, 4]  # the deepest output at each stride
    assert pick_levels([14] * 12) == [2, 5, 8, 11]  # layers 3, 6, 9, 12 of a 12-layer ViT
    assert pick_levels([8, 16, 32]) == [0, 0, 1, 2]  # no stride 4: the nearest (stride 8), resampled


def test_vit_level_is_the_layer_on_its_patch_grid(folders):
    """C3 of a stride-8 CLIP tower is layer 2 (of 4) without its CLS token, through post_layernorm, on the grid."""
    from transformers import CLIPVisionModel

    enc = HFVisionEncoder(f"hf:{folders['clip_vision']}", frozen=True)
    ref = CLIPVisionModel.from_pretrained(folders["clip_vision"]).eval()
    x = torch.rand(1, 3, 64, 96)  # a multiple of 32: no padding
    with torch.no_grad():
        hidden = ref((x - enc.mean) / enc.std, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
        want = ref.post_layernorm(hidden[2][:, 1:]).transpose(1, 2).reshape(1, 16, 8, 12)
    assert torch.allclose(enc(x)[1], want, atol=1e-5)
    assert torch.allclose(enc.mean.flatten(), torch.tensor(CLIP_MEAN))


def test_full_clip_checkpoint_gives_both_towers(folders):
    from transformers import CLIPModel

    full = CLIPModel.from_pretrained(folders["clip_full"]).state_dict()
    vis = HFVisionEncoder(f"hf:{folders['clip_full']}").model.state_dict()
    txt = HFTextEncoder(f"hf:{folders['clip_full']}").model.state_dict()
    assert torch.equal(vis["embeddings.patch_embedding.weight"], full["vision_model.embeddings.patch_embedding.weight"])
    assert torch.equal(txt["embeddings.token_embedding.weight"], full["text_model.embeddings.token_embedding.weight"])


@pytest.mark.parametrize("family", ["roberta", "bert", "clip_text"])
def test_text_features(folders, family):
    enc = HFTextEncoder(f"hf:{folders[family]}", frozen=True)
    f = enc(["the red car", "a camel on the left of the big dog"])
    assert enc.dim == 16 and f.words.shape == (2, 11, 16) and f.pad_mask.sum(1).tolist() == [6, 0]
    real = ~f.pad_mask[0]
    assert torch.allclose(f.sentence[0], f.words[0][real].mean(0), atol=1e-6)  # mean over real tokens
    assert not f.words.requires_grad and (f.words[0][~real] == 0).all()


PAIRS = [("convnext", "roberta"), ("swin", "bert"), ("dinov2", "clip_text"), ("clip_vision", "roberta"),
         ("siglip_vision", "bert"), ("clip_full", "clip_full")]


def hf_model_config(folders, vision, text, **kw) -> ModelConfig:
    return ModelConfig(vision=f"hf:{folders[vision]}", text=f"hf:{folders[text]}", dim=16, num_heads=2,
                       fpn_dims=(16, 16, 8), mask_dim=8, dyn_hidden=8, **kw)


@pytest.mark.parametrize("vision,text", PAIRS)
def test_model_forward_backward_fine_tuned(folders, vision, text):
    torch.manual_seed(0)
    model = build_model(hf_model_config(folders, vision, text, vision_frozen=False, text_frozen=False)).train()
    out = model(torch.rand(2, 2, 3, 64, 96), ["the red car", "the dog on the left"])
    assert out.mask_logits.shape == (2, 2, 1, 16, 24) and torch.isfinite(out.mask_logits).all()
    out.mask_logits.sigmoid().mean().backward()
    for part in (model.vision.model, model.text.model):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads) and all(torch.isfinite(g).all() for g in grads)


def test_frozen_model_has_no_encoder_gradients(folders):
    model = build_model(hf_model_config(folders, "swin", "roberta")).train()
    assert not model.vision.training and not model.text.training  # frozen encoders stay in eval mode
    model(torch.rand(1, 2, 3, 64, 96), ["the red car"]).mask_logits.mean().backward()
    assert all(p.grad is None for p in list(model.vision.parameters()) + list(model.text.parameters()))
    assert any(p.grad is not None for p in model.fusion.parameters())


def test_normalisation_from_preprocessor_config(folders, tmp_path):
    folder = shutil.copytree(folders["convnext"], tmp_path / "convnext")
    assert torch.allclose(HFVisionEncoder(f"hf:{folder}").mean.flatten(), torch.tensor(IMAGENET_MEAN))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.1]}))
    enc = HFVisionEncoder(f"hf:{folder}")
    assert enc.mean.flatten().tolist() == pytest.approx([0.5, 0.4, 0.3]) and enc.std.flatten().tolist() == pytest.approx([0.2, 0.2, 0.1])


def test_random_init_from_config_only(folders, tmp_path):
    """vision_pretrained=false needs only config.json (a model built from its config, random weights)."""
    folder = tmp_path / "cfg-only"
    folder.mkdir()
    shutil.copy(folders["convnext"] / "config.json", folder)
    enc = HFVisionEncoder(f"hf:{folder}", pretrained=False)
    assert enc.channels == (8, 16, 24, 32) and enc.revision is None
    with pytest.raises(ConfigError, match="could not read the weights"):
        HFVisionEncoder(f"hf:{folder}", pretrained=True)


def test_clear_errors(folders, tmp_path):
    with pytest.raises(ConfigError, match="give a folder or a hub id"):
        ModelConfig(vision="hf:")
    with pytest.raises(ConfigError, match=r"model.vision=hf:.*nothere.*neither a folder.*HF_HUB_OFFLINE"):
        HFVisionEncoder(f"hf:{tmp_path / 'nothere'}")
    with pytest.raises(ConfigError, match="'convnext' is not a text encoder"):
        HFTextEncoder(f"hf:{folders['convnext']}")
    with pytest.raises(ConfigError, match="'roberta' is not a vision model"):
        HFVisionEncoder(f"hf:{folders['roberta']}")
    no_tok = shutil.copytree(folders["roberta"], tmp_path / "roberta", ignore=shutil.ignore_patterns("tokenizer*"))
    with pytest.raises(ConfigError, match="no tokenizer could be read"):
        HFTextEncoder(f"hf:{no_tok}")


def test_hub_id_read_offline_from_the_cache_records_its_commit(monkeypatch, tmp_path):
    commit = offline_hub(monkeypatch, tmp_path, "tiny/convnext", vision_configs()["convnext"])
    enc = HFVisionEncoder("hf:tiny/convnext")
    assert enc.revision == commit and enc.channels == (8, 16, 24, 32)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        HFVisionEncoder("hf:tiny/not-in-the-cache")


def test_weights_missing_from_the_folder_are_the_same_at_every_load(folders, tmp_path):
    """A frozen encoder is rebuilt from its folder at every checkpoint load: weights the folder lacks (initialised
    at load) must come out the same whatever the global RNG, or the checkpoint's weights hash would not match."""
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(folders["dinov2"], tmp_path / "dinov2")
    weights = load_file(folder / "model.safetensors")
    del weights["encoder.layer.0.attention.attention.query.weight"]  # randomly initialised when missing
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    shas = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        shas.append(HFVisionEncoder(f"hf:{folder}").weights_sha256())
        after = torch.rand(1)
        torch.manual_seed(seed)
        assert torch.equal(after, torch.rand(1))  # loading leaves the global RNG where it was
    assert shas[0] == shas[1] and shas[0] != HFVisionEncoder(f"hf:{folders['dinov2']}").weights_sha256()


@pytest.mark.parametrize("vision,text", [("dinov2", "bert"), ("swin", "roberta")])
def test_predictor_runs_hf_models_on_any_frame_size(folders, vision, text):
    """The streaming predictor pads to 32, the encoder to its own stride (14 for DINOv2): masks come back at the
    video's size."""
    import numpy as np

    from rvos.data.frames import ArrayFrames
    from rvos.data.types import Video
    from rvos.infer.predictor import FrameSink, Predictor

    torch.manual_seed(0)
    model = build_model(hf_model_config(folders, vision, text)).eval()
    frames = np.random.default_rng(0).integers(0, 255, size=(5, 45, 61, 3), dtype=np.uint8)
    masks = []

    class Sink(FrameSink):
        def write(self, index, frame, m):
            masks.append(m[0])

    (res,) = Predictor(model, window=3).segment(Video("v", ArrayFrames(frames), 45, 61), ["the red car"], sinks=[Sink()])
    assert len(res.areas) == 5 and len(masks) == 5 and all(m.shape == (45, 61) for m in masks)
