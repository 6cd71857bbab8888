"""`rvos app`: the missing optional extra and bad options give clear errors before anything is served."""
from __future__ import annotations

import sys

from rvos.cli import main


def test_missing_gradio_says_how_to_install(monkeypatch, tiny_checkpoint, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["app", "--checkpoint", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "the web demo needs gradio" in err and "pip install 'rvos[app]'" in err


def test_bad_options(tmp_path, tiny_checkpoint, capsys):
    import pytest

    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'rvos[app]')")
    assert main(["app", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "missing checkpoint" in capsys.readouterr().err
    assert main(["app", "--checkpoint", str(tiny_checkpoint), "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err
    assert main(["app", "--checkpoint", str(tiny_checkpoint), "--max-frames", "0", "--samples", "0",
                 "--workdir", str(tmp_path / "w")]) == 2
    assert "max_frames must be >= 1" in capsys.readouterr().err
