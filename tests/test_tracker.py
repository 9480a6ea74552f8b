"""Faces tracked from frame to frame (common.tracker, common.pointsbox) on short synthetic videos
made from the committed sample's faces, and `predict VIDEO` with and without tracking."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from common.box import Box
from common.detectors import Detection
from common.landmarker import Landmarker
from common.listfile import read_list
from common.paths import SAMPLE_DATA, TEST_LIST
from common.pointsbox import load_points_rule, placed_ious
from common.tracker import Tracker
from conftest import run_module
from landmark_photos import GROUP, ONE_FACE, listed, mean_error, no_face, read

REDETECT = 8
CANVAS = (360, 270)   # width, height


@pytest.fixture(scope="module")
def landmarker() -> Landmarker:
    # Upright search only: the tests' faces are upright and the search is the slow part.
    return Landmarker(angles=(0.0,))


def background() -> np.ndarray:
    return cv2.GaussianBlur(cv2.resize(no_face(), CANVAS, interpolation=cv2.INTER_LINEAR), (0, 0), 4)


def paste(canvas: np.ndarray, name: str, x: float, y: float, roll: float = 0.0) -> np.ndarray:
    """The sample face's photo (within a feathered circle) turned by `roll` about its face
    and placed with the box centre at (x, y); its true points there."""
    face, img = listed(name), read(name)
    cx, cy = face.box.center
    m = cv2.getRotationMatrix2D((cx, cy), roll, 0.8)
    m[:, 2] += (x - cx, y - cy)
    h, w = canvas.shape[:2]
    moved = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[:h, :w]
    alpha = np.clip((85 - np.hypot(xx - x, yy - y)) / 15, 0, 1)[..., None]
    canvas[:] = (moved * alpha + canvas * (1 - alpha)).astype(np.uint8)
    return np.c_[face.points, np.ones(5)] @ m.T


def noisy(frame: np.ndarray, rng) -> np.ndarray:
    return np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)


def moving_face(n: int = 30, seed: int = 0):
    """(frames, true points per frame): a face drifting right and down while it rolls to 20 degrees."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for t in range(n):
        canvas = background()
        truth.append(paste(canvas, ONE_FACE, 130 + 3 * t, 120 + t, 20 * np.sin(np.pi * t / n)))
        frames.append(noisy(canvas, rng))
    return frames, truth


# --- the points -> box rule ------------------------------------------------------------------
def test_points_rule_places_boxes_near_the_true_boxes():
    rule = load_points_rule()
    samples = read_list(SAMPLE_DATA / TEST_LIST)
    ious = placed_ious(rule, samples)
    assert ious.mean() > 0.8 and (ious > 0.6).mean() > 0.95, ious.mean()
    # A face rolled by 40 degrees: the same box about the turned centre, and its roll.
    face = listed(ONE_FACE)
    m = cv2.getRotationMatrix2D((125.0, 125.0), 40.0, 1.0)
    box, roll = rule.place(face.points)
    turned, turned_roll = rule.place(np.c_[face.points, np.ones(5)] @ m.T)
    assert abs(turned_roll - (roll - 40.0)) < 1e-6
    assert turned.width == pytest.approx(box.width) and turned.height == pytest.approx(box.height)
    assert np.allclose(turned.center, np.r_[box.center, 1.0] @ m.T)


