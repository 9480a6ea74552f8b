"""benchmarks/detection.py's photo builders and scoring, on the committed sample's test faces
(no detector is measured here: the benchmark itself does; the referee's test runs the
Landmarker as a stand-in for MediaPipe), and the screen of their backgrounds (benchmarks/
screen.py; wild.py --screen run end to end on four photos)."""
from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from benchmarks import detection as det
from benchmarks.wild import Backgrounds
from common.box import Box
from common.landmarker import Face
from common.rotation import eye_roll
from conftest import run_module


@pytest.fixture(scope="module")
def backgrounds(test_faces):
    return Backgrounds(test_faces)


@pytest.mark.parametrize("canvas, count", [((640, 480), 12), ((1280, 720), 5), ((640, 480), 7)])
def test_group_photo_puts_the_faces_apart_inside_the_canvas(test_faces, backgrounds, canvas, count):
    chosen = test_faces[10:10 + count]
    photo = det.build_group(3, canvas, chosen, backgrounds, seed=5)
    w, h = canvas
    assert photo.image.shape == (h, w, 3) and photo.image.dtype == np.uint8
    assert len(photo.faces) == count
    assert [f.sample for f in photo.faces] == chosen
    for i, f in enumerate(photo.faces):
        assert det.GROUP_SIZE[0] <= f.size <= det.GROUP_SIZE[1]
        assert abs(f.roll) <= 90
        pts = np.asarray(f.points)
        assert pts.shape == (5, 2)
        assert (pts >= 0).all() and (pts[:, 0] <= w - 1).all() and (pts[:, 1] <= h - 1).all()
        # The whole pasted disc lies in the canvas, and no two discs overlap.
        cx, cy = f.centre
        assert f.radius <= cx <= w - 1 - f.radius and f.radius <= cy <= h - 1 - f.radius
        for g in photo.faces[i + 1:]:
            assert math.dist(f.centre, g.centre) >= f.radius + g.radius
        # The true points are the face's: the eye line turned by the roll given (the source
        # faces lean by a few degrees of their own).
        assert abs((eye_roll(pts) + f.roll + 180) % 360 - 180) < 20
    # Deterministic for the seed.
    again = det.build_group(3, canvas, chosen, backgrounds, seed=5)
    assert np.array_equal(again.image, photo.image)


def test_group_plan_uses_each_test_face_once():
    plan = det.group_plan(30, 400, seed=1)
    used = [k for _, faces in plan for k in faces]
    assert len(used) == len(set(used))
    assert all(det.GROUP_FACES[0] <= len(faces) <= det.GROUP_FACES[1] for _, faces in plan)
    assert [c for c, _ in plan[:4]] == [(640, 480), (1280, 720), (640, 480), (1280, 720)]


def fake_face(points: np.ndarray, size: float) -> Face:
    """A face as the Landmarker would return it: box about the eyes-mouth centre, the eye roll."""
    cx, cy = np.asarray(points).mean(axis=0)
    return Face(Box.around(cx, cy, size / 2, size / 2), np.asarray(points, np.float64), eye_roll(points))


def test_scoring_counts_found_false_and_duplicate_faces(test_faces, backgrounds):
    photo = det.build_group(0, (1280, 720), test_faces[:8], backgrounds, seed=2)
    truth = photo.faces
    faces = [fake_face(t.points, t.size) for t in truth[1:]]          # every face but the first
    faces.append(fake_face(truth[2].points + 1.0, truth[2].size))       # a second face on one
    # A false face: a place no disc covers.
    w, h = photo.canvas
    spot = next((x, y) for y in range(40, h - 40, 10) for x in range(40, w - 40, 10)
                if all(math.dist((x, y), t.centre) > t.radius + 40 for t in truth))
    faces.append(Face(Box.around(*spot, 30, 30), np.tile(spot, (5, 1)).astype(float)))
    rec = det.score_group(photo, faces)
    assert [f["found"] for f in rec["faces"]] == [False] + [True] * (len(truth) - 1)
    assert rec["false"] == 1 and rec["duplicates"] == 1 and rec["returned"] == len(faces)
    assert all(f["error"] == 0.0 for f in rec["faces"][1:])   # the best of the two on face 2
    s = det.group_summary([rec])
    assert s["found"] == len(truth) - 1 and s["false_per_photo"] == 1.0 and s["duplicates_per_photo"] == 1.0
    # A face whose box misses the nose is not a hit.
    off = fake_face(truth[0].points + np.array([truth[0].size, 0.0]), truth[0].size)
    assert det.score_group(photo, [off])["faces"][0]["found"] is False


