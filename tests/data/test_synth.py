"""The synthetic benchmark: expressions are true of the ground truth (checked here with independent code, from
centres and label maps), label maps are the drawn objects, files follow the Ref-YouTube-VOS layout, and the same
seed gives the same bytes."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from rvos.data.synth import SynthConfig, generate, generate_video
from rvos.data.synth.config import COLOURS
from rvos.data.synth.render import object_mask, sprite_mask
from rvos.errors import ConfigError

CFG = SynthConfig(frames=24, height=96, width=160, train=2, valid=1, test=1, workers=1)
SEEDS = range(14)
REGION = {"left": lambda x, y, w, h: x < w / 3, "right": lambda x, y, w, h: x > 2 * w / 3,
          "top": lambda x, y, w, h: y < h / 3, "bottom": lambda x, y, w, h: y > 2 * h / 3}


@pytest.fixture(scope="module")
def videos():
    return [generate_video(np.random.default_rng(s), CFG) for s in SEEDS]


# ---------------------------------------------------------------- independent ground-truth helpers
def visible(labels, i):
    return np.array([(frame == i).any() for frame in labels])


def direction(o, t):
    """'left'|'right'|'up'|'down'|'still' from centre differences (the last frame repeats the last step)."""
    a, b = (t, t + 1) if t + 1 < len(o.centres) else (t - 1, t)
    dx, dy = o.centres[b] - o.centres[a]
    if abs(dx) < 1e-6 and abs(dy) < 1e-6:
        return "still"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def matching(np_, objects, labels):
    """Ids of objects whose attributes equal every attribute the noun phrase names, visible at some frame."""
    return {o.obj_id for o in objects
            if all(v is None or getattr(o, k) == v for k, v in np_.items()) and visible(labels, o.obj_id).any()}


def ids_of(e):
    return {int(e["obj_id"])} if isinstance(e["obj_id"], str) else {int(i) for i in e["obj_id"]}


def own_runs(flags):
    out, start = [], None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        if not f and start is not None:
            out.append([start, i])
            start = None
    return out


def beyond(o, t, side, w, h):
    x, y = o.centres[t]
    return {"left": x < 0, "right": x > w, "top": y < 0, "bottom": y > h}[side]


def motion_ever(o, m, vis, w, h):
    """Whether object o shows motion m at some moment (the test's own reading of the trajectory)."""
    dirs = [direction(o, t) for t in range(len(o.centres))]
    pairs = list(zip(dirs[:-1], dirs[1:]))
    if m[0] == "moving":
        return m[1] in dirs
    if m[0] == "still":
        return "still" in dirs
    if m[0] == "stops":
        return any(a != "still" and b == "still" for a, b in pairs)
    if m[0] == "starts":
        return any(a == "still" and b != "still" for a, b in pairs)
    if m[0] == "turns":
        return (m[1], m[2]) in pairs
    t = 0 if m[0] == "enters" else len(dirs) - 1
    return (not vis[t]) and vis.any() and beyond(o, t, m[1], w, h)


def relation_ever(o, a, rel, labels):
    both = visible(labels, o.obj_id) & visible(labels, a.obj_id)
    axis, sign = {"left": (0, -1), "right": (0, 1), "above": (1, -1), "below": (1, 1)}[rel]
    return any(sign * (o.centres[t, axis] - a.centres[t, axis]) > 0 for t in np.flatnonzero(both))


# ---------------------------------------------------------------- rendering
def test_sprites_have_the_expected_areas():
    r = 20.0
    # cv2 fills every pixel the outline touches: about a disc of radius r + 0.5
    assert abs(sprite_mask("circle", r).sum() - math.pi * (r + 0.5) ** 2) < 0.02 * math.pi * r * r
    assert abs(sprite_mask("square", r).sum() - (1.7 * r) ** 2) < 0.06 * (1.7 * r) ** 2
    ring = sprite_mask("ring", r)
    c = ring.shape[0] // 2
    assert not ring[c, c] and ring[c, c + int(0.8 * r)]  # a hole in the middle, paint on the band
    cross = sprite_mask("cross", r)
    assert cross[c, c] and not cross[c - int(0.7 * r), c - int(0.7 * r)]  # arms, empty corners


def test_label_maps_equal_the_drawn_objects_after_occlusion(videos):
    for frames, labels, objects, _ in videos:
        t, h, w = labels.shape
        assert frames.shape == (t, h, w, 3) and frames.dtype == np.uint8 and labels.dtype == np.uint8
        for i in range(t):
            expect = np.zeros((h, w), np.uint8)
            for o in sorted(objects, key=lambda o: o.depth):  # far to near
                expect[object_mask(o, i, h, w)] = o.obj_id
            np.testing.assert_array_equal(labels[i], expect)
        for o in objects:  # the painted pixels have the object's colour (plain objects: noise only)
            px = frames[labels == o.obj_id].astype(float)
            if o.texture == "plain" and len(px):
                assert np.abs(px.mean(0) - COLOURS[o.colour]).max() < 4


# ---------------------------------------------------------------- expressions are true
def test_all_kinds_occur_with_paraphrases_and_hard_negatives(videos):
    kinds = {e["kind"] for *_, exps in videos for e in exps}
    assert kinds == {"appearance", "position", "motion", "relation", "multi", "partial", "absent"}
    for *_, exps in videos:
        texts = {e["exp"] for e in exps} | {p for e in exps for p in e.get("aug_pos", [])}
        for e in exps:
            assert e["exp"].strip()
            if e["kind"] != "absent":
                assert e["aug_pos"] and e["exp"] not in e["aug_pos"]
                assert not set(e["hard_neg"]) & texts  # a hard negative is never a true sentence of this video


def test_position_relation_and_appearance_expressions_pick_the_right_object(videos):
    checked = 0
    for _, labels, objects, exps in videos:
        t, h, w = labels.shape
        by_id = {o.obj_id: o for o in objects}
        for e in exps:
            q, target = e["query"], ids_of(e)
            if q["type"] == "appearance" and e["kind"] == "appearance":
                assert matching(q["np"], objects, labels) == target
            if q["type"] == "extreme":
                (i,) = target
                axis, sign = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}[q["arg"][0]]
                others = matching(q["np"], objects, labels) - {i}
                assert others  # "the leftmost X" needs another X
                for f in np.flatnonzero(visible(labels, i)):
                    for c in others:
                        if (labels[f] == c).any():
                            assert sign * by_id[i].centres[f, axis] < sign * by_id[c].centres[f, axis]
                checked += 1
            if q["type"] == "region":
                (i,) = target
                inside = REGION[q["arg"][0]]
                assert all(inside(*by_id[i].centres[f], w, h) for f in np.flatnonzero(visible(labels, i)))
                for c in matching(q["np"], objects, labels) - {i}:
                    assert not any(inside(*by_id[c].centres[f], w, h) for f in np.flatnonzero(visible(labels, c)))
                checked += 1
            if q["type"] == "relation":
                (i,) = target
                (a,) = matching(q["anchor"], objects, labels)  # the anchor is named uniquely
                assert relation_ever(by_id[i], by_id[a], q["arg"][0], labels)
                both = visible(labels, i) & visible(labels, a)
                axis, sign = {"left": (0, -1), "right": (0, 1), "above": (1, -1), "below": (1, 1)}[q["arg"][0]]
                assert all(sign * (by_id[i].centres[f, axis] - by_id[a].centres[f, axis]) > 0
                           for f in np.flatnonzero(both))
                for c in matching(q["np"], objects, labels) - {i, a}:
                    assert not relation_ever(by_id[c], by_id[a], q["arg"][0], labels)
    assert checked > 10


