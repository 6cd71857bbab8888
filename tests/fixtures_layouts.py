"""Write tiny datasets (24x32 frames, 3-4 frames a video) in each exact on-disk layout the readers accept.

Masks are axis-aligned rectangles so tests can state their expectations by hand: `rect(h, w, y0, y1, x0, x1)`.
Every writer returns the ground truth it wrote (object id -> per-frame bool masks, None where no PNG/annotation)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32
DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128] + [0] * (768 - 15)


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def frames_array(n: int, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """uint8 [n, h, w, 3]: smooth colour gradients (survive JPEG/MP4 compression roughly), distinct per frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        out[t, ..., 0] = (xx * 255 // max(w - 1, 1) + 40 * t + seed) % 256
        out[t, ..., 1] = yy * 255 // max(h - 1, 1)
        out[t, ..., 2] = 60 * t % 256
    return out


def write_frames(folder: Path, frames: np.ndarray, names: list[str], ext: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{n}{ext}" for n in names]
    for p, f in zip(paths, frames):
        Image.fromarray(f).save(p, quality=95) if ext == ".jpg" else Image.fromarray(f).save(p)
    return paths


def write_index_png(path: Path, index: np.ndarray) -> None:
    """Palette PNG whose pixel values are object ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(index.astype(np.uint8), mode="P")
    im.putpalette(DAVIS_PALETTE)
    im.save(path)


def write_mp4(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def write_gif(path: Path, frames: np.ndarray, duration_ms: int = 100) -> Path:
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=duration_ms, loop=0)
    return path


def ytvos_masks() -> dict[int, list[np.ndarray]]:
    """Video 'vid_a' (4 frames): object 1 a box moving right, object 2 a fixed box (absent in frame 3)."""
    one = [rect(H, W, 2, 10, 2 + 4 * t, 10 + 4 * t) for t in range(4)]
    two = [rect(H, W, 14, 22, 20, 30) for _ in range(3)] + [np.zeros((H, W), bool)]
    return {1: one, 2: two}


def write_ytvos(root: Path, split: str = "train", annotations: bool = True) -> dict:
    """Two videos. vid_a: objects 1 and 2, PNG missing for frame '00010'; expressions: "0" -> "1", "1" -> ["1","2"]
    with spans, "2" -> [] (negative) with aug_pos/hard_neg; fps 12. vid_b: 3 frames, object 1 everywhere."""
    names_a, names_b = ["00000", "00005", "00010", "00015"], ["00000", "00001", "00002"]
    masks = ytvos_masks()
    write_frames(root / split / "JPEGImages" / "vid_a", frames_array(4), names_a)
    write_frames(root / split / "JPEGImages" / "vid_b", frames_array(3, seed=7), names_b)
    if annotations:
        for t, n in enumerate(names_a):
            if n != "00010":
                write_index_png(root / split / "Annotations" / "vid_a" / f"{n}.png", masks[1][t] * 1 + masks[2][t] * 2)
        for n in names_b:
            write_index_png(root / split / "Annotations" / "vid_b" / f"{n}.png", rect(H, W, 5, 15, 5, 15).astype(np.uint8))
    meta = {"videos": {
        "vid_a": {"fps": 12, "frames": names_a, "expressions": {
            "0": {"exp": "the red box moving right", "obj_id": "1"},
            "1": {"exp": "both boxes", "obj_id": ["1", "2"], "spans": [[0, 2], [3, 4]]},
            "2": {"exp": "a flying cat", "obj_id": [], "aug_pos": ["a cat that flies"], "hard_neg": ["a flying dog"]},
        }},
        "vid_b": {"frames": names_b, "expressions": {"0": {"exp": "the square", "obj_id": "1"}}},
    }}
    (root / "meta_expressions" / split).mkdir(parents=True, exist_ok=True)
    (root / "meta_expressions" / split / "meta_expressions.json").write_text(json.dumps(meta))
    cats = {"videos": {"vid_a": {"objects": {"1": {"category": "box", "frames": names_a}, "2": {"category": "crate", "frames": names_a[:3]}}}}}
    (root / split / "meta.json").write_text(json.dumps(cats))
    return {"masks": masks, "names": names_a}


def write_davis(root: Path, masks: str = "palette", expressions: str = "json") -> dict:
    """DAVIS-2017 folder under root/DAVIS with two val sequences ('seq1': objects 1, 2; 'seq2': object 1) and one
    train sequence. masks: "palette" (index PNGs) or "binary2016" (0/255 'L' PNGs, object 1 only).
    expressions: "json" (meta_expressions/valid) or "khoreva" (Davis17_annot{1,2}[_full_video].txt, latin-1)."""
    d = root / "DAVIS"
    gt = {"seq1": {1: [rect(H, W, 0, 8, 0, 8 + t) for t in range(3)], 2: [rect(H, W, 10, 20, 16, 30) for _ in range(3)]},
          "seq2": {1: [rect(H, W, 4 + t, 12 + t, 4, 12) for t in range(3)]}, "seqt": {1: [rect(H, W, 1, 3, 1, 3)] * 3}}
    if masks == "binary2016":
        gt["seq1"].pop(2)
    for seq, objs in gt.items():
        write_frames(d / "JPEGImages" / "480p" / seq, frames_array(3), [f"{t:05d}" for t in range(3)])
        for t in range(3):
            index = sum(m[t].astype(np.uint8) * o for o, m in objs.items())
            path = d / "Annotations" / "480p" / seq / f"{t:05d}.png"
            if masks == "palette":
                write_index_png(path, index)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((index > 0).astype(np.uint8) * 255, mode="L").save(path)
    (d / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (d / "ImageSets" / "2017" / "val.txt").write_text("seq1\nseq2\n")
    (d / "ImageSets" / "2017" / "train.txt").write_text("seqt\n")
    sentences = {"seq1": {1: "a small caf\u00e9 table", 2: "the blue box"}, "seq2": {1: "a box sliding down"}, "seqt": {1: "tiny"}}
    if masks == "binary2016":
        sentences["seq1"].pop(2)
    if expressions == "json":
        videos = {s: {"frames": [f"{t:05d}" for t in range(3)], "expressions": {
            str(i): {"exp": e, "obj_id": str(o)} for i, (o, e) in enumerate(objs.items())}} for s, objs in sentences.items()}
        (root / "meta_expressions" / "valid").mkdir(parents=True, exist_ok=True)
        (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    else:
        for k, suffix in (("annot1", ""), ("annot2", " (second annotator)")):
            for full in ("", "_full_video"):
                lines = [f'{s} {o} "{e}{suffix}{full}"' for s, objs in sentences.items() for o, e in objs.items()]
                (root / f"Davis17_{k}{full}.txt").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return gt


def write_mevis(root: Path, split: str = "train") -> dict:
    """One video 'v1' (3 frames), objects 0 (anno 10) and 1 (anno 11); object 1 absent (null) in frame 1.
    Expressions: "0" -> [0], "1" -> [0, 1], "2" -> [] (no target)."""
    from pycocotools import mask as mask_utils

    gt = {0: [rect(H, W, 0, 10, 0, 10 + t) for t in range(3)], 1: [rect(H, W, 12, 20, 20, 31), None, rect(H, W, 13, 21, 20, 31)]}
    write_frames(root / split / "JPEGImages" / "v1", frames_array(3), [f"{t:05d}" for t in range(3)])

    def rle(m):
        if m is None:
            return None
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}

    (root / split).mkdir(parents=True, exist_ok=True)
    (root / split / "mask_dict.json").write_text(json.dumps({str(10 + o): [rle(m) for m in ms] for o, ms in gt.items()}))
    meta = {"videos": {"v1": {"frames": [f"{t:05d}" for t in range(3)], "expressions": {
        "0": {"exp": "the growing square", "obj_id": [0], "anno_id": [10]},
        "1": {"exp": "all the boxes", "obj_id": [0, 1], "anno_id": [10, 11]},
        "2": {"exp": "the elephant", "obj_id": [], "anno_id": []}}}}}
    (root / split / "meta_expressions.json").write_text(json.dumps(meta))
    return gt


def write_a2d(root: Path, frames: str = "mp4", n: int = 4, h: int = H, w: int = W) -> dict:
    """Two videos: 'vidA' (test, instances 0 and 3; frame 2 annotated with both, frame 4 with instance 0 only)
    and 'vidB' (train, instance 1 annotated on frame 1). Masks are non-square so a missing transpose shows."""
    import h5py

    a = {0: rect(h, w, 1, 5, 2, 20), 3: rect(h, w, 10, 22, 25, 30), 1: rect(h, w, 0, 3, 0, 31)}
    ann = {"vidA": {2: [0, 3], 4: [0]}, "vidB": {1: [1]}}
    rel = root / "Release"
    for k, vid in enumerate(ann):
        arr = frames_array(n, h, w, seed=30 * k)
        if frames == "mp4":
            write_mp4(rel / "clips320H" / f"{vid}.mp4", arr)
        else:
            write_frames(rel / "frames" / vid, arr, [f"{t + 1:05d}" for t in range(n)], ".png")
        for frame, ids in ann[vid].items():
            path = root / "text_annotations" / "a2d_annotation_with_instances" / vid / f"{frame:05d}.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as f:
                f.create_dataset("instance", data=np.array(ids, dtype=np.float64))
                stack = np.stack([a[i].T for i in ids]).astype(np.uint8)  # [N, W, H], as MATLAB writes it
                f.create_dataset("reMask", data=stack[0] if len(ids) == 1 else stack)
    with open(rel / "videoset.csv", "w", newline="") as f:
        csv.writer(f).writerows([["vidA", 11, 0, 1, h, w, n, 2, 1], ["vidB", 12, 0, 1, h, w, n, 1, 0]])
    rows = [("vidA", 0, "a man, running fast"), ("vidA", 3, "the dog on the right"), ("vidB", 1, "a bird flying")]
    with open(root / "text_annotations" / "a2d_annotation.txt", "w", newline="") as f:
        csv.writer(f).writerows([("video_id", "instance_id", "query")] + rows)
    return {"masks": a, "ann": ann}


def write_jhmdb(root: Path, v73: bool = False, n: int = 3) -> dict:
    """One video 'clap_1' of class 'clap' with n frames; puppet mask of frame t = rows 2..12, cols t..t+10."""
    import scipy.io

    gt = [rect(H, W, 2, 12, t, t + 10) for t in range(n)]
    write_frames(root / "Rename_Images" / "clap" / "clap_1", frames_array(n), [f"{t + 1:05d}" for t in range(n)], ".png")
    path = root / "puppet_mask" / "clap" / "clap_1" / "puppet_mask.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    stack = np.stack(gt, axis=-1).astype(np.uint8)  # [H, W, T]
    if v73:
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("part_mask", data=stack.transpose(2, 1, 0))  # MATLAB v7.3 stores [T, W, H]
    else:
        scipy.io.savemat(path, {"part_mask": stack})
    (root / "jhmdb_annotation.txt").write_text("video_id,query\nclap_1,a man clapping his hands\n")
    return {"masks": gt}
