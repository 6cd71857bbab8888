"""The web page in a real browser: headless Chromium (Debian package) driven by Playwright, serving a tiny
random-weight model. Skips, saying why, where gradio, playwright or Chromium is missing; `.ci/run` installs
Chromium so that CI runs it (RVOS_CHROMIUM=PATH drives another binary). RVOS_APP_SCREENSHOT=PATH keeps the
screenshot of the result there."""
from __future__ import annotations

import io
import os
import shutil
import threading
import zipfile

import pytest

from rvos.app.browser import fetch_json, free_port, missing_browser, open_page, submit

_why = missing_browser()  # first: it is cheap, importing gradio is not
if _why:
    pytest.skip(f"browser test skipped: {_why}", allow_module_level=True)
try:
    import gradio  # noqa: F401
except ImportError:
    pytest.skip("browser test skipped: gradio is not installed (pip install 'rvos[app]')", allow_module_level=True)

# gradio 6.31's queue calls pandas options that pandas 3 deprecates: not ours to fix
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
RELEASE_S = 120  # bounds on waits that end as soon as the page answers
EBML = b"\x1a\x45\xdf\xa3"  # the first bytes of a WebM


@pytest.fixture(scope="module")
def served(tiny_checkpoint, tmp_path_factory):
    from rvos.app.command import build_from_args
    from rvos.app.page import launch_app
    from rvos.cli import build_parser

    port = free_port()
    argv = ["app", "--checkpoint", str(tiny_checkpoint), "--port", str(port), "--samples", "1",
            "--workdir", str(tmp_path_factory.mktemp("app"))]
    demo, service = build_from_args(build_parser(argv).parse_args(argv))
    yield launch_app(demo, service, port=port, block=False), service
    demo.close()


@pytest.fixture
def url(served):
    return served[0]


@pytest.fixture(scope="module")
def browser():
    from rvos.app.browser import chromium

    with chromium() as b:
        yield b


def test_upload_a_video_and_get_overlay_and_json(url, browser, small_webm, tmp_path):
    page = open_page(browser, url)
    result = submit(page, video=small_webm, sentences="the bright square\nthe dark background")
    assert "Segmented 6 frames with 2 sentences" in result.status
    assert "the bright square" in result.table and "the dark background" in result.table
    assert set(result.downloads) == {"masks.zip", "masks.json"}
    doc = fetch_json(page, result.downloads["masks.json"])
    assert [s["sentence"] for s in doc["sentences"]] == ["the bright square", "the dark background"]
    assert (doc["height"], doc["width"]) == (48, 64)
    assert all(len(s["frames"]) == 6 and all("rle" in f for f in s["frames"]) for s in doc["sentences"])
    assert result.overlay and page.request.get(result.overlay).body()[:4] == EBML
    with zipfile.ZipFile(io.BytesIO(page.request.get(result.downloads["masks.zip"]).body())) as zf:
        assert sorted(zf.namelist()) == sorted(f"masks/{d}/{i:05d}.png" for d in ("the-bright-square",
                                               "the-dark-background") for i in range(6))
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RVOS_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["RVOS_APP_SCREENSHOT"])


def test_pick_a_sample(url, browser):
    page = open_page(browser, url)
    result = submit(page, sample=0)
    assert "Segmented 24 frames with 2 sentences" in result.status
    assert "a red person" in result.table  # the sample's own sentences came with it


def _no_traceback(page):
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "File \"" not in body and "Error:" not in body


def test_bad_input_shows_a_message_not_a_traceback(url, browser, small_webm, tmp_path):
    page = open_page(browser, url)
    result = submit(page, video=small_webm, sentences="   ", expect_result=False)
    assert "type at least one referring sentence" in result.status
    _no_traceback(page)
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is not a video")
    page = open_page(browser, url)
    result = submit(page, video=fake, sentences="the dog", expect_result=False)
    assert "'holiday.mp4' cannot be read as a video" in result.status
    _no_traceback(page)
    page = open_page(browser, url)  # Segment with nothing uploaded
    result = submit(page, sentences="the dog", expect_result=False)
    assert "upload a video first" in result.status
    _no_traceback(page)


def test_a_file_that_is_not_a_video_is_refused_on_upload(url, browser, tmp_path):
    """Gradio's video input refuses a text file itself (a notice naming it); Segment then asks for a video."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    page = open_page(browser, url)
    page.locator("#video-input input[type=file]").set_input_files(str(notes))
    page.get_by_text("Invalid file type: notes.txt").wait_for(timeout=RELEASE_S * 1000)
    assert page.locator("#video-input video").count() == 0
    result = submit(page, sentences="the dog", expect_result=False)
    assert "upload a video first" in result.status
    _no_traceback(page)


def test_a_bug_shows_a_sentence_not_a_traceback(served, browser, small_webm, monkeypatch):
    """An unexpected exception (a bug, not the user's input): the page says so in one line; the log has the rest."""
    url, service = served

    def broken(path, text, progress=None):
        raise RuntimeError("the model went away")

    monkeypatch.setattr(service, "run", broken)
    page = open_page(browser, url)
    page.locator("#video-input input[type=file]").set_input_files(str(small_webm))
    page.wait_for_selector("#video-input video[src*='gradio_api/file=']")
    page.locator("#sentences textarea").fill("the bright square")
    page.click("#segment")
    notice = page.get_by_text("processing failed (RuntimeError: the model went away)")
    notice.first.wait_for(timeout=RELEASE_S * 1000)
    assert "the server log has the details" in notice.first.inner_text()
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "File \"" not in body


def test_progress_bar_runs_while_the_video_is_processed(served, browser, small_webm, monkeypatch):
    """The request is held at frame 3 of 6 until the page has shown the progress; no timing is involved."""
    url, service = served
    held, release = threading.Event(), threading.Event()
    run = service.run

    def held_run(path, text, progress=None):
        def report(done, total, what):
            progress(done, total, what)
            if done == 3:
                held.set()
                release.wait(timeout=RELEASE_S)
        return run(path, text, progress=report)

    monkeypatch.setattr(service, "run", held_run)
    page = open_page(browser, url)
    page.locator("#video-input input[type=file]").set_input_files(str(small_webm))
    page.wait_for_selector("#video-input video[src*='gradio_api/file=']")
    page.locator("#sentences textarea").fill("the bright square")
    page.click("#segment")
    try:
        assert held.wait(timeout=RELEASE_S)
        bar = page.locator("#overlay :text('segmenting')")
        bar.first.wait_for(timeout=RELEASE_S * 1000)
        shown = page.locator("#overlay").inner_text()
    finally:
        release.set()
    assert "3/6" in shown and "frames" in shown
    page.wait_for_selector("#downloads a[href$='masks.json']", timeout=RELEASE_S * 1000)