# --- the tracker ----------------------------------------------------------------------------
def test_tracker_follows_a_moving_rolling_face(landmarker):
    frames, truth = moving_face()
    tracker = Tracker(landmarker, redetect_every=REDETECT)
    ids, searches = set(), 0
    for t, (frame, pts) in enumerate(zip(frames, truth)):
        faces = tracker.update(frame)
        searches += tracker.searched
        assert len(faces) == 1, f"frame {t}: {len(faces)} faces"
        (face,) = faces
        ids.add(face.track_id)
        err = mean_error(face.points, pts, listed(ONE_FACE).box) / 0.8
        assert err < 0.06, f"frame {t}: error {err:.3f} box widths"
        # Close to the photo path on the same frame.
        (photo,) = landmarker(frame)
        assert np.linalg.norm(face.points - photo.points, axis=1).mean() / face.box.width < 0.03, f"frame {t}"
        assert face.as_dict()["track_id"] == face.track_id
    assert len(ids) == 1
    assert searches == -(-len(frames) // REDETECT)   # the first frame and every REDETECT-th after


def test_face_leaving_ends_its_track_and_coming_back_starts_one(landmarker):
    rng = np.random.default_rng(1)
    tracker = Tracker(landmarker, redetect_every=REDETECT)
    seen = []
    # In the middle, then sliding out on the right (40 px a frame), away, and back at once.
    xs = [180] * 4 + [180 + 40 * k for k in range(1, 8)] + [None] * 6 + [180] * (REDETECT + 1)
    for x in xs:
        canvas = background()
        if x is not None:
            paste(canvas, ONE_FACE, x, 130)
        seen.append([f.track_id for f in tracker.update(noisy(canvas, rng))])
    first = seen[0]
    assert len(first) == 1 and all(s == first for s in seen[:4])
    gone = xs.index(None)
    assert all(s == [] for s in seen[gone:gone + 6]), seen
    back = seen[gone + 6:]
    assert any(back[:REDETECT]), "the face coming back was not found within the search period"
    assert all(s and s[0] != first[0] for s in back if s), "a new face gets a new id"
    assert all(len(s) == 1 for s in back[REDETECT:])


def test_two_faces_keep_their_ids_as_they_move_apart(landmarker):
    rng = np.random.default_rng(2)
    tracker = Tracker(landmarker, redetect_every=REDETECT)
    names = GROUP[:2]
    ids = []
    for t in range(20):
        canvas = background()
        canvas = cv2.resize(canvas, (460, 270))
        left = paste(canvas, names[0], 150 - 3 * t, 130)
        right = paste(canvas, names[1], 310 + 3 * t, 130)
        faces = tracker.update(noisy(canvas, rng))
        assert len(faces) == 2, f"frame {t}"
        by_side = sorted(faces, key=lambda f: f.points[2, 0])
        assert np.linalg.norm(by_side[0].points - left, axis=1).mean() < 8
        assert np.linalg.norm(by_side[1].points - right, axis=1).mean() < 8
        ids.append([f.track_id for f in by_side])
    assert ids[0][0] != ids[0][1]
    assert all(i == ids[0] for i in ids), ids


def test_a_cut_ends_the_tracks(landmarker):
    rng = np.random.default_rng(3)
    tracker = Tracker(landmarker, redetect_every=REDETECT)
    a = background()
    paste(a, ONE_FACE, 180, 130)
    b = cv2.GaussianBlur(cv2.resize(read(GROUP[2]), CANVAS), (0, 0), 4)   # another scene
    paste(b, GROUP[0], 190, 135)   # and another face in nearly the same place
    (first,) = tracker.update(noisy(a, rng))
    (second,) = tracker.update(noisy(a, rng))
    (third,) = tracker.update(noisy(b, rng))
    assert first.track_id == second.track_id != third.track_id


def test_smoothing_shakes_less_on_a_still_face(landmarker):
    rng = np.random.default_rng(4)
    canvas = background()
    paste(canvas, ONE_FACE, 180, 130)
    frames = [noisy(canvas, rng) for _ in range(20)]
    spread = {}
    for smooth in (False, True):
        tracker = Tracker(landmarker, redetect_every=REDETECT, smooth=smooth)
        pts = np.stack([tracker.update(f)[0].points for f in frames])
        spread[smooth] = np.sqrt(pts[5:].var(axis=0).sum(axis=1)).mean()
    assert spread[True] < spread[False]


def test_level_one_is_read_once_while_a_still_face_keeps_its_region(landmarker, monkeypatch):
    """A still face: level 1 runs on the first frames only, the points stay as close to the
    photo path's as when it runs every frame, and shake no more; a face that then moves has
    level 1 read again."""
    import common.cascade as cascade
    import common.tracker as tracker_module
    calls = []
    real = cascade.Cascade.level1

    def counted(self, grays, faces, *args, **kwargs):
        calls.append(len(faces))
        return real(self, grays, faces, *args, **kwargs)
    monkeypatch.setattr(cascade.Cascade, "level1", counted)
    rng = np.random.default_rng(5)
    canvas = background()
    truth = paste(canvas, ONE_FACE, 180, 130)
    frames = [noisy(canvas, rng) for _ in range(20)]
    spread, error = {}, {}
    for reuse in (False, True):
        monkeypatch.setattr(tracker_module, "REUSE_FIRST", reuse)
        tracker = Tracker(landmarker, redetect_every=100, smooth=False)
        calls.clear()
        pts = np.stack([tracker.update(f)[0].points for f in frames])
        tracked = sum(calls[1:]) if reuse else None   # the first frame's search reads its faces
        if reuse:
            assert tracked <= 3, calls   # the frame after the search may place a new region
        else:
            assert sum(calls) >= len(frames)
        spread[reuse] = np.sqrt(pts[5:].var(axis=0).sum(axis=1)).mean()
        error[reuse] = mean_error(pts[5:].mean(axis=0), truth, listed(ONE_FACE).box) / 0.8
    assert spread[True] < 1.05 * spread[False]
    assert error[True] < error[False] + 0.01
    # Then the face moves 1.5% of its box a frame: within HOLD_SHIFT for a frame or two, but level 1
    # is read again once the points have moved REUSE_MOVE.
    calls.clear()
    before = len(calls)
    for t in range(1, 6):
        moved = background()
        paste(moved, ONE_FACE, 180 + 1.5 * t, 130)
        tracker.update(noisy(moved, rng))
    assert len(calls) - before >= 2, calls


class ScriptedLandmarker:
    """Stands in for a Landmarker to test the tracker's search policy alone: faces A (read at
    0.95) and B (a face in the background, read at 0.3: above min_confidence, below
    search_below) at fixed places; `present` says which are in the frame."""
    min_confidence = 0.2
    sure_score = None
    keeps = Landmarker.keeps
    boxes = {"A": Box(40, 140, 60, 160), "B": Box(220, 300, 80, 160), "C": Box(200, 300, 140, 240)}
    read_at = {"A": 0.95, "B": 0.3, "C": 0.95}

    def __init__(self):
        face = listed(ONE_FACE)
        self.template = face.box.to_relative(face.points)
        self.present = {"A", "B"}
        self.searches = 0

    def _region(self, box):
        from common.landmarker import Region
        return Region(box, 0.0, Detection(box, 0.9, box.to_absolute(self.template), 0.0))

    def locate(self, frame):
        self.searches += 1
        return [self._region(self.boxes[k]) for k in sorted(self.present)]

    def judge(self, frame, regions, mirror=None, first=None):
        points, conf = [], []
        for r in regions:
            name = min(self.boxes, key=lambda k: math.dist(self.boxes[k].center, r.box.center))
            points.append(self.boxes[name].to_absolute(self.template))
            conf.append(self.read_at[name] if name in self.present else 0.05)
        return np.array(points), np.ones((len(regions), 5)), np.array(conf)

    def second_opinion(self, frame, regions, confidences, min_confidence=None, points=None):
        """Not asked, unless `opinions` names the face (O-Net's probability)."""
        names = [min(self.boxes, key=lambda k: math.dist(self.boxes[k].center, r.box.center)) for r in regions]
        return np.array([getattr(self, "opinions", {}).get(n, np.nan) for n in names], dtype=float)


def test_a_new_face_the_second_opinion_vetoes_is_not_tracked():
    """A face found by a search starts a track only past the photo path's whole verifier:
    read above the threshold but vetoed by the second opinion, it is not followed."""
    from common.landmarker import VETO
    lm = ScriptedLandmarker()
    frame = np.random.default_rng(0).integers(0, 256, (270, 360, 3), dtype=np.uint8)
    assert len(Tracker(lm, smooth=False).update(frame)) == 2
    lm.opinions = {"B": VETO - 0.01}
    faces = Tracker(lm, smooth=False).update(frame)
    assert len(faces) == 1 and faces[0].confidence == lm.read_at["A"]


def test_a_doubted_face_found_by_every_search_does_not_have_every_frame_searched():
    """A background face read below search_below but found, doubted, by each search makes a
    search at most every EMPTY_EVERY frames (it used to make every frame searched); a face read
    with confidence that is lost while another is tracked is looked for again soon."""
    from common.tracker import EMPTY_EVERY
    lm = ScriptedLandmarker()
    tracker = Tracker(lm, redetect_every=15, smooth=False)
    frame = np.random.default_rng(0).integers(0, 256, (270, 360, 3), dtype=np.uint8)
    searched = []
    for _ in range(30):
        faces = tracker.update(frame)
        searched.append(tracker.searched)
        assert len(faces) == 2
    assert sum(searched) <= 1 + 30 // EMPTY_EVERY, searched
    assert sum(searched) >= 2   # the doubted face is still looked for now and then
    # A face read with confidence that goes while another (C) is tracked: doubted, it makes
    # its frame searched at once; not found there, it is looked for again EMPTY_EVERY frames
    # on, not redetect_every.
    lm.present = {"A", "C"}
    tracker = Tracker(lm, redetect_every=15, smooth=False)
    assert len(tracker.update(frame)) == 2 and tracker.searched
    assert len(tracker.update(frame)) == 2 and not tracker.searched
    lm.present = {"C"}
    assert len(tracker.update(frame)) == 1 and tracker.searched
    after = []
    for _ in range(EMPTY_EVERY):
        tracker.update(frame)
        after.append(tracker.searched)
    assert after == [False] * (EMPTY_EVERY - 1) + [True]


def test_max_faces_follows_the_most_confident_and_stops_looking_for_others():
    """Tracker(max_faces=1): the more confident face is followed, and while it is no periodic
    search runs (a doubt still makes one); without a cap both are followed and searched for."""
    lm = ScriptedLandmarker()
    lm.present = {"A", "C"}
    lm.read_at = {**lm.read_at, "C": 0.9}
    frame = np.random.default_rng(1).integers(0, 256, (270, 360, 3), dtype=np.uint8)
    capped, free = Tracker(lm, redetect_every=5, smooth=False, max_faces=1), Tracker(lm, redetect_every=5, smooth=False)
    for tracker, faces_seen, searches in ((capped, 1, 1), (free, 2, 4)):
        lm.searches = 0
        for _ in range(16):
            faces = tracker.update(frame)
            assert len(faces) == faces_seen
        assert lm.searches == searches
    assert capped.update(frame)[0].confidence == 0.95
    with pytest.raises(ValueError, match="max_faces"):
        Tracker(lm, max_faces=0)


def test_a_face_the_detector_is_sure_of_is_tracked_at_a_lower_confidence():
    """The tracker drops faces by the Landmarker's verifier: a face read at 0.17 whose detector
    score (0.9) is sure is followed where the detector has a sure_score, and dropped where not."""
    lm = ScriptedLandmarker()
    lm.present = {"A"}
    lm.read_at = {**lm.read_at, "A": 0.17}
    frame = np.random.default_rng(2).integers(0, 256, (270, 360, 3), dtype=np.uint8)
    for sure, tracked in ((None, 0), (0.8, 1), (0.95, 0)):
        lm.sure_score = sure
        tracker = Tracker(lm, redetect_every=5, smooth=False)
        assert [len(tracker.update(frame)) for _ in range(6)] == [tracked] * 6


def test_a_trusted_face_keeps_its_track_down_to_a_share_of_the_threshold():
    """A face once read at search_below or more stays tracked while it reads at TRUSTED_SHARE of
    min_confidence or more (a face half hidden by another); a face never read so needs the whole
    threshold, and a trusted face below the share is dropped."""
    from common.tracker import TRUSTED_SHARE
    frame = np.random.default_rng(2).integers(0, 256, (270, 360, 3), dtype=np.uint8)
    low = (TRUSTED_SHARE + 1) / 2 * ScriptedLandmarker.min_confidence
    for first, then, tracked in ((0.95, low, 1), (low, low, 0), (0.95, TRUSTED_SHARE * 0.2 - 0.01, 0)):
        lm = ScriptedLandmarker()
        lm.present = {"A"}
        lm.read_at = {**lm.read_at, "A": first}
        tracker = Tracker(lm, redetect_every=5, smooth=False)
        assert len(tracker.update(frame)) == (first >= lm.min_confidence)
        lm.read_at["A"] = then
        assert [len(tracker.update(frame)) for _ in range(6)] == [tracked] * 6

def test_redetect_every_must_be_positive(landmarker):
    with pytest.raises(ValueError, match="redetect_every"):
        Tracker(landmarker, redetect_every=0)


# --- predict VIDEO ----------------------------------------------------------------------------
def test_predict_tracks_a_video_and_no_track_searches_every_frame(tmp_path):
    frames, truth = moving_face(12)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, CANVAS)
    for f in frames:
        writer.write(f)
    writer.release()
    tracked = json.loads(run_module("common.predict", video, "--json", "--upright").stdout)[0]
    plain = json.loads(run_module("common.predict", video, "--json", "--upright", "--no-track").stdout)[0]
    assert len(tracked["frames"]) == len(plain["frames"]) == 12
    ids = {face["track_id"] for fr in tracked["frames"] for face in fr["faces"]}
    assert len(ids) == 1 and all(len(fr["faces"]) == 1 for fr in tracked["frames"])
    assert all("track_id" not in face for fr in plain["frames"] for face in fr["faces"])
    for a, b, pts in zip(tracked["frames"], plain["frames"], truth):
        (fa,), (fb,) = a["faces"], b["faces"]
        assert mean_error(fa["points"], pts, listed(ONE_FACE).box) / 0.8 < 0.06
        assert mean_error(fb["points"], pts, listed(ONE_FACE).box) / 0.8 < 0.06
    text = run_module("common.predict", video, "--upright").stdout
    assert "face 1 (track " in text
    capped = json.loads(run_module("common.predict", video, "--json", "--upright", "--max-faces", "1").stdout)[0]
    assert all(len(fr["faces"]) == 1 for fr in capped["frames"])
    bad = run_module("common.predict", video, "--max-faces", "0", check=False)
    assert bad.returncode == 2 and "at least 1" in bad.stderr and "Traceback" not in bad.stderr


