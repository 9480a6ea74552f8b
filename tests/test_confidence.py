"""Confidence per point and face (common/confidence.py): the fitted model on the committed
sample's test faces (faces the nets never saw), boxes that hold no face, the Landmarker's
threshold, the JSON fields, and fitting on the sample's training faces."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.box import Box
from common.cascade import Cascade
from common.confidence import (CONFIDENCE_FILE, FEATURES, KINDS, ConfidenceModel, auc, beside, collect,
                               point_features, score, turned)
from common.detectors import Detection
from common.landmarker import MIN_CONFIDENCE, Face, Landmarker, Region
from common.netfiles import resolve_model
from common.nets import POINTS
from conftest import run_module


@pytest.fixture(scope="module")
def cascade() -> Cascade:
    return Cascade(resolve_model())


@pytest.fixture(scope="module")
def scored(cascade, test_faces):
    """(listed-box confidences, errors), (non-face box confidences) on the sample's test faces."""
    rng = np.random.default_rng(3)
    grays = [s.load_gray() for s in test_faces]
    pts, pconf, fconf = score(cascade, grays, [s.box for s in test_faces])
    err = np.linalg.norm(pts - np.stack([s.points for s in test_faces]), axis=2) / \
        np.array([s.box.width for s in test_faces])[:, None]
    imgs, boxes = [], []
    for s, g in zip(test_faces, grays):
        imgs.append(g), boxes.append(beside(s.box, g.shape, rng))
        img, box, _ = turned(g, s, 2)  # upside down
        imgs.append(img), boxes.append(box)
    _, nf_pconf, nf_fconf = score(cascade, imgs, boxes)
    return pconf, fconf, err, nf_pconf, nf_fconf


def test_fitted_file_loads():
    model = ConfidenceModel.load()
    data = json.loads(CONFIDENCE_FILE.read_text())
    assert data["features"] == list(FEATURES)
    assert model.point_weights.shape == model.face_weights.shape == (1 + 2 * len(FEATURES),)
    assert data["about"]["training_list"].endswith("trainImageList.txt")
    # More disagreement, less confidence: the face model's weights on the mean logged
    # features sum below zero, and so do the point model's on the point's own features.
    assert model.face_weights[1:1 + len(FEATURES)].sum() < 0
    assert model.point_weights[1:1 + len(FEATURES)].sum() < 0


def test_the_unmirrored_cascade_has_its_own_model(test_faces):
    """Without test-time mirroring the nets' estimates are not averaged with their mirrored
    ones, so they disagree more: the model fitted on the mirrored cascade would doubt real
    faces; the one fitted without mirroring (model/confidence_nomirror.json), which a
    Landmarker without mirroring takes by default, does not."""
    from common.confidence import NO_MIRROR_FILE
    from common.landmarker import Landmarker
    cascade = Cascade(resolve_model(), mirror=False)
    grays, boxes = [s.load_gray() for s in test_faces], [s.box for s in test_faces]
    _, _, own = score(cascade, grays, boxes, ConfidenceModel.load(NO_MIRROR_FILE))
    _, _, other = score(cascade, grays, boxes, ConfidenceModel.load(CONFIDENCE_FILE))
    assert np.median(own) > 0.9 and np.mean(own > 0.5) >= 0.9
    assert np.mean(own) > np.mean(other), (np.mean(own), np.mean(other))
    data = json.loads(NO_MIRROR_FILE.read_text())
    assert data["features"] == list(FEATURES) and data["about"]["made_by"].endswith("--no-mirror")
    assert Landmarker(mirror=False).confidence.about["made_by"].endswith("--no-mirror")


def test_real_faces_are_confident_and_non_faces_are_not(scored):
    pconf, fconf, err, nf_pconf, nf_fconf = scored
    for c in (pconf, fconf, nf_pconf, nf_fconf):
        assert np.all((c >= 0) & (c <= 1))
    assert np.median(fconf) > 0.9
    assert np.mean(fconf > 0.5) >= 0.9
    assert np.mean(pconf > 0.5) >= 0.95
    # Boxes beside the face and upside-down faces: nearly all below the default threshold.
    assert np.mean(nf_fconf < MIN_CONFIDENCE) >= 0.9
    assert np.median(nf_fconf) < 0.02
    assert auc(np.r_[fconf, nf_fconf], np.r_[np.ones(len(fconf), bool), np.zeros(len(nf_fconf), bool)]) > 0.99


