"""`rvos` command line. Each subcommand lives in the module that owns its work, as `add_args(parser)` and
`run(args) -> int`; this file only wires them. Modules are imported when their command is parsed, so
`rvos --help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import sys

from rvos.errors import RVOSError

# (command path, module holding add_args/run, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("data", "synth"), "rvos.data.synth.command", "generate the synthetic RVOS benchmark"),
    (("data", "stats"), "rvos.data.stats", "counts and annotation cost of a dataset under a supervision regime"),
    (("eval",), "rvos.evaluate.command", "score predictions (PNG folder, RLE JSON or a checkpoint) with a benchmark protocol"),
    (("train",), "rvos.train.command", "train a model from a YAML config with key=value overrides"),
    (("segment",), "rvos.infer.command", "segment the object a sentence refers to in any video"),
    (("app",), "rvos.app.command", "the web demo: upload a video, type sentences, see the overlay and download masks"),
    (("demo",), "rvos.demo", "the end-to-end run on the synthetic benchmark: generate, train, evaluate, segment"),
    (("augment",), "rvos.augment.command", "WSRVOS expression augmentation: positives, hard negatives, filter -> JSONL"),
]


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvos", description="Referring video object segmentation toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): sub}
    for path, module, help_ in COMMANDS:
        for depth in range(1, len(path)):
            key = path[:depth]
            if key not in groups:
                p = groups[key[:-1]].add_parser(key[-1], help=f"{key[-1]} commands")
                groups[key] = p.add_subparsers(dest="_".join(key) + "_command", required=True, metavar="COMMAND")
        p = groups[path[:-1]].add_parser(path[-1], help=help_, description=help_)
        p.set_defaults(_module=module)
        # Import only the module of the command being run (its arguments are needed); others stay lazy.
        if _selected(path, argv):
            importlib.import_module(module).add_args(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _selected(path: tuple[str, ...], argv: list[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    return tuple(words[: len(path)]) == path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except RVOSError as e:
        print(f"rvos: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rvos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