# --- the web app's camera mode ------------------------------------------------------------------
def test_web_camera_frames_are_tracked_per_stream():
    import io

    from landmark_photos import encode
    from webapp.app import create_app
    app = create_app()
    client = app.test_client()
    frames, _ = moving_face(6)

    def send(frame, camera="camera-one-0001", n=0, **extra):
        form = {"image": (io.BytesIO(encode(frame)), "frame.jpg"), "live": "1", "camera": camera,
                "frame": str(n), **extra}
        return client.post("/api/landmarks", data=form, content_type="multipart/form-data")
    ids = []
    for n, frame in enumerate(frames, 1):
        resp = send(frame, n=n)
        assert resp.status_code == 200, resp.get_json()
        (face,) = resp.get_json()["faces"]
        ids.append(face["track_id"])
    assert len(set(ids)) == 1
    # Another stream starts its own tracks; the answers never carry the state itself.
    other = send(frames[0], camera="camera-two-0002", n=1).get_json()
    assert "track_state" not in other and len(app.config["CAMERA_STATES"]) == 2
    assert send(frames[0], camera="bad id!").status_code == 400
    assert send(frames[0], live="0").status_code == 400


def test_camera_states_are_bounded_and_expire():
    from common.tracker import TrackerState
    from webapp.app import CameraStates
    now = [0.0]
    states = CameraStates(size=3, ttl=10.0, clock=lambda: now[0])
    for k in range(5):
        states.put(f"cam{k}", 1, TrackerState(next_id=k))
    assert len(states) == 3 and states.get("cam0").next_id == 1 and states.get("cam4").next_id == 4
    # An older frame's state does not replace a newer one's.
    states.put("cam4", 0, TrackerState(next_id=99))
    assert states.get("cam4").next_id == 4
    now[0] = 11.0
    assert states.get("cam4").next_id == 1 and len(states) == 0
