"""rvos.app: the web demo (Gradio, the optional `rvos[app]` extra). `rvos app` serves it; `DemoService` is the
processing behind the page and needs no gradio."""
from rvos.app.service import DemoOutput, DemoService, parse_sentences

__all__ = ["DemoOutput", "DemoService", "parse_sentences"]
