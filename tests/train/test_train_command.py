"""`rvos train` end to end on a tiny config and a tiny Ref-YouTube-VOS-layout dataset, with the real SimRVOS."""
import json
from pathlib import Path

import rvos

import yaml

from fixtures_layouts import write_ytvos
from rvos.cli import main
from rvos.train.checkpoint import load_checkpoint, load_model_from_checkpoint

REPO_CONFIGS = Path(rvos.__file__).parent / "configs"


def test_rvos_train_cli(tmp_path, capsys):
    write_ytvos(tmp_path / "data", "train")
    out = tmp_path / "run"
    rc = main(["train", str(REPO_CONFIGS / "tiny_test.yaml"), f"data.root={tmp_path / 'data'}", "loop.steps=3",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    assert [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert (out / "curves.png").stat().st_size > 1000
    assert yaml.safe_load((out / "config.yaml").read_text())["loop"]["steps"] == 3
    model, cfg = load_model_from_checkpoint(out / "checkpoints" / "last.pt")
    assert cfg.model.vision == "tiny"
    # resume to 4 steps
    rc = main(["train", str(REPO_CONFIGS / "tiny_test.yaml"), f"data.root={tmp_path / 'data'}", "--out", str(out), "--resume"])
    assert rc == 0 and load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4


def test_rvos_train_cli_errors(tmp_path, capsys):
    assert main(["train", str(REPO_CONFIGS / "tiny_test.yaml"), "optim.lrr=1", "--out", str(tmp_path)]) == 2
    assert "optim.lrr" in capsys.readouterr().err
    assert main(["train", str(REPO_CONFIGS / "tiny_test.yaml"), "--out", str(tmp_path)]) == 2
    assert "data.root" in capsys.readouterr().err
    write_ytvos(tmp_path / "data", "train")
    assert main(["train", str(REPO_CONFIGS / "tiny_test.yaml"), f"data.root={tmp_path / 'data'}", "--out",
                 str(tmp_path / "r"), "--resume"]) == 2
    assert "missing checkpoint" in capsys.readouterr().err


def test_example_configs_load():
    from rvos.train.config import load_config

    cfg = load_config(REPO_CONFIGS / "simrvos_synth.yaml")
    assert cfg.data.clip.size == (192, 320) and cfg.loop.feature_cache == "memory" and cfg.method.name == "simrvos"
