"""Evaluation: errors() and summary() on hand-computed inputs, and the command line on the
sample with the level-1 nets trained in this session."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.cascade import Cascade
from common.metrics import errors, face_errors, result_name, summary
from common.nets import POINTS
from conftest import run_module, save_artifact


def test_errors_and_summary_hand_computed():
    truth = np.array([[[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]],
                      [[0, 0], [5, 5], [9, 9], [1, 2], [3, 4]]], dtype=float)
    offsets = np.array([[[3, 4], [0, 0], [6, 8], [-3, 0], [0, -1]],     # distances 5 0 10 3 1
                        [[5, 0], [0, 0], [0, 2], [-1.5, 2], [0, 0]]])    # distances 5 0 2 2.5 0
    widths = np.array([100.0, 50.0])
    err = errors(truth + offsets, truth, widths)
    np.testing.assert_allclose(err, [[0.05, 0.0, 0.10, 0.03, 0.01],
                                     [0.10, 0.0, 0.04, 0.05, 0.00]], atol=1e-12)
    s = summary(err)
    want_mean = {"LE": 0.075, "RE": 0.0, "N": 0.07, "LM": 0.04, "RM": 0.005}
    # failure is error > 0.05 (strictly): 0.05 itself is not a failure
    want_fail = {"LE": 0.5, "RE": 0.0, "N": 0.5, "LM": 0.0, "RM": 0.0}
    for p in POINTS:
        assert s[p]["mean_error"] == pytest.approx(want_mean[p])
        assert s[p]["failure_rate"] == pytest.approx(want_fail[p])
    assert s["mean_error"] == pytest.approx(0.038)
    assert s["failure_rate"] == pytest.approx(0.2)
    assert s["faces"] == 2


def test_face_errors_and_result_names(test_faces):
    pred = np.stack([f.points for f in test_faces[:4]]) + [3.0, 4.0]
    np.testing.assert_allclose(face_errors(pred, test_faces[:4]),
                               np.repeat(5.0 / np.array([f.box.width for f in test_faces[:4]])[:, None], 5, axis=1))
    assert [result_name(k) for k in ("F1", "1", "3")] == ["F1 alone", "level 1", "level 3"]
    assert result_name("2", level_word=False) == "2"


def test_errors_scale_with_box_width():
    truth = np.zeros((3, 5, 2))
    pred = truth + [1.0, 0.0]
    np.testing.assert_allclose(errors(pred, truth, [10, 20, 40])[:, 0], [0.1, 0.05, 0.025])


def test_evaluate_cli_on_sample(tmp_path, trained_level1, sample_dir, train_faces, test_faces):
    out_json, hist = tmp_path / "out.json", tmp_path / "hist.png"
    proc = run_module("common.evaluate", "--list", sample_dir / "testImageList.txt", "--level", 1,
                      "--model", trained_level1.model_root, "--json", out_json, "--hist", hist)
    assert "mean error, % of box width" in proc.stdout
    res = json.loads(out_json.read_text())
    assert res["level"] == 1 and res["faces"] == 100
    for p in POINTS:
        assert set(res[p]) == {"mean_error", "failure_rate"}
        assert 0 < res[p]["mean_error"] < 0.5 and 0 <= res[p]["failure_rate"] <= 1
    assert res["mean_error"] == pytest.approx(np.mean([res[p]["mean_error"] for p in POINTS]))
    assert hist.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_artifact(out_json, "evaluate_level1.json")
    save_artifact(hist, "evaluate_level1.png")

    # The same numbers from the cascade in this process.
    pred = Cascade(trained_level1.model_root, levels=1).estimates_for_samples(test_faces, 1, progress=False)[0]
    truth = np.stack([f.points for f in test_faces])
    err = errors(pred, truth, np.array([f.box.width for f in test_faces]))
    for p, i in zip(POINTS, range(5)):
        assert res[p]["mean_error"] == pytest.approx(err[:, i].mean(), rel=1e-9)

    # Even briefly trained, level 1 beats placing the mean training shape in every box.
    mean_shape = np.mean([f.box.to_relative(f.points) for f in train_faces], axis=0)
    baseline = np.stack([f.box.to_absolute(mean_shape) for f in test_faces])
    base_err = errors(baseline, truth, np.array([f.box.width for f in test_faces])).mean()
    print(f"level 1 after brief training: {100 * res['mean_error']:.2f}% of box width; "
          f"mean shape: {100 * base_err:.2f}%")
    assert res["mean_error"] < 0.9 * base_err
    assert res["mirror"] is True and "test-time mirroring" in proc.stdout


def test_evaluate_cli_without_mirroring_is_the_plain_cascade(tmp_path, trained_level1, sample_dir, test_faces):
    out_json = tmp_path / "out.json"
    proc = run_module("common.evaluate", "--list", sample_dir / "testImageList.txt", "--level", 1, "--no-mirror",
                      "--model", trained_level1.model_root, "--json", out_json, "--hist", tmp_path / "h.png")
    res = json.loads(out_json.read_text())
    assert res["mirror"] is False and "no mirroring" in proc.stdout
    pred = Cascade(trained_level1.model_root, levels=1, mirror=False).estimates_for_samples(
        test_faces, 1, progress=False)[0]
    err = face_errors(pred, test_faces)
    assert res["mean_error"] == pytest.approx(err.mean(), rel=1e-9)


def test_evaluate_cli_reports_user_mistakes(tmp_path, trained_level1, sample_dir):
    proc = run_module("common.evaluate", "--list", tmp_path / "missing.txt", "--level", 1,
                      "--model", trained_level1.model_root, check=False)
    assert proc.returncode != 0 and "list file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    # only level 1 was trained: asking for level 2 names what is missing
    proc = run_module("common.evaluate", "--list", sample_dir / "testImageList.txt", "--level", 2,
                      "--model", trained_level1.model_root, "--hist", tmp_path / "h.png", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "lacks level 2" in proc.stderr and "2_LE21" in proc.stderr


def test_detector_boxes_with_no_face_found_is_a_clear_error(tmp_path, trained_level1):
    import cv2
    cv2.imwrite(str(tmp_path / "blank.jpg"), np.full((250, 250), 128, np.uint8))
    (tmp_path / "list.txt").write_text("blank.jpg 80 170 90 180 100 120 150 120 125 140 105 160 145 160\n")
    proc = run_module("common.evaluate", "--list", tmp_path / "list.txt", "--level", 1, "--boxes", "detector",
                      "--model", trained_level1.model_root, "--hist", tmp_path / "h.png", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "the detector found none of the listed faces" in proc.stderr