def test_sure_rule_table_counts_what_each_rule_adds():
    """wild.py's table for the verifier's sure-face rule: per (score, share) rule, the faces of
    40 px and more kept beyond confidence 0.2 and the false faces let in; small faces and faces
    already kept do not count."""
    from benchmarks.wild import sure_rule_table
    recs = [{"found": True, "size": 60.0, "confidence": 0.1, "score": 0.85, "false_confidences": [0.06], "false_scores": [0.82]},
            {"found": True, "size": 30.0, "confidence": 0.1, "score": 0.95, "false_confidences": [], "false_scores": []},
            {"found": True, "size": 80.0, "confidence": 0.5, "score": 0.6, "false_confidences": [0.3], "false_scores": [0.9]},
            {"found": False, "size": 90.0, "false_confidences": [0.15, 0.01], "false_scores": [0.7, 0.99]}]
    table = {(r["score"], r["share"]): (r["faces_kept"], r["false_let_in"])
             for r in sure_rule_table(recs, scores=(0.6, 0.8, 0.9), shares=(0.25, 0.5))}
    assert table == {(0.6, 0.25): (1, 2), (0.6, 0.5): (1, 1), (0.8, 0.25): (1, 1), (0.8, 0.5): (1, 0),
                     (0.9, 0.25): (0, 0), (0.9, 0.5): (0, 0)}



def test_threshold_table_counts_what_each_threshold_drops_and_keeps():
    """wild.py's table for the verifier's threshold: per threshold, through the rule it is
    given, the found faces of 40 px and more dropped and the false faces kept."""
    from benchmarks.wild import threshold_table
    recs = [{"found": True, "size": 60.0, "confidence": 0.25, "score": 0.9, "false_confidences": [0.35], "false_scores": [0.5]},
            {"found": True, "size": 30.0, "confidence": 0.01, "score": 0.9, "false_confidences": [], "false_scores": []},
            {"found": False, "size": 90.0, "false_confidences": [0.15, 0.45], "false_scores": [0.99, 0.2]}]
    sure = lambda c, s, t, o: c >= t or (s >= 0.85 and c >= 0.5 * t)  # noqa: E731
    table = {r["threshold"]: (r["faces_dropped"], r["false_kept"]) for r in threshold_table(recs, sure, (0.2, 0.4, 0.6))}
    assert table == {0.2: (0, 3), 0.4: (0, 1), 0.6: (1, 0)}
    plain = lambda c, s, t, o: c >= t  # noqa: E731
    assert [r["faces_dropped"] for r in threshold_table(recs, plain, (0.2, 0.4))] == [0, 1]
    assert "unconfirmed_kept" not in threshold_table(recs, plain, (0.2,))[0]
    # With the referee's flags (one per false face): the false faces kept that it does not see.
    for r, flags in zip(recs, ([True], [], [False, False])):
        r["false_referee"] = flags
    assert [r["unconfirmed_kept"] for r in threshold_table(recs, sure, (0.2, 0.4, 0.6))] == [2, 1, 0]
    # The second opinion reaches the rule, for found and false faces alike (None where not asked).
    recs[0]["face_probability"] = 0.99
    recs[2]["false_face_probabilities"] = [None, 0.1]
    asked = lambda c, s, t, o: o >= 0.9 if o is not None else c >= t  # noqa: E731
    table = {r["threshold"]: (r["faces_dropped"], r["false_kept"]) for r in threshold_table(recs, asked, (0.2, 0.6))}
    assert table == {0.2: (0, 1), 0.6: (0, 0)}


