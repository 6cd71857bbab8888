"""`rvos demo`: the end-to-end run on the built-in synthetic benchmark.

1. generate the synthetic benchmark (skipped when it is already there),
2. train the object-centric model on its train split plus 240 short generated videos (configs/objects_demo.yaml:
   frozen EfficientNet-Lite0 + MiniLM, features cached once; phase 1 the object decoder, phase 2 the referrer; a
   killed demo resumes where its last checkpoint left it),
3. evaluate on the test split (all-frames protocol on the positive expressions; R2 protocol with the absent ones),
4. segment one test video, written as an MP4, with two sentences (palette PNGs, overlay MP4s, JSON),
5. write a short report (REPORT.md) and print where everything is.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

DEMO_CONFIG = "objects_demo"  # rvos/configs/objects_demo.yaml (the demo of earlier versions: --config simrvos_synth)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic benchmark and of training")
    p.add_argument("--config", default=DEMO_CONFIG, help="training config (a packaged name or a YAML path)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides, e.g. loop.steps=500")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: a tiny dataset and tiny random-init encoders (a minute; numbers meaningless)")


def _synth_config(args):
    from rvos.data.synth import SynthConfig

    if args.quick:
        return SynthConfig(seed=args.seed, train=4, valid=2, test=2, frames=8, height=96, width=160)
    return SynthConfig(seed=args.seed)


def _train_config(args, data_root: Path):
    from rvos.train.config import load_config, resolve_config_path

    overrides = [f"data.root={data_root}", f"loop.seed={args.seed}"]
    path = resolve_config_path(args.config)
    if args.quick:
        overrides += ["model.vision=tiny", "model.text=tiny", "model.vision_pretrained=false", "loop.steps=20",
                      "loop.checkpoint_every=10", "loop.feature_cache=off", "data.clip.size=[96,160]",
                      "data.extra_synth=0"]
        if load_config(path, list(args.overrides)).method.name == "objects":
            overrides += ["method.params.refer_steps=20"]
    return load_config(path, overrides + list(args.overrides))


def run(args: argparse.Namespace) -> int:
    from rvos.data.readers import open_dataset
    from rvos.data.synth import generate
    from rvos.infer.model_eval import evaluate_model_protocols
    from rvos.train.checkpoint import checkpoint_path
    from rvos.train.loop import train

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    # 1. data
    t0 = time.perf_counter()
    data_root = out / "data"
    if not (data_root / "synth.json").is_file():
        generate(data_root, _synth_config(args), overwrite=data_root.exists())
    times["data"] = time.perf_counter() - t0
    print(f"[1/5] synthetic benchmark: {data_root} ({times['data']:.0f} s)")

    # 2. train (resume a killed demo; skip when the final checkpoint exists)
    cfg = _train_config(args, data_root)
    final = out / "checkpoints" / "final.pt"
    t0 = time.perf_counter()
    if final.is_file():
        print(f"[2/5] training: already done ({final}); delete it to train again")
    else:
        resume = checkpoint_path(out).is_file() or checkpoint_path(out / "objects").is_file()
        train(cfg, out, resume=resume)  # a killed demo continues (both phases of the objects method)
        if int(os.environ.get("RANK", "0")) == 0:
            shutil.copyfile(checkpoint_path(out), final.with_suffix(".tmp"))
            final.with_suffix(".tmp").replace(final)
    times["train"] = time.perf_counter() - t0
    print(f"[2/5] trained model: {final} ({times['train']:.0f} s)")

    from rvos.train.checkpoint import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(final)

    # 3. evaluate on the test split
    t0 = time.perf_counter()
    test = open_dataset(data_root, split="test")
    scored = evaluate_model_protocols(model, test, {"all-frames": True, "r2": False}, out=out / "predictions" / "test")
    jf, r2 = scored["all-frames"], scored["r2"]
    jf.write(out / "eval" / "all-frames")
    r2.write(out / "eval" / "r2")
    times["eval"] = time.perf_counter() - t0
    print(f"[3/5] test split: " + ", ".join(f"{k} {v:.3f}" for k, v in jf.summary.items() if isinstance(v, float))
          + f" ({times['eval']:.0f} s)")

    # 4. segment one test video, as a user would: an MP4 and two sentences
    t0 = time.perf_counter()
    from rvos.infer.segment import segment_video, write_video_mp4

    record = max(test, key=lambda r: (len(r.tracks), r.video_id))
    sentences = _two_sentences(record)
    video_path = write_video_mp4(record.video, out / "segment" / f"{record.video_id}.mp4")
    from rvos.data.frames import open_video

    results = segment_video(model, open_video(video_path), sentences, out / "segment" / record.video_id)
    times["segment"] = time.perf_counter() - t0
    print(f"[4/5] segmented {video_path} with {len(sentences)} sentences ({times['segment']:.0f} s)")

    # 5. report
    report = _report(out, cfg, jf, r2, record, results, times)
    print(f"[5/5] report: {report}")
    print(f"\noutputs in {out}/: REPORT.md, checkpoints/final.pt, curves.png, eval/, predictions/, segment/")
    return 0


def _two_sentences(record) -> list[str]:
    """A positive sentence about one object and one about another (or the first two positives)."""
    chosen, objs = [], set()
    for e in record.expressions:
        if e.positive and len(e.obj_ids) == 1 and e.obj_ids[0] not in objs and not e.spans:
            chosen.append(e.text)
            objs.add(e.obj_ids[0])
        if len(chosen) == 2:
            return chosen
    rest = [e.text for e in record.expressions if e.positive and e.text not in chosen]
    return (chosen + rest)[:2]


def j_and_f_by_kind(result, data_root: Path, split: str = "test") -> dict[str, tuple[int, float]]:
    """Mean J&F of the per-expression rows by the synthetic benchmark's expression kind -> (count, J&F)."""
    import json

    import numpy as np

    meta = json.loads((data_root / "meta_expressions" / split / "meta_expressions.json").read_text())["videos"]
    by_kind: dict[str, list[float]] = {}
    for row in result.tables.get("per-expression", []):
        kind = meta[row["Video"]]["expressions"][str(row["Expression"])].get("kind", "?")
        by_kind.setdefault(kind, []).append(row["J&F"])
    return {k: (len(v), float(np.mean(v))) for k, v in sorted(by_kind.items())}


