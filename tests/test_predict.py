"""`python -m common.predict` on real photos, a photo without a face, bad files and a video."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_module
from landmark_photos import (ONE_FACE, as_box, check_face, listed, mean_error, no_face,
                             one_face_path, rolled, two_faces)


def test_predict_json_on_real_photos(tmp_path):
    pair, boxes = two_faces()
    cv2.imwrite(str(tmp_path / "pair.png"), pair)
    proc = run_module("common.predict", one_face_path(), tmp_path / "pair.png", "--json")
    results = json.loads(proc.stdout)
    assert [r["file"] for r in results] == [str(one_face_path()), str(tmp_path / "pair.png")]

    one = results[0]
    assert (one["width"], one["height"]) == (250, 250)
    assert len(one["faces"]) == 1
    face = one["faces"][0]
    box = as_box(face["box"])
    truth = listed(ONE_FACE)
    assert box.iou(truth.box) > 0.6
    check_face(box, face["points"])
    assert mean_error(face["points"], truth.points, truth.box) < 0.12

    two = results[1]
    assert (two["width"], two["height"]) == (500, 250)
    assert len(two["faces"]) >= 2
    for b in boxes:
        best = max(two["faces"], key=lambda f: as_box(f["box"]).iou(b))
        assert as_box(best["box"]).iou(b) > 0.6
        check_face(as_box(best["box"]), best["points"])


def test_predict_finds_a_tilted_head_and_nothing_in_a_blank_photo(tmp_path):
    img, truth = rolled(ONE_FACE, 70)
    cv2.imwrite(str(tmp_path / "tilted.png"), img)
    cv2.imwrite(str(tmp_path / "blank.png"), np.zeros((240, 320, 3), np.uint8))
    proc = run_module("common.predict", tmp_path / "tilted.png", tmp_path / "blank.png", "--json")
    tilted, blank = json.loads(proc.stdout)
    (face,) = tilted["faces"]
    assert abs(face["roll"] + 70) < 10
    assert mean_error(face["points"], truth, listed(ONE_FACE).box) < 0.05
    assert blank["faces"] == [] and "error" not in blank
    # The Haar detector finds it only through the rotation search.
    proc = run_module("common.predict", tmp_path / "tilted.png", "--json", "--detector", "haar", "--upright")
    assert json.loads(proc.stdout)[0]["faces"] == []
    proc = run_module("common.predict", tmp_path / "tilted.png", "--json", "--detector", "haar")
    (face,) = json.loads(proc.stdout)[0]["faces"]
    assert mean_error(face["points"], truth, listed(ONE_FACE).box) < 0.08


def test_predict_writes_drawn_images_and_reports_no_face(tmp_path):
    cv2.imwrite(str(tmp_path / "noface.jpg"), no_face())
    out = tmp_path / "out"
    proc = run_module("common.predict", one_face_path(), tmp_path / "noface.jpg", "--out", out)
    assert "1 face" in proc.stdout and "LE (" in proc.stdout
    assert "noface.jpg (500x120): no face found" in proc.stdout
    drawn = cv2.imread(str(out / one_face_path().name))
    original = cv2.imread(str(one_face_path()))
    assert drawn.shape == original.shape
    # Box and points are drawn: many pixels changed, and the changed ones turned greener.
    changed = np.abs(drawn.astype(int) - original.astype(int)).max(axis=2) > 60
    assert changed.sum() > 300
    greener = drawn[changed][:, 1].astype(int) - original[changed][:, 1].astype(int)
    assert np.median(greener) > 30
    assert (out / "noface.jpg").is_file()


def test_predict_unreadable_files(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a picture")
    proc = run_module("common.predict", junk, tmp_path / "missing.png", one_face_path(), check=False)
    assert proc.returncode == 0, "one file could be processed"
    assert f"cannot read {junk}: not an image" in proc.stderr
    assert "missing.png: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = run_module("common.predict", junk, "--json", check=False)
    assert proc.returncode == 1, "nothing could be processed"
    assert json.loads(proc.stdout) == [{"file": str(junk), "error": "not an image OpenCV can read"}]


def test_predict_missing_model_is_a_clear_message(tmp_path):
    proc = run_module("common.predict", one_face_path(), "--model", tmp_path / "empty", check=False)
    assert proc.returncode == 1
    assert "lacks level 1" in proc.stderr and "Traceback" not in proc.stderr


def test_predict_video_frame_by_frame(tmp_path):
    face = cv2.imread(str(one_face_path()))
    # Five frames of a face moving right, then one without a face.
    frames = [np.roll(face, 6 * i, axis=1) for i in range(5)] + [cv2.resize(no_face(), (250, 250))]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (250, 250))
    for f in frames:
        writer.write(f)
    writer.release()

    out = tmp_path / "out"
    proc = run_module("common.predict", video, "--json", "--out", out)
    (result,) = json.loads(proc.stdout)
    assert len(result["frames"]) == 6 and result["fps"] == 10
    for i, frame in enumerate(result["frames"][:5]):
        assert len(frame["faces"]) == 1, f"frame {i}"
        face = frame["faces"][0]
        check_face(as_box(face["box"]), face["points"])
        assert abs(face["points"]["N"][0] - (result["frames"][0]["faces"][0]["points"]["N"][0] + 6 * i)) < 6
    assert result["frames"][5]["faces"] == []
    written = cv2.VideoCapture(str(out / "clip.mp4"))
    count = 0
    while written.read()[0]:
        count += 1
    written.release()
    assert count == 6

    # --no-smooth: the tracker's raw points. The One Euro filter passes a track's first frame
    # through and trails the moving face after it (the default), so they part after frame 0.
    raw = json.loads(run_module("common.predict", video, "--json", "--no-smooth").stdout)[0]["frames"]
    nose = [[f["faces"][0]["points"]["N"][0] for f in frames_] for frames_ in (result["frames"][:5], raw[:5])]
    assert nose[0][0] == pytest.approx(nose[1][0], abs=0.01)
    assert max(abs(a - b) for a, b in zip(*nose)) > 0.05
    for i, x in enumerate(nose[1]):
        assert abs(x - (nose[1][0] + 6 * i)) < 6, f"raw frame {i}"


def test_jsonl_collection_streams_resumes_and_reports_bad_files(tmp_path):
    """A folder tree on two processes: one line per image, unreadable files reported and
    counted; an interrupted run (a cut-off last line) and a re-run lose and repeat nothing."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    cv2.imwrite(str(photos / "one.jpg"), cv2.imread(str(one_face_path())))
    pair, _ = two_faces()
    cv2.imwrite(str(photos / "sub" / "pair.png"), pair)
    (photos / "sub" / "junk.jpg").write_bytes(b"not a picture")
    (photos / "notes.txt").write_text("not an image name: not walked")
    out = tmp_path / "faces.jsonl"
    proc = run_module("common.predict", photos, "--jsonl", out, "--workers", 2)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_name = {Path(r["file"]).name: r for r in lines}
    assert sorted(by_name) == ["junk.jpg", "one.jpg", "pair.png"]
    assert len(by_name["one.jpg"]["faces"]) == 1 and len(by_name["pair.png"]["faces"]) >= 2
    assert "error" in by_name["junk.jpg"]
    assert "2 images" in proc.stderr and "1 unreadable" in proc.stderr

    # Interrupted while writing the last line: that image is done again, nothing else.
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:-1]) + text[-1][:20])
    cv2.imwrite(str(photos / "sub" / "new.jpg"), cv2.imread(str(one_face_path())))
    proc = run_module("common.predict", photos, "--jsonl", out)
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(Path(r["file"]).name for r in again) == ["junk.jpg", "new.jpg", "one.jpg", "pair.png"]
    assert "2 already in" in proc.stderr
    proc = run_module("common.predict", photos, "--jsonl", out)
    assert out.read_text().count("\n") == 4 and "4 already in" in proc.stderr


def test_jsonl_does_not_mix_with_json(tmp_path):
    proc = run_module("common.predict", one_face_path(), "--jsonl", tmp_path / "a.jsonl", "--json",
                      check=False)
    assert proc.returncode == 2 and "--jsonl" in proc.stderr and "Traceback" not in proc.stderr