def test_motion_expressions_and_spans_match_the_trajectories(videos):
    n_partial = 0
    for _, labels, objects, exps in videos:
        t, h, w = labels.shape
        by_id = {o.obj_id: o for o in objects}
        for e in exps:
            q = e["query"]
            if q["type"] == "motion":
                (i,) = ids_of(e)
                o, m = by_id[i], tuple(q["arg"])
                dirs = [direction(o, f) for f in range(t)]
                changes = sum(a != b for a, b in zip(dirs[:-1], dirs[1:]))
                if m[0] == "moving":
                    assert set(dirs) == {m[1]}
                elif m[0] == "still":
                    assert set(dirs) == {"still"}
                elif m[0] in ("stops", "starts", "turns"):
                    first, last = {"stops": (None, "still"), "starts": ("still", None), "turns": m[1:]}[m[0]]
                    assert changes == 1 and dirs[0] != dirs[-1]
                    assert (dirs[0] == first) if first else dirs[0] != "still"
                    assert (dirs[-1] == last) if last else dirs[-1] != "still"
                else:
                    assert motion_ever(o, m, visible(labels, i), w, h)
                for c in matching(q["np"], objects, labels) - {i}:  # no other candidate ever does it
                    assert not motion_ever(by_id[c], m, visible(labels, c), w, h)
            if q["type"] == "during":
                n_partial += 1
                (i,) = ids_of(e)
                state, vis = q["arg"][0], visible(labels, i)
                holds = [direction(by_id[i], f) == state and vis[f] for f in range(t)]
                assert e["spans"] == own_runs(holds)
                assert 0 < sum(b - a for a, b in e["spans"]) < vis.sum()  # holds in part of the video only
                for c in matching(q["np"], objects, labels) - {i}:
                    vc = visible(labels, c)
                    assert not any(direction(by_id[c], f) == state and vc[f] for f in range(t))
            elif "spans" in e:
                pytest.fail(f"spans on a {e['kind']} expression")
    assert n_partial > 0


