"""The default face detector (BlazeFace short range via LiteRT, common/detectors/blaze.py) on the
whole photo -> points path: faces at every roll in 15-degree steps without turned searches, the
verifier against faces that are not there, and the detector's own parts."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.box import Box
from common.detectors import DEFAULT_DETECTOR, load_detector
from common.detectors.blaze import anchors, upright_order, weighted_nms
from common.image import halvings, photo_scope, shrink_to
from common.landmarker import Landmarker
from common.rotation import eye_roll
from landmark_photos import GROUP, ONE_FACE, listed, mean_error, no_face, rolled, small_in_large


@pytest.fixture(scope="module")
def blaze_landmarker():
    return Landmarker()


def test_blaze_is_the_default_and_searches_unturned():
    lm = Landmarker()
    assert DEFAULT_DETECTOR == "blaze" and lm.detector.name == "blaze"
    assert lm.angles == (0.0,)
    assert Landmarker(detector="mtcnn").angles == (0.0, 45.0, -45.0, 90.0, -90.0)


@pytest.mark.parametrize("name", [ONE_FACE, *GROUP])
@pytest.mark.parametrize("angle", range(-90, 91, 15))
def test_every_roll_in_15_degree_steps(name, angle, blaze_landmarker):
    """One face at every roll: found once, its points within 3% of the box width, the face's
    roll read within 10 degrees."""
    img, truth = rolled(name, angle)
    faces = blaze_landmarker(img)
    assert len(faces) == 1, f"{len(faces)} faces at {angle} degrees"
    face = faces[0]
    assert mean_error(face.points, truth, listed(name).box) < 0.03
    assert abs((face.roll - eye_roll(truth) + 180) % 360 - 180) < 10
    assert face.confidence > 0.5


def test_no_face_photos_give_no_face(blaze_landmarker):
    """Faceless photos: a real region below a chin, its blurred enlargement, noise and stripes.
    Below the verifier the detector may propose something; nothing passes it."""
    rng = np.random.default_rng(0)
    stripes = np.tile((np.sin(np.arange(640) / 6.0) * 100 + 128).astype(np.uint8), (480, 1))
    photos = [no_face(), cv2.GaussianBlur(cv2.resize(no_face(), (1280, 720)), (0, 0), 3),
              rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), cv2.merge([stripes] * 3)]
    for img in photos:
        assert blaze_landmarker(img) == []


def test_small_face_in_a_large_photo(blaze_landmarker):
    img, truth = small_in_large(face_px=80, size=(2000, 1500))
    faces = blaze_landmarker(img)
    assert len(faces) == 1
    assert mean_error(faces[0].points, truth, Box(0, 80, 0, 80)) < 0.05


def test_smallest_face_grows_with_the_photo_unless_asked():
    det = load_detector("blaze")
    assert det.min_face(480, 640) == pytest.approx(40.0) == det.min_face(720, 1280)
    assert det.min_face(3000, 4000) > 100  # the finest level is capped
    # Up to 2.1 megapixels the finest level holds 560,000 pixels (1920x1080: faces from 46 px);
    # beyond, the budget falls in proportion, so a 12-megapixel photo's search costs about a
    # 640x480 one's.
    assert det.min_face(1080, 1920) == pytest.approx(24 * (1080 * 1920 / 560_000) ** 0.5) == pytest.approx(46.2, abs=0.1)
    assert det.min_face(3000, 4000) == pytest.approx(24 * 12e6 / (560_000 * 2.1e6) ** 0.5, rel=1e-6)
    assert det.min_face(1944, 2592) < det.min_face(3000, 4000)
    everywhere = load_detector("blaze", min_face_everywhere=32)
    assert everywhere.min_face(3000, 4000) == pytest.approx(32.0)
    # Two levels cover every face in a 640x480 photo: 24 net pixels at the smallest face, and
    # the whole photo in the net's own 128 pixels; at most 4x apart.
    scales = det.scales(480, 640, 40.0)
    assert scales == pytest.approx([0.6, 0.2])
    scales = det.scales(3000, 4000, det.min_face(3000, 4000))
    assert 4000 * scales[-1] <= 128 + 1e-9
    assert all(a / b <= 4.0 + 1e-9 for a, b in zip(scales, scales[1:]))


def test_a_large_face_in_a_9_megapixel_photo_is_found_as_in_the_small_one(blaze_landmarker):
    """A photo blown up to 3000x3000 goes through the shared halvings (the search's shrink,
    the cascade's chip, the second look): the same face, at the same place, within 2% of
    the box width of the points found on the small photo."""
    img, truth = rolled(ONE_FACE, 0)
    h, w = img.shape[:2]
    big = cv2.resize(img, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    (small_face,) = blaze_landmarker(img)
    (big_face,) = blaze_landmarker(big)
    back = (big_face.points + 0.5) * np.array([w / 3000, h / 3000]) - 0.5
    assert mean_error(back, small_face.points, small_face.box) < 0.02
    assert mean_error(back, truth, listed(ONE_FACE).box) < 0.04


def test_a_reused_photo_buffer_is_read_afresh(blaze_landmarker):
    """A caller that reads the next frame into the same array, or draws on it, gets the faces
    of the new pixels: nothing made from a photo (its halvings, the second look's
    surroundings) outlives the call."""
    img, _ = rolled(ONE_FACE, 0)
    big = cv2.resize(img, (3000, 3000), interpolation=cv2.INTER_CUBIC)
    moved = np.ascontiguousarray(np.roll(big, (400, -300), axis=(0, 1)))
    buffer = big.copy()
    blaze_landmarker(buffer)
    buffer[:] = moved
    (again,) = blaze_landmarker(buffer)
    (fresh,) = blaze_landmarker(moved.copy())
    assert np.abs(again.points - fresh.points).max() < 1e-6


def test_halvings_average_2x2_pixels_once_per_photo():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (301, 403, 3), dtype=np.uint8)
    level, kx, ky = halvings(img, 0.3)  # halved twice: 0.25 of the size is under 0.3
    assert (kx, ky) == (2.0, 2.0) and level.shape == (150, 201, 3)
    block = img[:2, :2].astype(float).mean(axis=(0, 1))
    assert np.abs(level[0, 0] - block).max() <= 1  # rounding
    assert halvings(img, 0.3)[0] is not level  # outside a photo_scope nothing is kept
    with photo_scope(img):
        level = halvings(img, 0.3)[0]
        assert halvings(img, 0.3)[0] is level  # kept for the photo within its scope
        with photo_scope(img):  # nested: the same scope
            assert halvings(img, 0.3)[0] is level
        assert halvings(img.copy(), 0.3)[0] is not level
    assert halvings(img, 0.1)[1] == 8.0 and halvings(img, 1.0)[0] is img
    # The quick shrink maps pixel centres as the exact one does
    smooth = cv2.GaussianBlur(img, (0, 0), 4)
    quick, qx, qy = shrink_to(smooth, 100, quick=True)
    exact, ex, ey = shrink_to(smooth, 100)
    assert quick.shape == exact.shape and (qx, qy) == pytest.approx((ex, ey), rel=0.01)
    assert np.abs(quick.astype(int) - exact.astype(int)).mean() < 2


def test_anchors_and_weighted_nms():
    a = anchors(128, 128)
    assert a.shape == (896, 2)  # the net's own count at its 128x128 size
    assert tuple(a[0]) == (4.0, 4.0) and tuple(a[-1]) == (120.0, 120.0)
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    points = np.zeros((3, 6, 2))
    points[1] += 2.0
    out = weighted_nms(boxes, np.array([0.9, 0.3, 0.8]), points, 0.3)
    assert len(out) == 2
    (b, s, p), (b2, s2, _) = out
    assert s == 0.9 and s2 == 0.8
    np.testing.assert_allclose(b, [0.25, 0.25, 10.25, 10.25])  # weighted 0.9 : 0.3
    np.testing.assert_allclose(p, 0.5)


def test_upright_order_and_turned_detections():
    upright = np.array([[10, 10], [30, 10], [20, 20], [20, 30], [0, 12], [40, 12]], float)
    assert eye_roll(upright) == 0.0
    np.testing.assert_array_equal(upright_order(upright), upright)
    # The eyes named the other way round (the mouth above the eye line): swapped back.
    swapped = upright[[1, 0, 2, 3, 5, 4]]
    np.testing.assert_array_equal(upright_order(swapped), upright)
    from common.detectors import Detection
    det = Detection(Box(0, 40, 0, 40), 0.9, upright)
    turned = det.turned(90.0)
    assert eye_roll(turned.points) == pytest.approx(-90.0)
    assert turned.angle == 90.0 and turned.box == det.box


def test_dark_faces_are_read_brightened(blaze_landmarker, monkeypatch):
    """Faces in deep shadow (the photo through a gamma of 5): found, and their points read on
    a brightened copy come out at least 30% closer to the truth than read as they are."""
    import common.landmarker as landmarker
    lut = np.clip(255 * (np.arange(256) / 255.0) ** 5.0, 0, 255).astype(np.uint8)
    errors = {}
    for brighten in (True, False):
        monkeypatch.setattr(landmarker, "DARK", 60.0 if brighten else 0.0)
        errs = []
        for name in (ONE_FACE, *GROUP):
            img, truth = rolled(name, 0)
            best = max(blaze_landmarker(cv2.LUT(img, lut)), key=lambda f: f.confidence)
            errs.append(mean_error(best.points, truth, listed(name).box))
            if brighten:
                assert best.confidence > 0.5 and errs[-1] < 0.02, name
        errors[brighten] = float(np.mean(errs))
    assert errors[True] < 0.7 * errors[False]


def test_one_face_per_place():
    """Of two faces whose boxes overlap by more than SAME_FACE_IOU the less confident goes;
    neighbours that touch stay."""
    from common.landmarker import SAME_FACE_IOU, Face, one_per_face
    pts = np.zeros((5, 2))
    a = Face(Box(0, 100, 0, 100), pts, confidence=0.9)
    shifted = Face(Box(40, 140, 0, 100), pts, confidence=0.6)     # IoU 0.43
    neighbour = Face(Box(95, 195, 0, 100), pts, confidence=0.5)   # IoU 0.03 with a
    assert a.box.iou(shifted.box) > SAME_FACE_IOU > a.box.iou(neighbour.box)
    kept = one_per_face([shifted, a, neighbour])
    assert [id(f) for f in kept] == [id(a), id(neighbour)]


def test_a_flipped_detection_keeps_its_eyes_and_turns_the_face_over():
    from common.detectors import Detection
    upright = np.array([[10, 10], [30, 10], [20, 20], [20, 30], [0, 12], [40, 12]], float)
    det = Detection(Box(0, 40, 0, 44), 0.9, upright)
    flipped = det.flipped()
    # the eyes stay where they are, named the other way round; the mouth goes above them
    np.testing.assert_allclose(flipped.points[[1, 0]], upright[[0, 1]])
    assert abs(eye_roll(flipped.points)) == pytest.approx(180.0)
    assert flipped.points[3, 1] < 10 < upright[3, 1]
    # the box turns with the face, about the eyes' midpoint (20, 10)
    assert flipped.box.center == pytest.approx((20.0, -2.0)) and flipped.box.width == 40
    assert flipped.angle == 180.0
    np.testing.assert_allclose(flipped.flipped().points, upright, atol=1e-9)


def test_a_face_on_its_side_read_upside_down_is_turned_over(blaze_landmarker, monkeypatch):
    """A face lying on its side whose detection has the eyes right but the nose and mouth on the
    forehead side (BlazeFace's reading of some such faces, benchmarks/wild.py #365), and where
    the detector sees nothing on turned copies: the second look's flip reads it right. Without
    the flip it is lost."""
    import common.landmarker as landmarker
    img, truth = rolled(ONE_FACE, -90)
    lm = blaze_landmarker
    good = lm.locate(img)
    assert len(good) == 1
    wrong = lm.region(good[0].detection.flipped())
    monkeypatch.setattr(type(lm.detector), "look_again", lambda self, image, det, turn, closer=False: None)
    faces = lm.landmarks(img, [wrong])
    assert len(faces) == 1 and faces[0].confidence > 0.5
    assert mean_error(faces[0].points, truth, listed(ONE_FACE).box) < 0.03
    monkeypatch.setattr(landmarker, "FLIP_ROLL", 360.0)
    lost = lm.landmarks(img, [wrong])
    assert not lost or mean_error(lost[0].points, truth, listed(ONE_FACE).box) > 0.1


def test_the_half_turn_is_looked_at_only_where_a_quarter_turn_saw_a_face(blaze_landmarker, monkeypatch):
    """A face read upside down (its detection turned half round): the quarter turns see the face
    (BlazeFace finds faces at every roll), so the half turn is looked at too, and the face is
    read right. At the same place on a photo with no face the quarter turns see nothing, and
    the half turn is not looked at (Landmarker._second_look)."""
    lm = blaze_landmarker
    looked: list[float] = []
    look_again = type(lm.detector).look_again

    def counted(self, image, det, turn, closer=False):
        looked.append(turn)
        return look_again(self, image, det, turn, closer=closer)
    monkeypatch.setattr(type(lm.detector), "look_again", counted)

    img, truth = rolled(ONE_FACE, 0)
    with photo_scope(img):
        upside_down = lm.region(lm.locate(img)[0].detection.turned(180.0))
        faces = lm.landmarks(img, [upside_down])
    assert looked == [90.0, -90.0, 180.0]
    assert len(faces) == 1 and faces[0].confidence > 0.5
    assert mean_error(faces[0].points, truth, listed(ONE_FACE).box) < 0.03

    looked.clear()
    blank = no_face()
    with photo_scope(blank):
        nothing = lm.region(lm.locate(img)[0].detection)   # the face's place, on a faceless photo
        assert lm.landmarks(blank, [nothing]) == []
    assert looked == [90.0, -90.0]


def test_closer_looks_only_where_a_look_saw_a_face_the_cascade_still_doubts(blaze_landmarker, monkeypatch):
    """Where the looks saw a face but the cascade still doubts every reading, the detector looks
    once more with the face larger in its chip (Landmarker._second_look); where no look saw a
    face, or a look settled the doubt, it does not. The closer looks find the same face: their
    box is the first looks' box, within a few pixels."""
    import common.landmarker as landmarker
    lm = blaze_landmarker
    looked: list[tuple[float, bool]] = []
    found: dict[tuple[float, bool], Box] = {}
    look_again = type(lm.detector).look_again

    def counted(self, image, det, turn, closer=False):
        looked.append((turn, closer))
        seen = look_again(self, image, det, turn, closer=closer)
        if seen is not None:
            found[(turn, closer)] = seen.box
        return seen
    monkeypatch.setattr(type(lm.detector), "look_again", counted)

    img, truth = rolled(ONE_FACE, 0)
    with photo_scope(img):
        upside_down = lm.region(lm.locate(img)[0].detection.turned(180.0))
        assert len(lm.landmarks(img, [upside_down])) == 1
    assert looked == [(90.0, False), (-90.0, False), (180.0, False)]   # the doubt settled

    looked.clear()
    monkeypatch.setattr(landmarker, "DOUBT", 1.01)   # no reading settles it
    with photo_scope(img):
        lm.landmarks(img, [upside_down])
    assert looked == [(90.0, False), (-90.0, False), (180.0, False), (90.0, True), (-90.0, True), (180.0, True)]
    for turn in (90.0, -90.0, 180.0):
        a, b = found[(turn, False)], found[(turn, True)]
        assert abs(a.center[0] - b.center[0]) < 0.1 * a.width and abs(a.width - b.width) < 0.15 * a.width

    looked.clear()
    blank = no_face()
    with photo_scope(blank):
        nothing = lm.region(lm.locate(img)[0].detection)
        assert lm.landmarks(blank, [nothing]) == []
    assert looked == [(90.0, False), (-90.0, False)]