def test_summaries_count_the_false_faces_the_referee_does_not_confirm():
    """detection.py --referee: false faces a photo less those the referee sees as faces, in the
    no-face and group summaries; no such figure without the referee."""
    photos = [{"source": "backgrounds", "what": "pieces", "false": 2, "false_seen_by_referee": 1},
              {"source": "synthetic", "what": "blobs", "false": 1, "false_seen_by_referee": 0},
              {"source": "synthetic", "what": "noise", "false": 0, "false_seen_by_referee": 0},
              {"source": "backgrounds", "what": "pieces", "false": 0, "false_seen_by_referee": 0}]
    s = det.noface_summary(photos, ("backgrounds", "synthetic"))
    assert s["false_per_photo"] == 0.75 and s["unconfirmed_per_photo"] == 0.5
    for p in photos:
        del p["false_seen_by_referee"]
    assert "unconfirmed_per_photo" not in det.noface_summary(photos, ("backgrounds", "synthetic"))

def test_noface_backgrounds_keep_clear_of_listed_faces(test_faces, backgrounds):
    """Every background piece of the no-face photos comes from outside its image's listed face
    box widened by the margin (wild.Backgrounds.strips)."""
    pieces = []
    for i in (0, 2, 4):   # without scikit-image: backgrounds and synthetic in turn
        photo = det.build_noface(i, backgrounds, {}, seed=0, log=pieces)
        assert photo.source == "backgrounds"
        assert photo.image.shape == (480, 640, 3)
    assert len(pieces) >= 12
    for k, (x0, y0, x1, y1) in pieces:
        b = test_faces[k].box
        mx, my = Backgrounds.MARGIN * b.width, Backgrounds.MARGIN * b.height
        apart = x1 <= b.left - mx + 1 or x0 >= b.right + mx - 1 or y0 >= b.bottom + my - 1
        assert apart, (k, (x0, y0, x1, y1), b)


def test_noface_sources_and_synthetic_pictures(backgrounds):
    assert det.noface_sources({}) == ("backgrounds", "synthetic")
    fake_skimage = {"brick.png": np.full((300, 500, 3), 90, np.uint8)}
    sources = det.noface_sources(fake_skimage)
    photos = [det.build_noface(i, backgrounds, fake_skimage, seed=1) for i in (1, 4, 7, 10, 2, 5, 8, 11)]
    assert [p.source for p in photos] == ["skimage"] * 4 + ["synthetic"] * 4 and sources[1] == "skimage"
    assert [p.image.shape[:2] for p in photos[:4]] == [(480, 640), (720, 1280)] * 2
    for p in photos[4:]:
        assert p.image.dtype == np.uint8 and p.image.std() > 5, p.what   # not a flat picture
    assert {p.what.split()[0] for p in photos[4:]} == set(det.SYNTHETIC_KINDS)


def test_images_from_other_formats_become_bgr():
    gray16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    assert det.to_bgr(gray16).shape == (3, 4, 3) and det.to_bgr(gray16)[2, 3, 0] == round(55000 / 257)
    rgba = np.zeros((2, 2, 4), np.uint8)          # transparent black: white
    assert (det.to_bgr(rgba) == 255).all()
    assert det.fit(np.zeros((512, 512, 3), np.uint8), 640, 480).shape == (480, 640, 3)


def test_configurations_parse_as_predict_options():
    c = det.parse_config("mtcnn --upright --min-face 24")
    assert c.options["detector"] == "mtcnn" and c.options["angles"] == (0.0,)
    assert c.options["min_face_everywhere"] == 24
    assert det.parse_config("blaze").options["angles"] is None
    for bad in ("haar --min-face 24", "nodetector", "mtcnn --frobnicate"):
        with pytest.raises(det.ConfigError):
            det.parse_config(bad)


def test_a_peer_run_elsewhere_is_timed_by_its_own_clock():
    """benchmarks/detection.py times a callable by the wall clock, unless it reports its own
    call's time (MediaPipe's worker: without passing the photo between processes)."""
    from benchmarks.detection import call_ms

    class Peer:
        last_ms = None

        def __call__(self, image):
            self.last_ms = 3.5
            return ["a face"]
    faces, ms = call_ms(Peer(), None)
    assert faces == ["a face"] and ms == 3.5
    faces, ms = call_ms(lambda image: [], None)
    assert faces == [] and 0 <= ms < 1000


