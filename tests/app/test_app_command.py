"""`rvos app`: the missing optional extra and bad options give clear errors before anything is served; the
browser test's check for Chromium says what is missing."""
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

    assert main(["app", "--checkpoint", str(tiny_checkpoint), "--window", "0", "--samples", "0",
                 "--workdir", str(tmp_path / "w")]) == 2
    assert "window must be >= 1" in capsys.readouterr().err


def test_options_reach_the_service(tmp_path, tiny_checkpoint):
    import pytest

    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'rvos[app]')")
    from rvos.app.command import build_from_args
    from rvos.cli import build_parser

    argv = ["app", "--checkpoint", str(tiny_checkpoint), "--window", "3", "--max-frames", "50", "--threshold",
            "0.7", "--samples", "0", "--workdir", str(tmp_path / "w")]
    demo, service = build_from_args(build_parser(argv).parse_args(argv))
    assert (service.predictor.window, service.max_frames, service.predictor.threshold) == (3, 50, 0.7)
    assert service.workdir == tmp_path / "w"


def test_browser_check_says_what_is_missing(monkeypatch, tmp_path):
    from rvos.app.browser import missing_browser

    monkeypatch.setitem(sys.modules, "playwright", None)
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    assert "playwright is not installed" in missing_browser()
    monkeypatch.undo()
    import pytest

    pytest.importorskip("playwright", reason="playwright is not installed (pip install 'rvos[test]')")
    monkeypatch.setenv("RVOS_CHROMIUM", str(tmp_path / "no-chromium"))
    reason = missing_browser()
    assert f"headless Chromium not found at {tmp_path / 'no-chromium'}" in reason
    assert "apt-get install -y chromium" in reason
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("RVOS_CHROMIUM", str(fake))
    assert "not found" in missing_browser()  # there but not executable
    fake.chmod(0o755)
    assert missing_browser() is None


def test_browser_test_skips_with_the_reason_without_chromium(tmp_path):
    """The real browser test module, run where there is no Chromium: skipped, and the reason is printed."""
    import os
    import subprocess
    from pathlib import Path

    import pytest

    pytest.importorskip("playwright", reason="playwright is not installed (pip install 'rvos[test]')")
    test = Path(__file__).with_name("test_app_browser.py")
    env = {**os.environ, "RVOS_CHROMIUM": str(tmp_path / "no-chromium")}
    run = subprocess.run([sys.executable, "-m", "pytest", str(test), "-q", "-rs", "-p", "no:cacheprovider"],
                         env=env, capture_output=True, text=True, timeout=300, cwd=test.parents[2])
    assert run.returncode == 5, run.stdout + run.stderr  # 5: nothing ran (the whole module skipped), no error
    assert "skipped" in run.stdout and "passed" not in run.stdout
    assert f"browser test skipped: headless Chromium not found at {tmp_path / 'no-chromium'}" in run.stdout