def test_confidence_follows_the_error(cascade, test_faces):
    """Boxes shifted by up to 30% of the face: the points whose error is over 5% of the box
    width get less confidence than the others."""
    rng = np.random.default_rng(5)
    grays, boxes, truth = [], [], []
    for s in test_faces:
        g = s.load_gray()
        for shift in (0.0, 0.15, 0.3):
            a = rng.uniform(0, 2 * np.pi)
            grays.append(g)
            boxes.append(s.box.moved(shift * s.box.width * np.cos(a), shift * s.box.height * np.sin(a)))
            truth.append(s.points)
    pts, pconf, fconf = score(cascade, grays, boxes)
    widths = np.array([s.box.width for s in test_faces for _ in range(3)])
    err = np.linalg.norm(pts - np.stack(truth), axis=2) / widths[:, None]
    assert 0.05 < np.mean(err > 0.05) < 0.95, "the shifts should give both hits and misses"
    assert auc(pconf.ravel(), (err <= 0.05).ravel()) > 0.85
    assert auc(fconf, err.mean(axis=1) <= 0.05) > 0.85


def test_features_are_zero_for_missing_levels(cascade, test_faces):
    s = test_faces[0]
    est, nets = cascade.run([s.load_gray()], [s.box], levels=1)
    f = point_features(est, nets, np.array([s.box.width]))
    assert f.shape == (1, len(POINTS), len(FEATURES))
    assert np.all(f[..., 0] > 0) and np.all(f[..., 1:] == 0)
    # Run and estimates give the same points: recording costs no second pass.
    assert np.array_equal(cascade.run([s.load_gray()], [s.box])[0][-1],
                          cascade.estimates([s.load_gray()], [s.box])[-1])


def test_face_json_carries_confidences():
    pts = np.arange(10, dtype=float).reshape(5, 2)
    old = Face(Box(0, 10, 0, 10), pts)  # constructors without confidences still work
    assert old.confidence is None and "confidence" not in old.as_dict()
    face = Face(Box(0, 10, 0, 10), pts, 0.0, 0.99, 0.8766, np.array([0.9, 0.8, 0.7, 0.6, 0.5]))
    d = face.as_dict()
    assert d["confidence"] == 0.877
    assert d["point_confidence"] == {"LE": 0.9, "RE": 0.8, "N": 0.7, "LM": 0.6, "RM": 0.5}
    assert face.scaled(2.0).confidence == face.confidence


def test_min_confidence_drops_a_non_face(cascade, test_faces):
    s = test_faces[1]
    image = s.load_color()
    lm = Landmarker(detector="haar", cascade=cascade)
    assert lm.min_confidence == MIN_CONFIDENCE
    far = beside(s.box, image.shape[:2], np.random.default_rng(0))
    regions = [Region(s.box, 0.0, Detection(s.box, 0.99)), Region(far, 0.0, Detection(far, 0.9))]
    kept = lm.landmarks(image, regions)
    assert len(kept) == 1 and kept[0].box == s.box and kept[0].confidence > 0.5
    both = lm.landmarks(image, regions, min_confidence=0.0)
    assert len(both) == 2 and min(f.confidence for f in both) < MIN_CONFIDENCE
    points, pconf, fconf = lm.judge(image, regions)
    assert points.shape == (2, 5, 2) and pconf.shape == (2, 5) and fconf[0] > fconf[1]
    with pytest.raises(ValueError, match="min_confidence"):
        Landmarker(detector="haar", cascade=cascade, min_confidence=1.5)


def test_predict_reports_and_thresholds_confidence(test_faces, tmp_path):
    image = str(test_faces[0].image_path)
    out = json.loads(run_module("common.predict", image, "--json", "--detector", "haar").stdout)
    face = out[0]["faces"][0]
    assert 0.5 < face["confidence"] <= 1.0
    assert list(face["point_confidence"]) == list(POINTS)
    text = run_module("common.predict", image, "--detector", "haar", "--min-confidence", "1").stdout
    assert "no face found" in text


def test_fit_on_the_sample(cascade, train_faces, tmp_path):
    """Fitting on 120 of the sample's training faces gives a model that tells its own
    non-face boxes from faces and predicts about the rate it was fitted on."""
    out = tmp_path / "confidence.json"
    run_module("common.confidence", "--fit", "--data", train_faces[0].image_path.parent.parent,
               "--faces", 120, "--quiet", "--out", out)
    model = ConfidenceModel.load(out)
    fit = model.about["fit"]
    assert model.about["faces"] == 120 and set(model.about["boxes"]) == set(KINDS)
    assert abs(fit["face_rate_predicted"] - fit["face_rate_observed"]) < 0.02
    data = collect(cascade, train_faces[150:200], np.random.default_rng(9), progress=False)
    _, fconf = model.predict(data["features"])
    is_face = data["kind"] <= KINDS.index("degraded")
    assert auc(fconf, is_face) > 0.97
