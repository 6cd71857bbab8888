"""Frame sources and open_video on tiny files written here: a frame folder, a GIF, an mp4 (mp4v), bad inputs."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from rvos.data.frames import FrameFolder, GifFrames, VideoFileFrames, natural_key, open_video
from rvos.errors import DatasetError
from fixtures_layouts import frames_array, write_frames, write_gif, write_mp4


def test_natural_sort_orders_digit_runs_by_value():
    assert sorted(["f10.png", "f2.png", "f1.png"], key=natural_key) == ["f1.png", "f2.png", "f10.png"]


def test_frame_folder_sorted_naturally_and_png_exact(tmp_path):
    arr = frames_array(3)
    write_frames(tmp_path / "v", arr, ["frame1", "frame10", "frame2"], ".png")
    video = open_video(tmp_path / "v", fps=5)
    assert video.frame_names == ["frame1", "frame2", "frame10"]
    assert (video.height, video.width, video.fps, len(video)) == (24, 32, 5, 3)
    np.testing.assert_array_equal(video.frame(1), arr[2])  # "frame2" was written from arr[2]
    assert video.frame(0).dtype == np.uint8 and video.frame(0).shape == (24, 32, 3)


def test_gif(tmp_path):
    arr = frames_array(4)
    video = open_video(write_gif(tmp_path / "a.gif", arr, duration_ms=50))
    assert isinstance(video.source, GifFrames)
    assert (len(video), video.height, video.width, video.fps) == (4, 24, 32, 20.0)
    # GIF palette quantisation is lossy; the frames must still be close and distinct
    assert np.abs(video.frame(2).astype(int) - arr[2]).mean() < 12
    assert np.abs(video.frame(3).astype(int) - arr[2]).mean() > 20


def test_mp4_sequential_and_random_access(tmp_path):
    arr = frames_array(4)
    video = open_video(write_mp4(tmp_path / "clip.mp4", arr, fps=10))
    assert isinstance(video.source, VideoFileFrames)
    assert (len(video), video.height, video.width, video.fps) == (4, 24, 32, 10.0)
    seq = [video.frame(i) for i in range(4)]
    for i in (3, 0, 2):  # seeks
        np.testing.assert_array_equal(video.frame(i), seq[i])
        assert np.abs(seq[i].astype(int) - arr[i]).mean() < 15
    clone = pickle.loads(pickle.dumps(video.source))  # DataLoader workers reopen the capture
    np.testing.assert_array_equal(clone.read(1), seq[1])
    with pytest.raises(IndexError):
        video.frame(4)


def test_missing_and_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="missing video"):
        open_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        open_video(tmp_path / "empty")
    (tmp_path / "fake.mp4").write_text("this is not a video")
    with pytest.raises(DatasetError, match="fake.mp4"):
        open_video(tmp_path / "fake.mp4")
    (tmp_path / "fake.gif").write_text("nor a gif")
    with pytest.raises(DatasetError, match="fake.gif"):
        open_video(tmp_path / "fake.gif")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="unsupported"):
        open_video(tmp_path / "notes.txt")


def test_corrupt_frame_image_names_file(tmp_path):
    (tmp_path / "v").mkdir()
    bad = tmp_path / "v" / "00000.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match="00000.jpg"):
        FrameFolder([bad]).read(0)


def test_array_frames_in_memory():
    from rvos.data.frames import ArrayFrames

    frames = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    src = ArrayFrames(frames)
    assert len(src) == 2 and src.names == ["00000", "00001"] and (src.read(1) == frames[1]).all()
    assert ArrayFrames(list(frames), names=["a", "b"]).names == ["a", "b"]
