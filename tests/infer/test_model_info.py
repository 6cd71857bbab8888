"""Users see what they got: a checkpoint records what it was trained on (dataset, split, size, regime), `rvos
segment` and `rvos eval --checkpoint` print it, and without --checkpoint `rvos segment` names the demo model it
falls back to, says it is a shapes model, and says how to train or pass a real one."""
from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from infer_helpers import make_frames
from rvos.cli import main
from rvos.train.checkpoint import checkpoint_path, load_checkpoint
from rvos.train.config import TrainConfig, from_dict
from rvos.train.loop import Trainer
from rvos.train.provenance import describe, provenance


def tiny_cfg(root, regime="full") -> TrainConfig:
    return from_dict(TrainConfig, {
        "data": {"root": str(root) if root else "", "train_split": "train", "regime": regime,
                 "clip": {"num_frames": 2, "size": [64, 96]}},
        "model": {"vision": "tiny", "vision_pretrained": False, "vision_frozen": False, "text": "tiny",
                  "text_frozen": False, "dim": 16, "num_heads": 2, "fpn_dims": [16, 16, 8], "mask_dim": 8, "dyn_hidden": 8},
        "method": {"name": "simrvos", "params": {"upsample_logits": False}},
        "loop": {"steps": 1, "batch_size": 2, "log_every": 1, "progress": False, "plot": False},
    })


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from rvos.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, SynthConfig(seed=3, train=2, valid=1, test=1, frames=8, height=64, width=96, workers=1))
    return root


