"""Dataset readers against the real files in ../shared/data and against tiny fixtures in each exact layout."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fixtures_layouts import H, W, rect, write_a2d, write_davis, write_frames, write_index_png, write_jhmdb, write_mevis, write_ytvos, frames_array
from rvos.data.readers import LAYOUTS, detect_layout, open_dataset
from rvos.data.readers.common import UNKNOWN_OBJ_ID, read_index_png
from rvos.data.readers.davis import parse_khoreva, read_davis
from rvos.data.readers.ytvos import read_ytvos
from rvos.data.types import TargetKind
from rvos.errors import DatasetError


def masks_of(track):
    return [t.load_mask() if t.kind == TargetKind.MASK else None for t in track.targets]


# ---------------------------------------------------------------- DAVIS (real sample and fixtures)
def test_davis_sample(davis_sample):
    records = open_dataset(davis_sample)  # auto -> davis, split val, expressions from the JSON
    assert detect_layout(davis_sample) == "davis"
    assert [r.video_id for r in records] == ["breakdance", "camel", "car-roundabout", "cows", "drift-chicane", "goat"]
    assert sum(len(r.video) for r in records) == 495
    assert [len(r.video) for r in records] == [84, 90, 75, 104, 52, 90]
    meta = json.loads((davis_sample / "meta_expressions/valid/meta_expressions.json").read_text())
    for r in records:
        assert (r.video.height, r.video.width) == (480, 854)
        assert list(r.tracks) == [1] and r.split == "val"
        assert [e.text for e in r.expressions] == [e["exp"] for e in meta["videos"][r.video_id]["expressions"].values()]
        assert all(e.obj_ids == [1] for e in r.expressions)
        assert all(t.kind == TargetKind.MASK for t in r.tracks[1].targets)
    cows = records[3]
    png = np.asarray(__import__("PIL.Image").Image.open(davis_sample / "DAVIS/Annotations/480p/cows/00050.png"))
    np.testing.assert_array_equal(cows.tracks[1].targets[50].load_mask(), png == 1)
    assert cows.video.frame(50).shape == (480, 854, 3)


@pytest.mark.parametrize("masks", ["palette", "binary2016"])
def test_davis_fixture_json(tmp_path, masks):
    gt = write_davis(tmp_path, masks=masks)
    records = read_davis(tmp_path, split="val")
    assert [r.video_id for r in records] == ["seq1", "seq2"]
    seq1 = records[0]
    assert sorted(seq1.tracks) == sorted(gt["seq1"])
    assert [e.text for e in seq1.expressions] == ["a small caf\u00e9 table", "the blue box"][: len(gt["seq1"])]
    for o, ms in gt["seq1"].items():
        for got, want in zip(masks_of(seq1.tracks[o]), ms):
            np.testing.assert_array_equal(got, want)
    # the train split has no JSON expressions and no Khoreva file: the error names both
    with pytest.raises(DatasetError, match="Davis17_annot1_full_video.txt"):
        read_davis(tmp_path, split="train")


def test_davis_fixture_khoreva_choose_annotator(tmp_path):
    write_davis(tmp_path, expressions="khoreva")
    default = read_davis(tmp_path)
    assert [e.text for e in default[0].expressions] == ["a small caf\u00e9 table_full_video", "the blue box_full_video"]
    assert [e.obj_ids for e in default[0].expressions] == [[1], [2]]
    second = open_dataset(tmp_path, expressions="annot2")
    assert second[1].expressions[0].text == "a box sliding down (second annotator)"
    train = read_davis(tmp_path, split="train", expressions="annot1")
    assert [r.video_id for r in train] == ["seqt"] and train[0].expressions[0].text == "tiny"


def test_khoreva_parse_and_malformed_line(tmp_path):
    p = tmp_path / "Davis17_annot1.txt"
    p.write_bytes('a-seq 2 "the caf\xe9 sign"\n\nb 1 "x y"\n'.encode("latin-1"))
    out = parse_khoreva(p)
    assert [(e.text, e.obj_ids) for e in out["a-seq"]] == [("the caf\u00e9 sign", [2])] and out["b"][0].text == "x y"
    p.write_text("only-a-name\n")
    with pytest.raises(DatasetError, match="line 1 of .*Davis17_annot1.txt"):
        parse_khoreva(p)


def test_davis_bad_layouts(tmp_path):
    write_davis(tmp_path)
    shutil.rmtree(tmp_path / "DAVIS/JPEGImages/480p/seq2")
    with pytest.raises(DatasetError, match="'seq2'.*no frames"):
        read_davis(tmp_path)
    (tmp_path / "DAVIS/ImageSets/2017/val.txt").unlink()
    with pytest.raises(DatasetError, match="val.txt"):
        read_davis(tmp_path)


def test_index_png_binary_and_corrupt(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8), mode="L").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_index_png(str(tmp_path / "b.png")), [[0, 1], [1, 0]])
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match="corrupt annotation PNG: .*c.png"):
        read_index_png(str(tmp_path / "c.png"))


# ---------------------------------------------------------------- Ref-YouTube-VOS
def test_ytvos_fixture_with_extras(tmp_path):
    gt = write_ytvos(tmp_path)
    records = open_dataset(tmp_path, split="train")
    assert detect_layout(tmp_path) == "ytvos"
    a, b = records
    assert (a.video_id, len(a.video), a.video.fps, a.video.height, a.video.width) == ("vid_a", 4, 12.0, H, W)
    assert b.video.fps == 24.0 and a.video.frame_names == gt["names"]
    e0, e1, e2 = a.expressions
    assert (e0.obj_ids, e0.spans, e0.positive) == ([1], None, True)
    assert (e1.obj_ids, e1.spans) == ([1, 2], [(0, 2), (3, 4)])
    assert (e2.obj_ids, e2.positive, e2.augmented_positives, e2.hard_negatives) == ([], False, ["a cat that flies"], ["a flying dog"])
    assert (a.tracks[1].category, a.tracks[2].category, b.tracks[1].category) == ("box", "crate", None)
    for o in (1, 2):
        kinds = [t.kind for t in a.tracks[o].targets]
        assert kinds == [TargetKind.MASK, TargetKind.MASK, TargetKind.NONE, TargetKind.MASK]  # '00010' has no PNG
        for t in (0, 1, 3):
            np.testing.assert_array_equal(a.tracks[o].targets[t].load_mask(), gt["masks"][o][t])
    assert not a.tracks[2].targets[3].visible()  # annotated, not there
    clone = __import__("pickle").loads(__import__("pickle").dumps(records))  # DataLoader workers (spawn) pickle records
    np.testing.assert_array_equal(clone[0].tracks[1].targets[1].load_mask(), gt["masks"][1][1])


def test_ytvos_valid_without_annotations_and_unknown_objects(tmp_path):
    write_ytvos(tmp_path, split="valid", annotations=False)
    meta = tmp_path / "meta_expressions/valid/meta_expressions.json"
    data = json.loads(meta.read_text())
    del data["videos"]["vid_b"]["expressions"]["0"]["obj_id"]
    meta.write_text(json.dumps(data))
    a, b = read_ytvos(tmp_path, split="val")
    assert all(t.kind == TargetKind.NONE for tr in a.tracks.values() for t in tr.targets)
    assert b.expressions[0].obj_ids == [UNKNOWN_OBJ_ID] and list(b.tracks) == [UNKNOWN_OBJ_ID]


def test_ytvos_real_valid_json(tmp_path, text_data):
    """The real Ref-YouTube-VOS valid+test meta_expressions (507 videos, 2,096 sentences) around tiny frames."""
    (tmp_path / "meta_expressions/valid").mkdir(parents=True)
    full = json.loads((text_data / "refytvos_valid_meta_expressions.json").read_text())
    keep = sorted(full["videos"])[:3]
    assert len(full["videos"]) == 507 and sum(len(v["expressions"]) for v in full["videos"].values()) == 2096
    sub = {"videos": {k: full["videos"][k] for k in keep}}
    (tmp_path / "meta_expressions/valid/meta_expressions.json").write_text(json.dumps(sub))
    for vid in keep:
        names = sub["videos"][vid]["frames"]
        write_frames(tmp_path / "valid/JPEGImages" / vid, frames_array(1, 6, 8).repeat(len(names), 0), names)
    records = read_ytvos(tmp_path, split="valid")
    assert [r.video_id for r in records] == keep
    assert [[e.text for e in r.expressions] for r in records] == [[e["exp"] for e in sub["videos"][k]["expressions"].values()] for k in keep]
    assert all(len(r.video) == len(sub["videos"][r.video_id]["frames"]) for r in records)


def test_ytvos_bad_layouts(tmp_path):
    with pytest.raises(DatasetError, match="meta_expressions.json"):
        read_ytvos(tmp_path, split="train")
    write_ytvos(tmp_path)
    meta = tmp_path / "meta_expressions/train/meta_expressions.json"
    good = meta.read_text()
    meta.write_text(good[:-5])
    with pytest.raises(DatasetError, match="malformed JSON .*meta_expressions.json"):
        read_ytvos(tmp_path)
    meta.write_text(json.dumps({"vids": {}}))
    with pytest.raises(DatasetError, match="'videos'"):
        read_ytvos(tmp_path)
    meta.write_text(good.replace('"exp": "the square"', '"exp": "  "'))
    with pytest.raises(DatasetError, match="non-empty"):
        read_ytvos(tmp_path)
    shutil.rmtree(tmp_path / "train/JPEGImages/vid_b")
    meta.write_text(good)
    with pytest.raises(DatasetError, match="frame folder .*vid_b"):
        read_ytvos(tmp_path)


def test_open_dataset_rejects_unknown(tmp_path):
    with pytest.raises(DatasetError, match="cannot tell the dataset layout"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        open_dataset(tmp_path, layout="coco")
    assert LAYOUTS == ("ytvos", "davis", "mevis", "a2d", "jhmdb")


# ---------------------------------------------------------------- MeViS
def test_mevis_fixture_rle_and_null(tmp_path):
    gt = write_mevis(tmp_path, split="train")
    assert detect_layout(tmp_path) == "mevis"
    (rec,) = open_dataset(tmp_path, split="train")
    assert [e.obj_ids for e in rec.expressions] == [[0], [0, 1], []]
    assert [e.positive for e in rec.expressions] == [True, True, False]
    assert sorted(rec.tracks) == [0, 1]
    for o, ms in gt.items():
        assert all(t.kind == TargetKind.MASK for t in rec.tracks[o].targets)
        for got, want in zip(masks_of(rec.tracks[o]), ms):
            np.testing.assert_array_equal(got, np.zeros((H, W), bool) if want is None else want)
    assert not rec.tracks[1].targets[1].visible()  # null RLE: annotated, not in the frame


def test_mevis_without_mask_dict_and_bad_files(tmp_path):
    write_mevis(tmp_path, split="valid_u")
    (tmp_path / "valid_u/mask_dict.json").unlink()
    (rec,) = open_dataset(tmp_path, layout="mevis", split="valid_u")
    assert all(t.kind == TargetKind.NONE for tr in rec.tracks.values() for t in tr.targets)
    with pytest.raises(DatasetError, match="valid/meta_expressions.json"):
        open_dataset(tmp_path, layout="mevis", split="valid")
    write_mevis(tmp_path / "b", split="train")
    (tmp_path / "b/train/mask_dict.json").write_text("{not json")
    (rec,) = open_dataset(tmp_path / "b", layout="mevis", split="train")
    with pytest.raises(DatasetError, match="malformed JSON .*mask_dict"):
        rec.tracks[0].targets[0].load_mask()


# ---------------------------------------------------------------- A2D-Sentences
def test_a2d_real_sentence_file(text_data):
    from rvos.data.readers.a2d import parse_a2d_annotation

    sentences = parse_a2d_annotation(text_data / "a2d_sentences_annotation.txt")
    assert len(sentences) == 3754 and sum(len(v) for v in sentences.values()) == 6655
    assert sentences["--h5fAKYurM"] == [(0, "the pigeon is limping")]
    assert (1, "bird standing in the beach") in sentences["T6bNPuKV-wY"]  # instance "1 (copy)" in the file


@pytest.mark.parametrize("frames", ["mp4", "png"])
def test_a2d_fixture_h5_one_and_two_instances(tmp_path, frames):
    gt = write_a2d(tmp_path, frames=frames)
    assert detect_layout(tmp_path) == "a2d"
    test = open_dataset(tmp_path)  # default split: test
    assert [r.video_id for r in test] == ["vidA"]
    (rec,) = test
    assert (len(rec.video), rec.video.height, rec.video.width) == (4, H, W)
    assert [(e.text, e.obj_ids) for e in rec.expressions] == [("a man, running fast", [0]), ("the dog on the right", [3])]
    kinds = [t.kind for t in rec.tracks[0].targets]
    assert kinds == [TargetKind.NONE, TargetKind.MASK, TargetKind.NONE, TargetKind.MASK]  # .h5 00002 -> index 1
    np.testing.assert_array_equal(rec.tracks[0].targets[1].load_mask(), gt["masks"][0])  # 2 instances in file
    np.testing.assert_array_equal(rec.tracks[3].targets[1].load_mask(), gt["masks"][3])
    np.testing.assert_array_equal(rec.tracks[0].targets[3].load_mask(), gt["masks"][0])  # 1 instance in file
    assert rec.tracks[3].targets[3].load_mask().shape == (H, W) and not rec.tracks[3].targets[3].visible()
    assert rec.video.frame(2).shape == (H, W, 3)
    (train,) = open_dataset(tmp_path, split="train")
    np.testing.assert_array_equal(train.tracks[1].targets[0].load_mask(), gt["masks"][1])
    assert len(open_dataset(tmp_path, split="all")) == 2


def test_a2d_bad_files(tmp_path):
    write_a2d(tmp_path)
    (tmp_path / "text_annotations/a2d_annotation_with_instances/vidA/00002.h5").write_text("not hdf5")
    (rec,) = open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="00002.h5"):
        rec.tracks[0].targets[1].load_mask()
    (tmp_path / "Release/clips320H/vidA.mp4").write_text("not a video")
    with pytest.raises(DatasetError, match="vidA.mp4"):
        open_dataset(tmp_path)
    (tmp_path / "Release/clips320H/vidA.mp4").unlink()
    with pytest.raises(DatasetError, match="vidA"):
        open_dataset(tmp_path)
    (tmp_path / "Release/videoset.csv").unlink()
    with pytest.raises(DatasetError, match="videoset.csv"):
        open_dataset(tmp_path)
    (tmp_path / "text_annotations/a2d_annotation.txt").write_text("video,query\nx,y\n")
    with pytest.raises(DatasetError, match="a2d_annotation.txt .*header"):
        open_dataset(tmp_path)


# ---------------------------------------------------------------- JHMDB-Sentences
@pytest.mark.parametrize("v73", [False, True])
def test_jhmdb_fixture_mat(tmp_path, v73):
    gt = write_jhmdb(tmp_path, v73=v73)
    assert detect_layout(tmp_path) == "jhmdb"
    (rec,) = open_dataset(tmp_path)
    assert (rec.video_id, len(rec.video), rec.video.height, rec.video.width) == ("clap_1", 3, H, W)
    assert [e.text for e in rec.expressions] == ["a man clapping his hands"] and rec.expressions[0].obj_ids == [1]
    for got, want in zip(masks_of(rec.tracks[1]), gt["masks"]):
        np.testing.assert_array_equal(got, want)


def test_jhmdb_bad_files(tmp_path):
    write_jhmdb(tmp_path)
    mat = tmp_path / "puppet_mask/clap/clap_1/puppet_mask.mat"
    mat.write_text("garbage")
    with pytest.raises(DatasetError, match="puppet_mask.mat"):
        open_dataset(tmp_path)
    mat.unlink()
    with pytest.raises(DatasetError, match="puppet_mask.mat"):
        open_dataset(tmp_path)
    (tmp_path / "jhmdb_annotation.txt").write_text("video_id,query\nmissing_vid,a person\n")
    with pytest.raises(DatasetError, match="missing_vid"):
        open_dataset(tmp_path)