def test_multi_and_absent_expressions(videos):
    counts = {"two": 2, "three": 3, "four": 4, "both": 2}
    for _, labels, objects, exps in videos:
        for e in exps:
            q = e["query"]
            if e["kind"] == "multi":
                assert isinstance(e["obj_id"], list) and len(e["obj_id"]) >= 2
                assert ids_of(e) == matching(q["np"], objects, labels)  # every matching object is listed
                for word, n in counts.items():
                    if e["exp"].startswith((f"the {word} ", f"{word} ")):
                        assert len(e["obj_id"]) == n
            if e["kind"] == "absent":
                assert e["obj_id"] == [] and "spans" not in e
                cat, col = q["np"]["category"], q["np"]["colour"]
                assert not any(o.category == cat and (col is None or o.colour == col) for o in objects)


def test_hard_negatives_match_no_object(videos):
    n = 0
    for _, labels, objects, exps in videos:
        t, h, w = labels.shape
        for e in exps:
            assert len(e.get("hard_neg_queries", [])) == len(e.get("hard_neg", []))
            for q in e.get("hard_neg_queries", []):
                n += 1
                cands = [o for o in objects if o.obj_id in matching(q["np"], objects, labels)]
                if q["type"] in ("appearance", "group", "extreme"):
                    assert not cands, (e["exp"], q)
                elif q["type"] == "region":  # no such object is ever in that part of the frame
                    inside = REGION[q["arg"][0]]
                    assert not any(inside(*o.centres[f], w, h) for o in cands
                                   for f in np.flatnonzero(visible(labels, o.obj_id)))
                elif q["type"] == "motion":
                    assert not any(motion_ever(o, tuple(q["arg"]), visible(labels, o.obj_id), w, h) for o in cands)
                elif q["type"] == "during":
                    assert not any(direction(o, f) == q["arg"][0] and visible(labels, o.obj_id)[f]
                                   for o in cands for f in range(t))
                elif q["type"] == "relation":
                    anchors = [o for o in objects if o.obj_id in matching(q["anchor"], objects, labels)]
                    assert not any(relation_ever(o, a, q["arg"][0], labels) for o in cands for a in anchors if a is not o)
    assert n > 50


