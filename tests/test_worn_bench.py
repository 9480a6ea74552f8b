"""benchmarks/worn.py's worn copies of the test split, on the committed sample's test faces
(the benchmark itself measures the cascade on them)."""
from __future__ import annotations

import numpy as np

from benchmarks.worn import SETS, make_set, worn_copy
from common.listfile import read_list


def test_a_worn_copy_keeps_the_size_and_wears_only_what_its_set_says(test_faces):
    face = test_faces[0]
    import cv2
    image = cv2.imread(str(face.image_path), cv2.IMREAD_COLOR)
    rng = lambda: np.random.default_rng([11, 0])  # noqa: E731
    small, blurred = worn_copy(image, face.box.width, SETS["small"], rng()), worn_copy(image, face.box.width, SETS["blurred"], rng())
    assert small.shape == blurred.shape == image.shape
    assert not np.array_equal(small, blurred)
    # The same draw of width: blurring takes detail away (less gradient energy) beyond shrinking.
    energy = lambda im: float(np.abs(np.diff(im.astype(np.float32), axis=1)).mean())  # noqa: E731
    assert energy(blurred) < energy(small) <= energy(image) * 1.01
    # A face drawn wider than it is is not enlarged: nothing worn leaves the photo as it was.
    assert np.array_equal(worn_copy(image, 1.0, SETS["small"], rng()), image)


def test_worn_sets_keep_the_listed_faces_and_are_made_once(test_faces, tmp_path):
    faces = test_faces[:3]
    listed = make_set("worn", faces, tmp_path)
    again = read_list(listed)
    assert [(f.box, f.points.tolist()) for f in again] == [(f.box, f.points.tolist()) for f in faces]
    first = listed.stat().st_mtime_ns
    assert make_set("worn", faces, tmp_path) == listed and listed.stat().st_mtime_ns == first
