"""`rvos app [--checkpoint C] [--port P]`: the web demo. A Gradio page where a user uploads a video (or picks
a sample), types sentences and gets the overlay video, each sentence's presence and the masks to download."""
from __future__ import annotations

import argparse
from pathlib import Path

from rvos.infer.command import DEFAULT_CHECKPOINT


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help=f"model checkpoint (default {DEFAULT_CHECKPOINT})")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--window", type=int, default=8, help="frames decoded together (memory stays flat)")
    p.add_argument("--size", type=int, default=None, help="resize the shorter side to this for the model")
    p.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold")
    p.add_argument("--no-gate", action="store_true", help="keep masks even when the presence head says absent")
    p.add_argument("--max-frames", type=int, default=None, help="refuse videos longer than this (default: any)")
    p.add_argument("--samples", type=int, default=2, help="synthetic sample videos offered on the page (0: none)")
    p.add_argument("--workdir", type=Path, default=None, help="folder for samples and results (default: a temp folder)")


def build_from_args(args: argparse.Namespace):
    """(page, service) as `rvos app` would serve them: gradio checked first, then the model loaded."""
    from rvos.app.page import build_app, require_gradio
    from rvos.app.samples import make_samples
    from rvos.app.service import DemoService
    from rvos.errors import ConfigError
    from rvos.infer.command import default_checkpoint, gate_for_config, load_model

    require_gradio()  # before the model loads: the missing extra is the first thing to hear about
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.samples < 0:
        raise ConfigError(f"--samples must be >= 0, got {args.samples}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device} asked for but CUDA is not available; use --device cpu")
    checkpoint = args.checkpoint or default_checkpoint()
    model, cfg = load_model(checkpoint, args.device)
    gate = False if args.no_gate else gate_for_config(cfg)
    service = DemoService(model, device=args.device, window=args.window, size=args.size, threshold=args.threshold,
                          gate=gate, max_frames=args.max_frames, workdir=args.workdir)
    samples = make_samples(service.workdir / "samples", count=args.samples) if args.samples else []
    return build_app(service, samples, title=f"rvos demo: {Path(checkpoint).name}"), service


def run(args: argparse.Namespace) -> int:
    from rvos.app.page import launch_app

    demo, service = build_from_args(args)
    print(f"rvos app: model {args.checkpoint or 'of `make demo`'}; results in {service.workdir}")
    url = launch_app(demo, service, host=args.host, port=args.port, block=False)
    print(f"rvos app: serving on {url} (Ctrl-C stops)", flush=True)
    demo.block_thread()  # returns on Ctrl-C, after closing the server
    return 0