@pytest.fixture(scope="module")
def shapes_model(synth, tmp_path_factory):
    """A model trained (1 step) on the synthetic benchmark under the mask_box regime."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    Trainer(tiny_cfg(synth, "mask_box"), out).fit()
    return checkpoint_path(out)


@pytest.fixture(scope="module")
def gif(tmp_path_factory):
    path = tmp_path_factory.mktemp("vid") / "clip.gif"
    ims = [Image.fromarray(f) for f in make_frames()]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def test_checkpoint_records_what_it_was_trained_on(synth, shapes_model):
    from rvos.data.readers import open_dataset

    records = open_dataset(synth, split="train")
    info = load_checkpoint(shapes_model)["trained_on"]
    assert info["dataset"] == str(synth.resolve()) and info["split"] == "train" and info["regime"] == "mask_box"
    assert info["videos"] == 2 and info["video_ids"] == sorted(r.video_id for r in records) and info["frames"] == 16
    assert info["expressions"] == sum(e.positive for r in records for e in r.expressions) > 0
    assert info["absent_expressions"] == sum(not e.positive for r in records for e in r.expressions)
    n_objects = sum(len(r.tracks) for r in records)
    assert 0 < info["mask_targets"] <= n_objects and info["box_targets"] > 0  # mask_box: one mask per object
    assert info["synthetic"] == {"generator": "rvos data synth", "seed": 3, "version": "1.0"}
    line = describe(provenance(load_checkpoint(shapes_model)))
    assert line.startswith(f"{synth.resolve()} (synthetic shapes: rvos data synth, seed 3), split train: 2 videos, ")
    assert "regime mask_box (one mask per object plus boxes)" in line


def test_segment_prints_what_the_model_was_trained_on(shapes_model, gif, synth, tmp_path, capsys):
    assert main(["segment", str(gif), "--text", "the red circle", "--checkpoint", str(shapes_model),
                 "--out", str(tmp_path / "o"), "--no-video"]) == 0
    out = capsys.readouterr().out
    assert f"model: {shapes_model} (method simrvos, single head, vision tiny, text tiny, 1 step)" in out
    assert f"trained on: {synth.resolve()} (synthetic shapes: rvos data synth, seed 3), split train: 2 videos" in out
    assert "no --checkpoint given" not in out and "rvos train CONFIG" not in out


def test_segment_without_checkpoint_names_the_demo_model_and_how_to_get_a_real_one(shapes_model, gif, tmp_path,
                                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RVOS_HOME", raising=False)
    demo = tmp_path / "runs" / "demo" / "checkpoints" / "final.pt"
    demo.parent.mkdir(parents=True)
    shutil.copy(shapes_model, demo)
    assert main(["segment", str(gif), "--text", "the dog", "--out", str(tmp_path / "o"), "--no-video"]) == 0
    out = capsys.readouterr().out
    assert "no --checkpoint given: using the demo model (runs/demo/checkpoints/final.pt)" in out
    assert "(synthetic shapes: rvos data synth, seed 3), split train: 2 videos" in out
    assert "This demo model knows synthetic shapes" in out and "on a real video expect empty or wrong masks" in out
    assert "rvos train CONFIG data.root=DATASET --out runs/NAME" in out and "simrvos_synth" in out
    assert "rvos train objects_davis --out runs/objects_davis" in out
    assert "tiny_test" not in out  # the test-only config is not offered
    assert "--checkpoint runs/NAME/checkpoints/last.pt" in out
    assert out.index("no --checkpoint given") < out.index("segmented ")  # said before the results


def test_default_model_trained_on_other_data_gets_no_shapes_warning(synth, gif, tmp_path, monkeypatch, capsys):
    """A default model trained on records passed from Python (not known to be synthetic) is named, not called
    a shapes model."""
    from rvos.data.readers import open_dataset

    out_dir = tmp_path / "runs" / "demo"
    Trainer(tiny_cfg(None), out_dir, records=open_dataset(synth, split="train")).fit()
    shutil.copy(checkpoint_path(out_dir), out_dir / "checkpoints" / "final.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RVOS_HOME", raising=False)
    assert main(["segment", str(gif), "--text", "the square", "--out", str(tmp_path / "o"), "--no-video"]) == 0
    out = capsys.readouterr().out
    assert "no --checkpoint given: using the demo model" in out
    assert "trained on: records passed in from Python (no data.root), split train: 2 videos" in out
    assert "synthetic shapes" not in out and "knows" not in out and "rvos train CONFIG" in out


def test_no_demo_model_says_how_to_train_a_real_one(gif, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RVOS_HOME", raising=False)
    assert main(["segment", str(gif), "--text", "x"]) == 2
    err = capsys.readouterr().err
    assert "make demo" in err and "synthetic shapes" in err and "rvos train CONFIG data.root=DATASET" in err


def test_older_checkpoint_falls_back_to_its_config(shapes_model, synth, tmp_path):
    ckpt = load_checkpoint(shapes_model)
    del ckpt["trained_on"]
    info = provenance(ckpt)
    assert info["recorded"] is False and info["regime"] == "mask_box" and info["synthetic"]["seed"] == 3
    assert "predates recorded training data, so its size is unknown" in describe(info)


def test_eval_checkpoint_prints_provenance_and_flags_the_training_split(shapes_model, synth, capsys):
    assert main(["eval", "--checkpoint", str(shapes_model), "--dataset", str(synth), "--split", "train",
                 "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"model: {shapes_model}" in out and "trained on: " in out
    assert "note: the model was trained on split 'train' of this dataset (2 of the 2 videos scored were training " \
           "videos): these are not held-out scores" in out
    assert main(["eval", "--checkpoint", str(shapes_model), "--dataset", str(synth), "--split", "test",
                 "--workers", "1"]) == 0
    assert "not held-out" not in capsys.readouterr().out


def test_two_phase_model_and_generated_videos_are_named():
    """The objects method's checkpoint step is its referrer's; phase 1's steps come from its config. Generated
    videos (data.extra_synth) and repeats of the dataset's own videos are said in the size."""
    from rvos.train.provenance import model_line

    ckpt = {"step": 800, "config": {"method": {"name": "objects"}, "loop": {"steps": 1200},
                                    "model": {"head": "objects", "vision": "efficientnet_lite0", "text": "minilm"}}}
    assert model_line(ckpt) == ("method objects, objects head, vision efficientnet_lite0, text minilm, "
                                "1,200 object-decoder + 800 referrer steps")
    info = {"dataset": "/d", "split": "train", "regime": "full", "videos": 336, "extra_synth": 240, "repeat": 2,
            "expressions": 10, "absent_expressions": 0, "frames": 4224, "mask_targets": 5, "box_targets": 0}
    assert describe(info) == ("/d, split train: 336 videos (240 of them generated: data.extra_synth), its own x2 an "
                              "epoch, 10 expressions, 4,224 frames; 5 mask and 0 box targets; regime full (dense "
                              "targets as annotated)")
