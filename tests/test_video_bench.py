"""benchmarks/video.py's clips: every clip kind is made and written (a face wholly outside the
frame, as in `leave`, pastes nothing), and its truth says which frames hold which face."""
from __future__ import annotations

import cv2
import pytest

from benchmarks.video import CLIPS, make_clip, poses
from benchmarks.wild import Backgrounds
from common.listfile import read_list
from common.paths import SAMPLE_DATA, TEST_LIST


@pytest.fixture(scope="module")
def sample_faces():
    return read_list(SAMPLE_DATA / TEST_LIST)


@pytest.mark.parametrize("clip", CLIPS)
def test_every_clip_is_made_with_its_truth(clip, sample_faces, tmp_path):
    faces = sample_faces[:2]
    path = tmp_path / f"{clip}.mp4"
    truth = make_clip(clip, faces, Backgrounds(sample_faces), 0, path)
    n, frames, _ = poses(clip)
    assert len(truth) == n
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    in_picture = [len(here) for here in truth]
    if clip == "leave":
        # gone for a while in the middle, there at both ends
        assert in_picture[0] == 1 and in_picture[-1] == 1 and 0 in in_picture
    elif clip == "cross":
        assert all(k == 2 for k in in_picture)
    else:
        assert all(k == 1 for k in in_picture)
    if clip == "cut":
        assert {h[0]["face"] for h in truth[:n // 2]} == {0} and {h[0]["face"] for h in truth[n // 2:]} == {1}