def _referrer_steps(cfg) -> str:
    """The objects method's phase 2, for the report's model line ('' for one-phase methods)."""
    if cfg.method.name != "objects":
        return ""
    from rvos.methods.objects import ObjectsConfig
    from rvos.train.config import from_dict

    params = from_dict(ObjectsConfig, dict(cfg.method.params), "method.params")
    return f", then {params.refer_steps} referrer steps of {params.refer_batch} videos"


def _report(out: Path, cfg, jf, r2, record, results, times) -> Path:
    from rvos.train.config import to_dict

    fmt = lambda d: ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())  # noqa: E731
    lines = [
        "# rvos demo report", "",
        f"- data: `{out / 'data'}` (the synthetic benchmark, `rvos data synth`)",
        f"- model: {cfg.model.vision} + {cfg.model.text}, head {cfg.model.head}; method {cfg.method.name}; "
        f"regime {cfg.data.regime}; {cfg.loop.steps} steps of {cfg.loop.batch_size} clips of {cfg.data.clip.num_frames} frames"
        + _referrer_steps(cfg)
        + (f"; training videos: the benchmark's + {cfg.data.extra_synth} generated" if cfg.data.extra_synth else ""),
        f"- time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()), "",
        "## Test split", "",
        f"- all-frames protocol, positive expressions: {fmt(jf.summary)}",
        f"- R2 protocol (absent-object expressions too): {fmt(r2.summary)}",
        f"- tables: `{out / 'eval'}`; predicted PNGs: `{out / 'predictions' / 'test'}`", "",
        "| expression kind | expressions | J&F |", "|---|---|---|",
        *(f"| {k} | {n} | {v:.3f} |" for k, (n, v) in j_and_f_by_kind(jf, out / "data").items()), "",
        f"## Segmenting `{record.video_id}`", "",
    ]
    for r in results:
        seen = sum(a > 0 for a in r.areas)
        lines.append(f"- \"{r.sentence}\": object in {seen}/{len(r.areas)} frames; outputs {', '.join(f'`{p}`' for p in r.paths.values())}")
    lines += ["", "## Config", "", "```yaml"]
    import yaml

    lines += [yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip(), "```", ""]
    path = out / "REPORT.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
