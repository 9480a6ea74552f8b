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


def test_a_peer_is_scored_as_the_project_and_every_mode_is_timed_against_it():
    """MediaPipe's frames (as benchmarks/mediapipe_worker.py writes them) are scored by the
    same rules, and each mode's time is also given over the peer's on the same clips."""
    import numpy as np

    from benchmarks.peers import peer_faces
    from benchmarks.video import score_clip, summarise
    truth = [[{"face": 0, "points": np.array([[40., 40], [60, 40], [50, 50], [42, 60], [58, 60]]), "size": 40.0}]] * 2
    inside = {"points": [[41, 40], [61, 41], [50, 50], [42, 60], [58, 60]], "box": [25, 75, 20, 80]}
    elsewhere = {"points": [[141, 40], [161, 41], [150, 50], [142, 60], [158, 60]], "box": [125, 175, 20, 80]}
    peer = score_clip(truth, [peer_faces([inside]), peer_faces([elsewhere])])
    assert [r["found"] for r in peer] == [True, False]
    assert peer[0]["error"] == pytest.approx(100 * (1 + 2 ** 0.5) / 5 / 40)
    ours = score_clip(truth, [peer_faces([inside])] * 2)
    results = {"every": {"still": [{"recs": ours, "ms": [20.0, 20.0], "searched": [True, True]}]},
               "track": {"still": [{"recs": ours, "ms": [6.0, 4.0], "searched": [True, False]}]},
               "mediapipe": {"still": [{"recs": peer, "ms": [4.0, 4.0], "searched": [False, False]}]}}
    table = summarise(results, ["every", "track", "mediapipe"], peer="mediapipe")
    assert table["track"]["all"]["ms_ratio_to_peer"] == 1.25
    assert table["every"]["still"]["ms_ratio_to_peer"] == 5.0
    assert table["mediapipe"]["all"]["found_pct"] == 50.0
    assert table["mediapipe"]["all"]["searched_pct"] is None
    assert table["mediapipe"]["all"]["id_switches"] is None and table["track"]["all"]["id_switches"] == 0


def test_a_missing_mediapipe_interpreter_says_how_to_make_it(tmp_path):
    from benchmarks.peers import PeerUnavailable, check_python
    with pytest.raises(PeerUnavailable, match="benchmarks/mediapipe_env.sh"):
        check_python(tmp_path / "no-python")
