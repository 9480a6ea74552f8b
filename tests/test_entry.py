"""Landmarker's door: what it takes, what it refuses and how, and calls from several threads;
on the committed sample's test photos and the released nets."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from common.image import checked_photo, to_8bit
from common.landmarker import Landmarker
from landmark_photos import GROUP, ONE_FACE, PAIR, read


@pytest.fixture(scope="module")
def landmarker() -> Landmarker:
    return Landmarker()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = read(ONE_FACE)
    # Its pixels span 0-255, so stretching a wider copy of it gives it back exactly.
    assert img.min() == 0 and img.max() == 255
    return img


@pytest.fixture(scope="module")
def expected(landmarker, photo):
    faces = landmarker(photo)
    assert len(faces) == 1
    return faces[0].points


@pytest.mark.parametrize("name, make, message", [
    ("None", lambda im: None, "image is None: cv2.imread returns None"),
    ("a list", lambda im: im.tolist(), "must be a numpy array"),
    ("1-D", lambda im: im.ravel(), "image has shape (187500,)"),
    ("4-D", lambda im: im[None], "image has shape (1, 250, 250, 3)"),
    ("2 channels", lambda im: im[:, :, :2], "image has shape (250, 250, 2)"),
    ("5 channels", lambda im: np.dstack([im, im[:, :, :2]]), "image has shape (250, 250, 5)"),
    ("0x0", lambda im: np.zeros((0, 0, 3), np.uint8), "image is empty: shape (0, 0, 3)"),
    ("0 wide", lambda im: np.zeros((5, 0), np.uint8), "image is empty"),
    ("bool", lambda im: im > 100, "image has bool pixels"),
    ("complex", lambda im: im.astype(np.complex64), "image has complex64 pixels"),
])
def test_wrong_input_is_refused_with_its_problem_named(landmarker, photo, name, make, message):
    bad = make(photo)
    for method in (landmarker, landmarker.locate):
        with pytest.raises(ValueError) as exc:
            method(bad)
        assert message in str(exc.value), (name, str(exc.value))


@pytest.mark.parametrize("name, make", [
    ("uint16 (x 257)", lambda im: im.astype(np.uint16) * 257),
    ("uint16, 12-bit camera (x 16)", lambda im: im.astype(np.uint16) * 16),
    ("int32", lambda im: im.astype(np.int32) - 1000),
    ("float32 in 0-1", lambda im: im.astype(np.float32) / 255),
    ("float64 in 0-255", lambda im: im.astype(np.float64)),
    ("float16 in 0-1", lambda im: im.astype(np.float16) / 255),
])
def test_other_depths_are_stretched_to_the_same_face(landmarker, photo, expected, name, make):
    faces = landmarker(make(photo))
    assert len(faces) == 1, name
    np.testing.assert_array_equal(faces[0].points, expected, err_msg=name)


def test_stretch_rounds_and_handles_flat_and_nan():
    ramp = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_8bit(ramp.astype(np.uint16) * 257), ramp)
    np.testing.assert_array_equal(to_8bit(np.array([0.0, 0.5, 1.0])), [0, 128, 255])
    assert not to_8bit(np.full((3, 3), 7.5)).any()           # flat: black, no division by 0
    np.testing.assert_array_equal(to_8bit(np.array([np.nan, 2.0, 4.0])), [0, 128, 255])
    src = np.array([0.0, 1.0], np.float32)
    to_8bit(src)
    assert src.tolist() == [0.0, 1.0]                         # the caller's array is left alone


def test_eight_bit_input_passes_without_a_copy(photo):
    assert checked_photo(photo) is photo
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    assert checked_photo(gray) is gray
    view = photo[:, ::-1]
    assert checked_photo(view).flags.c_contiguous


def test_views_and_single_channel_arrays_work(landmarker, photo):
    # A mirrored view (negative strides) finds the mirrored face.
    mirrored = landmarker(photo[:, ::-1])
    assert len(mirrored) == 1
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    a, b = landmarker(gray), landmarker(gray[:, :, None])
    assert len(a) == len(b) == 1
    np.testing.assert_array_equal(a[0].points, b[0].points)


# --- threads ------------------------------------------------------------------------------------
def thread_photos() -> list[np.ndarray]:
    photos = [read(n) for n in (ONE_FACE, *PAIR, *GROUP)]
    return photos + [cv2.resize(photos[0], (640, 480))]


def same_faces(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x.points, y.points) and x.box == y.box
                                    for x, y in zip(a, b))


def test_a_shared_landmarker_gives_every_thread_the_sequential_results(landmarker):
    """The class doc's promise: one Landmarker shared by threads is safe (its lock serialises
    calls). Without the lock this mixes up the MTCNN and cascade nets' outputs: 63 of 120 calls
    wrong and 4 raised on 4 threads when it was measured."""
    photos = thread_photos()
    sequential = [landmarker(p) for p in photos]
    calls = [k % len(photos) for k in range(2 * len(photos))]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda k: landmarker(photos[k]), calls))
    wrong = [k for k, r in zip(calls, results) if not same_faces(r, sequential[k])]
    assert not wrong, f"{len(wrong)} of {len(calls)} threaded calls differ"


def test_one_landmarker_per_thread_runs_in_parallel_with_the_same_results(landmarker):
    photos = thread_photos()
    sequential = [landmarker(p) for p in photos]
    own = [Landmarker() for _ in range(2)]  # each with its own cascade and detector nets

    def work(lm):
        return [lm(p) for p in photos]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(work, own))
    for run in runs:
        assert all(same_faces(r, sequential[k % len(photos)]) for k, r in enumerate(run))
