"""The Gradio page: upload a video (or pick a sample), type sentences, get the overlay video, a row per
sentence (frames with the object, presence, when) and the masks to download (PNG zip, RLE JSON).

Gradio is an optional extra (`pip install 'rvos[app]'`); `require_gradio` says so when it is missing."""
from __future__ import annotations

import logging
import os
from typing import Sequence

from rvos.app.samples import Sample
from rvos.app.service import HEADERS, DemoService
from rvos.data.frames import VIDEO_EXTS
from rvos.errors import ConfigError, RVOSError

GRADIO_PIN = "gradio==6.31.0"  # the version pyproject's `app` extra pins and the browser test ran against
log = logging.getLogger("rvos.app")

INTRO = """# rvos: referring video object segmentation
Upload a video ({accepted}) or pick a sample, type one or more sentences (one a line) that each refer to
an object, and press **Segment**. Long videos are processed a window of frames at a time."""


def require_gradio():
    """The gradio module, or a ConfigError that says how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine
    try:
        import gradio
    except ImportError as e:
        raise ConfigError(f"the web demo needs gradio, which is not installed ({e}): "
                          f"pip install 'rvos[app]' (or pip install '{GRADIO_PIN}')") from None
    return gradio


def build_app(service: DemoService, samples: Sequence[Sample] = (), title: str = "rvos demo"):
    """The gr.Blocks page around `service`. Launch it with `launch_app` (or `.launch()` yourself, passing
    `allowed_paths=[str(service.workdir)]`)."""
    gr = require_gradio()

    def segment(video, text, progress=gr.Progress()):
        def report(done: int, total: int, what: str) -> None:
            progress((done, total), desc=what, unit="frames")

        try:
            out = service.run(video, text, progress=report)
        except RVOSError as e:  # the user's to fix: say what, in the status line and a notice; no traceback
            gr.Warning(str(e), title="Cannot segment this")
            return None, [], None, f"**Cannot segment this:** {e}"
        except Exception as e:  # a bug: the log has the traceback, the page a sentence
            log.exception("segmenting %s failed", video)
            raise gr.Error(f"processing failed ({type(e).__name__}: {e}); the server log has the details",
                           print_exception=False) from None
        return str(out.overlay), out.rows, [str(out.zip), str(out.json)], out.message

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(INTRO.format(accepted=", ".join(VIDEO_EXTS)))
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="video", sources=["upload"], elem_id="video-input")
                text = gr.Textbox(label="sentences, one a line", lines=3, placeholder="the red person\nthe car on the left",
                                  elem_id="sentences")
                button = gr.Button("Segment", variant="primary", elem_id="segment")
                if samples:
                    gr.Examples([[str(s.path), s.text] for s in samples], inputs=[video, text], label="samples",
                                elem_id="samples")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                overlay = gr.Video(label="overlay", interactive=False, elem_id="overlay")
                table = gr.Dataframe(headers=HEADERS, label="per sentence", interactive=False, wrap=True,
                                     column_widths=["34%", "14%", "22%", "14%", "16%"], elem_id="per-sentence")
                files = gr.File(label="masks: PNG zip and RLE JSON", file_count="multiple", interactive=False,
                                elem_id="downloads")
        button.click(segment, inputs=[video, text], outputs=[overlay, table, files, status])
    return demo


def launch_app(demo, service: DemoService, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the page and return its local URL: after the server stops (Ctrl-C) with block=True, at once with
    block=False (the server runs in a thread; `demo.close()` stops it)."""
    demo.queue(default_concurrency_limit=1)  # one request at a time holds the model
    _, url, _ = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, ssr_mode=False,
                            quiet=True, allowed_paths=[str(service.workdir)], footer_links=[])
    if block:
        demo.block_thread()
    return url
