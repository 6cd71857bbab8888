"""Drive the web page in a real browser: headless Chromium from the Debian packages (`apt-get install -y
chromium`), through Playwright (`pip install playwright`; never `playwright install`: the system browser is
used; RVOS_CHROMIUM=PATH points at another Chromium binary). The browser test uses this, and so does the
screenshot in the README:

    python -m rvos.app.browser --checkpoint runs/demo/checkpoints/final.pt --sample 0 --out docs/app.png
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; RVOS_CHROMIUM overrides it
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
RESULT_TIMEOUT_MS = 300_000  # a generous bound for a slow CI machine; the wait ends as soon as the result is in


def chromium_path() -> Path:
    """The Chromium binary to drive: $RVOS_CHROMIUM when set, else Debian's /usr/bin/chromium."""
    return Path(os.environ.get("RVOS_CHROMIUM") or CHROMIUM)


def missing_browser() -> Optional[str]:
    """Why the browser cannot run here (None when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'rvos[test]' or pip install playwright)"
    path = chromium_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        return (f"headless Chromium not found at {path} (apt-get install -y chromium, which .ci/run does, "
                "or set RVOS_CHROMIUM to a Chromium binary)")
    return None


@contextlib.contextmanager
def chromium() -> Iterator:
    """A Playwright Browser on the system Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PageResult:
    status: str  # the status line under the overlay
    table: str  # the per-sentence table as text
    downloads: dict[str, str]  # file name -> URL
    overlay: Optional[str]  # URL of the overlay video, None when there is none


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("#segment")
    return page


def submit(page, video: Optional[Path | str] = None, sentences: Optional[str] = None, sample: Optional[int] = None,
           expect_result: bool = True) -> PageResult:
    """Upload `video` (or click sample row `sample`), type `sentences` (when given), press Segment and wait for
    the result (or, with expect_result=False, for the status line to say why there is none)."""
    uploaded = "#video-input video[src*='gradio_api/file=']"  # the file is on the server, not only in the page
    if sample is not None:
        page.locator("#samples tbody tr").nth(sample).click()
        page.wait_for_selector(uploaded, timeout=RESULT_TIMEOUT_MS)
    if video is not None:
        page.locator("#video-input input[type=file]").set_input_files(str(video))
        page.wait_for_selector(uploaded, timeout=RESULT_TIMEOUT_MS)
    if sentences is not None:
        page.locator("#sentences textarea").fill(sentences)
    page.click("#segment")
    done, refused = "#downloads a[href$='masks.json']", "#status :text('Cannot segment this')"
    page.wait_for_selector(f"{done}, {refused}", timeout=RESULT_TIMEOUT_MS)
    status = page.locator("#status").inner_text()
    if expect_result:
        if page.locator(refused).count():
            raise AssertionError(f"the page refused the request: {status}")
        page.wait_for_function("document.querySelector('#overlay video') && "
                               "document.querySelector('#overlay video').readyState >= 1", timeout=RESULT_TIMEOUT_MS)
    elif not page.locator(refused).count():
        raise AssertionError(f"the page segmented a request it should have refused: {status}")
    links = page.locator("#downloads a")
    downloads = {}
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        downloads[href.rsplit("/", 1)[-1]] = href
    video_el = page.locator("#overlay video")
    overlay = video_el.first.get_attribute("src") if video_el.count() else None
    return PageResult(status, page.locator("#per-sentence").inner_text(), downloads, overlay)


def fetch_json(page, url: str):
    return json.loads(page.request.get(url).body())


def main(argv: Optional[list[str]] = None) -> int:
    """Serve the demo with a checkpoint, segment a sample (or a video) in Chromium, save a screenshot."""
    from rvos.app.command import build_from_args
    from rvos.app.page import launch_app
    from rvos.cli import build_parser

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="screenshot PNG")
    ap.add_argument("--sample", type=int, default=0, help="sample row to segment (when no --video)")
    ap.add_argument("--video", type=Path, default=None)
    ap.add_argument("--text", default=None, help="sentences, one a line (default: the sample's)")
    args = ap.parse_args(argv)
    reason = missing_browser()
    if reason:
        raise SystemExit(f"cannot drive a browser: {reason}")
    port = free_port()
    app_argv = ["app", "--checkpoint", str(args.checkpoint), "--port", str(port)]
    demo, service = build_from_args(build_parser(app_argv).parse_args(app_argv))
    url = launch_app(demo, service, port=port, block=False)
    try:
        with chromium() as browser:
            page = open_page(browser, url)
            result = submit(page, video=args.video, sentences=args.text,
                            sample=None if args.video else args.sample)
            page.wait_for_timeout(1000)  # let the overlay's first frame paint before the picture is taken
            args.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.out.with_name(f".{args.out.stem}.partial.png")
            page.screenshot(path=str(tmp), full_page=True)
            shutil.move(str(tmp), str(args.out))
    finally:
        demo.close()
    print(result.status)
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