def test_the_referee_looks_at_a_face_upright_and_counts_only_a_face_in_its_box(test_faces, backgrounds):
    """benchmarks/peers.sees_face: a returned face's surroundings are turned upright with its box
    REFEREE_BOX px wide at the centre, and the peer's face counts only inside that box. The
    Landmarker stands in for MediaPipe, on a test face pasted at 60 degrees."""
    from benchmarks.peers import REFEREE_BOX, REFEREE_SIDE, sees_face, surroundings
    from benchmarks.wild import paste_face
    from common.landmarker import Landmarker
    sample = test_faces[0]
    rng = np.random.default_rng(3)
    image = backgrounds.canvas(rng, sample.image_path, 640, 480)
    points, centre, height = paste_face(image, sample, 60.0, 120.0, (420.0, 240.0))
    roll = eye_roll(points)
    here = Face(Box.around(*centre, 60.0, height / 2), points, roll)
    lm = Landmarker()
    (upright,) = lm(surroundings(image, here))
    assert abs(upright.roll) < 10
    assert upright.box.width == pytest.approx(REFEREE_BOX, rel=0.2)
    assert np.abs(np.asarray(upright.box.center) - (REFEREE_SIDE - 1) / 2).max() < 0.15 * REFEREE_BOX
    assert sees_face(lm, image, here)
    beside = Face(Box.around(centre[0] - 250.0, centre[1], 60.0, height / 2), points - (250.0, 0.0), roll)
    assert not sees_face(lm, image, beside)



def test_no_face_pieces_cover_none_of_the_people_yunet_finds(test_faces, sample_dir, tmp_path):
    """benchmarks/screen.py: a test photo of a crowd (Fatmir_Limaj_0001: faces of 10-16 px
    behind the listed one) holds faces YuNet finds; the screened pieces cover none of them,
    where unscreened ones do; the boxes come back from the cache file in a new run."""
    from benchmarks.screen import OtherFaces, covers
    crowd = [s for s in test_faces if s.image_path.name == "Fatmir_Limaj_0001.jpg"]
    others = OtherFaces(sample_dir, cache=tmp_path / "other-faces.json")
    boxes = others.boxes(crowd[0])
    assert len(boxes) >= 3
    listed = crowd[0].box
    assert all(not (listed.left <= b.center[0] <= listed.right and listed.top <= b.center[1] <= listed.bottom)
               for b in boxes)

    def windows(bg):
        log = []
        rng = np.random.default_rng(0)
        for _ in range(40):
            bg.piece(rng, det.Path(), 60, 60, log)
        return [Box(left, right, top, bottom) for _, (left, top, right, bottom) in log]
    assert any(covers(w, b) for w in windows(Backgrounds(crowd)) for b in boxes)
    screened = windows(Backgrounds(crowd, others))
    assert screened and not any(covers(w, b) for w in screened for b in boxes)
    others.save()
    assert OtherFaces(sample_dir, cache=tmp_path / "other-faces.json").boxes(crowd[0]) == boxes


def test_screen_without_yuface_says_what_to_run(sample_dir, tmp_path, monkeypatch):
    from benchmarks.screen import OtherFaces, ScreenUnavailable
    monkeypatch.setitem(sys.modules, "yuface", None)   # its import fails
    with pytest.raises(ScreenUnavailable, match="yuface==2023.5.1 is not installed; run scripts/setup.sh"):
        OtherFaces(sample_dir, cache=tmp_path / "other-faces.json")


def test_wild_with_screened_backgrounds_runs_and_keeps_its_screen(sample_dir, tmp_path):
    """benchmarks/wild.py --screen on the committed sample: the run says its backgrounds are
    screened, records it, and leaves the screened images in the cache (under HOME)."""
    out = tmp_path / "wild.json"
    proc = run_module("benchmarks.wild", "--faces", 4, "--screen", "--data", sample_dir, "--json", out,
                      env={"HOME": str(tmp_path)})
    assert "backgrounds screened" in proc.stdout
    result = json.loads(out.read_text())
    assert result["settings"]["screen"] is True and len(result["photos"]) == 4
    cache = tmp_path / ".cache" / "deep-landmark" / "other-faces-yuface-2023.5.1.json"
    screened = json.loads(cache.read_text())
    assert screened and all(not key.startswith("/") for key in screened)