# ---------------------------------------------------------------- files on disk
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "out", CFG)


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_keys_and_palette_pngs(dataset):
    info = json.loads((dataset / "synth.json").read_text())
    assert info["seed"] == 0 and info["version"] and info["counts"]["videos"] == {"test": 1, "train": 2, "valid": 1}
    assert info["config"]["height"] == 96
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        meta = json.loads((dataset / split / "meta.json").read_text())["videos"]
        exps = json.loads((dataset / "meta_expressions" / split / "meta_expressions.json").read_text())["videos"]
        assert len(meta) == len(exps) == n and set(meta) == set(exps)
        for vid, v in exps.items():
            assert v["fps"] == 12 and v["frames"] == [f"{i:05d}" for i in range(24)]
            jpgs = sorted((dataset / split / "JPEGImages" / vid).iterdir())
            pngs = sorted((dataset / split / "Annotations" / vid).iterdir())
            assert [p.name for p in jpgs] == [f"{f}.jpg" for f in v["frames"]]
            assert [p.name for p in pngs] == [f"{f}.png" for f in v["frames"]]
            assert Image.open(jpgs[0]).size == (160, 96)
            png = Image.open(pngs[0])
            assert png.mode == "P" and png.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
            labels = np.stack([np.array(Image.open(p)) for p in pngs])
            for oid, o in meta[vid]["objects"].items():
                assert o["category"] and o["frames"] == [f for f, l in zip(v["frames"], labels) if (l == int(oid)).any()]
            for e in v["expressions"].values():
                assert set(e) <= {"exp", "obj_id", "kind", "spans", "aug_pos", "hard_neg", "query"}
                assert isinstance(e["obj_id"], (str, list)) and e["kind"]


def test_reader_reads_it_back(dataset):
    from rvos.data.readers.ytvos import read_ytvos

    records = read_ytvos(dataset, "train")
    assert [r.video_id for r in records] == ["train_0000", "train_0001"]
    r = records[0]
    assert len(r.video) == 24 and r.video.frame(0).shape == (96, 160, 3)
    png = np.array(Image.open(dataset / "train" / "Annotations" / r.video_id / "00005.png"))
    for oid, track in r.tracks.items():
        np.testing.assert_array_equal(track.targets[5].load_mask(), png == oid)
    assert any(not e.positive for e in r.expressions)


def test_same_seed_same_bytes_any_workers(dataset, tmp_path):
    again = generate(tmp_path / "again", CFG, workers=2)
    assert _tree(again) == _tree(dataset)
    other = generate(tmp_path / "other", SynthConfig(**{**CFG.to_dict(), "seed": 1}))
    assert _tree(other)["train/JPEGImages/train_0000/00000.jpg"] != _tree(dataset)["train/JPEGImages/train_0000/00000.jpg"]


def test_refuses_to_overwrite_and_leaves_no_temp_folders(tmp_path):
    small = SynthConfig(**{**CFG.to_dict(), "train": 1, "valid": 0, "test": 0, "frames": 8})
    out = generate(tmp_path / "d", small)
    with pytest.raises(ConfigError, match="--overwrite"):
        generate(out, small)
    (out / "stale.txt").write_text("x")
    generate(out, small, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "synth.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="frames"):
        SynthConfig(frames=2)
    with pytest.raises(ConfigError, match="objects"):
        SynthConfig(min_objects=1)


def test_cli_prints_counts(tmp_path, capsys):
    from rvos.cli import main

    rc = main(["data", "synth", str(tmp_path / "c"), "--seed", "3", "--train", "1", "--valid", "1", "--test", "0",
               "--frames", "8", "--height", "64", "--width", "96", "--workers", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "videos" in out and "expressions" in out and "wrote" in out
    assert len(list((tmp_path / "c" / "valid" / "JPEGImages").iterdir())) == 1


def test_examples_picture(tmp_path):
    from rvos.data.synth.examples import render_examples

    small = SynthConfig(**{**CFG.to_dict(), "frames": 8})
    out = render_examples(tmp_path / "ex.png", videos=2, frames=2, cfg=small)
    assert Image.open(out).size[0] > 100
