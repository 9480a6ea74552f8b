"""How far to trust each point and each face: the cascade as its own judge.

Every level of the cascade runs several nets per point, and where a face is hard (or is no
face at all) they disagree and move the estimate far. From one pass (Cascade.run, no extra net
runs) each point gets these features, in box widths:

    l1_spread  spread of the level-1 nets that predict the point (F1, EN1, NM1) about their mean
    l2_move    how far level 2 moves level 1's estimate
    l2_split   distance between the two level-2 nets' estimates
    l3_split   distance between the two level-3 nets' estimates
    l3_move    how far level 3 moves level 2's estimate

Logistic regressions on their logarithms (fitted with numpy, model/confidence.json) turn them
into probabilities: per face, that all five points lie within 5% of the box width of the truth
(`confidence`); per point, that it does (`point_confidence`): the chance that the point is right
on a box that holds a face, times the chance that the box holds one (a third regression, on the
face's features), so that points are neither doubted on real faces nor trusted on false ones. They are fitted
on the TRAINING split only, on each face's listed box, on boxes jittered like a detector's
(the residual noise in model/box_rule_mtcnn.json) and on boxes that hold no face (cut beside
the face, or the face turned on its side or upside down), each labelled by its real error, so
the face confidence also tells false detector faces from real ones.

    python -m common.confidence --fit [--data DIR] [--faces N]    # writes model/confidence.json
    python -m common.confidence --fit --no-mirror                 # model/confidence_nomirror.json
    python -m common.confidence --report [--data DIR] [--wild FILE.json]
                                        # test split: AUCs, failure rates, result/confidence_reliability.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from common.box import Box, Boxes
from common.image import degraded
from common.nets import POINTS
from common.paths import MODEL_DIR, RESULT_DIR, rel

CONFIDENCE_FILE = MODEL_DIR / "confidence.json"
# The same model fitted on the cascade without test-time mirroring (`--no-mirror`): its nets'
# disagreements are larger, so the mirrored model's weights would doubt its faces.
NO_MIRROR_FILE = MODEL_DIR / "confidence_nomirror.json"
FEATURES = ("l1_spread", "l2_move", "l2_split", "l3_split", "l3_move")
# Within this fraction of the box width a point counts as right (the project's failure line).
WITHIN = 0.05
# The nets saw every training face: there their mean error is 0.90% of the box width against
# 1.09% on the test split (listed boxes, `python -m common.confidence --fit`'s run), at the same
# features; 0.94% against 1.10% (1.17x) for the release trained on worn photos
# (`common.evaluate --list trainImageList.txt --level 3`, 2026-12-02), so the scale stays.
# Training errors are scaled by the ratio before labelling, so the confidence is
# calibrated for new faces (without it: 0.978 predicted against 0.954 observed on the test split).
ERROR_SCALE = 1.2
# Features are logged after adding this (box widths): below it differences mean nothing.
EPS = 0.002


class ConfidenceMissing(FileNotFoundError):
    pass


# --- features -------------------------------------------------------------------------------
def point_features(estimates: Sequence[np.ndarray], nets: Sequence[list], widths: np.ndarray) -> np.ndarray:
    """(N, 5, F) features (FEATURES, those the levels run allow; missing ones are 0) of one
    Cascade.run: its estimates per level, its per-level (spec, points) lists, and the box
    widths (N,) of the boxes the cascade ran on. A few array operations per level: it runs
    on every face the Landmarker finds."""
    n = len(widths)
    out = np.zeros((n, len(POINTS), len(FEATURES)))
    if n == 0:
        return out
    w = np.asarray(widths, dtype=np.float64)[:, None]
    if nets and nets[0]:
        specs = tuple(spec for spec, _ in nets[0])
        average, which = _level1_plan(specs)
        found = np.concatenate([pts for _, pts in nets[0]], axis=1)  # (N, outputs, 2)
        mean = np.einsum("po,nod->npd", average, found)
        sq = ((found - mean[:, which]) ** 2).sum(axis=2)              # (N, outputs)
        out[..., 0] = np.sqrt(sq @ average.T) / w
    for level, move, split in ((2, 1, 2), (3, 4, 3)):
        if len(estimates) < level:
            break
        out[..., move] = np.linalg.norm(estimates[level - 1] - estimates[level - 2], axis=2) / w
        specs = tuple(spec for spec, _ in nets[level - 1])
        points, first, second = _pairs_plan(specs)
        if points:
            found = np.stack([pts[:, 0] for _, pts in nets[level - 1]])  # (K, N, 2)
            out[:, points, split] = np.linalg.norm(found[first] - found[second], axis=2).T / w
    return out


@lru_cache(maxsize=None)
def _level1_plan(specs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(averaging matrix (5, outputs): each point's mean over the outputs that predict it, the
    point of each output) for level-1 nets `specs`, outputs in net order."""
    which = np.array([i for spec in specs for i in spec.point_indices])
    average = np.zeros((len(POINTS), len(which)))
    average[which, np.arange(len(which))] = 1.0
    average /= np.maximum(average.sum(axis=1, keepdims=True), 1.0)
    return average, which


@lru_cache(maxsize=None)
def _pairs_plan(specs: tuple) -> tuple[list[int], list[int], list[int]]:
    """(points, first net, second net): the first two nets of `specs` (one level) per point."""
    by_point: dict[int, list[int]] = {}
    for k, spec in enumerate(specs):
        by_point.setdefault(spec.point_indices[0], []).append(k)
    pairs = [(p, ks[0], ks[1]) for p, ks in sorted(by_point.items()) if len(ks) >= 2]
    return [p for p, _, _ in pairs], [a for _, a, _ in pairs], [b for _, _, b in pairs]


def point_inputs(features: np.ndarray) -> np.ndarray:
    """(N, 5, 2F) regression inputs per point: its own logged features and the face's mean."""
    logf = np.log(features + EPS)
    face = np.broadcast_to(logf.mean(axis=1, keepdims=True), logf.shape)
    return np.concatenate([logf, face], axis=2)


def face_inputs(features: np.ndarray) -> np.ndarray:
    """(N, 2F) regression inputs per face: mean and max over the points of the logged features."""
    logf = np.log(features + EPS)
    return np.concatenate([logf.mean(axis=1), logf.max(axis=1)], axis=1)


# --- the model ------------------------------------------------------------------------------
def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """Weights (bias first) of a logistic regression of labels y (0/1) on inputs x (M, D),
    by Newton's method with a small ridge on the non-bias weights (inputs standardised first,
    so the ridge treats them alike)."""
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([np.ones((len(x), 1)), (x - mu) / sd])
    w = np.zeros(z.shape[1])
    ridge = np.full(z.shape[1], l2 * len(x))
    ridge[0] = 0.0
    for _ in range(iterations):
        p = sigmoid(z @ w)
        grad = z.T @ (p - y) + ridge * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(ridge) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    # Back to raw inputs: w0 + sum w_i (x_i - mu_i) / sd_i.
    raw = w[1:] / sd
    return np.concatenate([[w[0] - (raw * mu).sum()], raw])


@dataclass(frozen=True)
class ConfidenceModel:
    point_weights: np.ndarray  # (1 + 2F,) bias first, on point_inputs: fitted on face boxes only
    face_weights: np.ndarray   # (1 + 2F,) bias first, on face_inputs
    real_weights: np.ndarray   # (1 + 2F,) bias first, on face_inputs: the box holds a face
    about: dict

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point confidences (N, 5), face confidences (N,)) for features (N, 5, F)."""
        pw, fw, rw = self.point_weights, self.face_weights, self.real_weights
        inputs = face_inputs(features)
        real = sigmoid(rw[0] + inputs @ rw[1:])
        points = sigmoid(pw[0] + point_inputs(features) @ pw[1:]) * real[:, None]
        faces = sigmoid(fw[0] + inputs @ fw[1:])
        return points, faces

    def save(self, path: Path = CONFIDENCE_FILE) -> None:
        Path(path).write_text(json.dumps({
            "about": self.about, "features": list(FEATURES), "eps": EPS,
            **{f"{name}_weights": [round(float(v), 6) for v in w] for name, w in
               (("point", self.point_weights), ("face", self.face_weights), ("real", self.real_weights))}},
            indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "ConfidenceModel":
        path = Path(path or CONFIDENCE_FILE)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfidenceMissing(f"no confidence model at {rel(path)}; fit one with "
                                    "`python -m common.confidence --fit`") from None
        if (tuple(data.get("features", ())) != FEATURES or data.get("eps") != EPS
                or "real_weights" not in data):
            raise ValueError(f"{rel(path)} was fitted as an older model (features "
                             f"{data.get('features')}); fit it again with `python -m common.confidence --fit`")
        return cls(*(np.asarray(data[f"{name}_weights"]) for name in ("point", "face", "real")),
                   data.get("about", {}))


_defaults: dict[bool, ConfidenceModel] = {}


def model_file(mirror: bool = True) -> Path:
    return CONFIDENCE_FILE if mirror else NO_MIRROR_FILE


def default_model(mirror: bool = True) -> ConfidenceModel:
    """model/confidence.json (with `mirror`, the cascade's default) or
    model/confidence_nomirror.json, read once."""
    if mirror not in _defaults:
        _defaults[mirror] = ConfidenceModel.load(model_file(mirror))
    return _defaults[mirror]


def score(cascade, grays, boxes: Sequence[Box], model: ConfidenceModel | None = None):
    """(points (N, 5, 2) after the last level, point confidences (N, 5), face confidences (N,))
    for face boxes `boxes` in images `grays` (face i's gray image): one cascade pass. For
    checking whether detector boxes hold faces at all, as for the points."""
    estimates, nets = cascade.run(grays, boxes)
    feats = point_features(estimates, nets, Boxes.of(boxes).width if len(boxes) else np.zeros(0))
    point_conf, face_conf = (model or default_model()).predict(feats)
    return estimates[-1], point_conf, face_conf


# --- fitting data: boxes around training faces --------------------------------------------
KINDS = ("listed", "jittered", "degraded", "beside", "turned")


def residual_cov(detector: str = "mtcnn") -> np.ndarray:
    """(4, 4) covariance of a placed detector box's dx, dy, sx, sy against the true box (the
    training list's, from the box rule file)."""
    from common.boxrule import rule_path
    return np.asarray(json.loads(rule_path(detector).read_text())["residual"]["train"]["cov"])


def jittered(box: Box, rng: np.random.Generator, cov: np.ndarray, strength: float) -> Box:
    dx, dy, sx, sy = rng.multivariate_normal([0.0, 0.0, 1.0, 1.0], cov * strength ** 2)
    cx, cy = box.center
    return Box.around(cx + dx * box.width, cy + dy * box.height,
                      max(sx, 0.5) * box.width / 2, max(sy, 0.5) * box.height / 2)


def beside(box: Box, shape: tuple[int, int], rng: np.random.Generator) -> Box:
    """A box of about the face's size that overlaps the face box little (IoU < 0.15), mostly
    inside the image: background, hair, shoulders, or an edge of the face."""
    h, w = shape
    best = None
    for _ in range(30):
        s = rng.uniform(0.5, 1.1)
        bw, bh = s * box.width, s * box.height
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        cand = Box.around(cx, cy, bw / 2, bh / 2)
        iou = cand.iou(box)
        if best is None or iou < best[0]:
            best = (iou, cand)
        if iou < 0.15:
            break
    return best[1]


def turned(gray: np.ndarray, sample, k: int) -> tuple[np.ndarray, Box, np.ndarray]:
    """The image turned by k quarter turns counter-clockwise, the face box about the turned
    face's centre (same width and height: a detector's box over a face on its side) and the
    turned true points."""
    h, w = gray.shape[:2]
    img = np.ascontiguousarray(np.rot90(gray, k))
    pts = np.asarray(sample.points, dtype=np.float64)
    cx, cy = sample.box.center
    for _ in range(k):  # one quarter turn counter-clockwise: (x, y) -> (y, w - 1 - x)
        pts = np.stack([pts[:, 1], w - 1 - pts[:, 0]], axis=1)
        cx, cy = cy, w - 1 - cx
        h, w = w, h
    return img, Box.around(cx, cy, sample.box.width / 2, sample.box.height / 2), pts


def collect(cascade, samples, rng: np.random.Generator, jitter: float = 1.0, per_kind=None,
            chunk: int = 500, progress: bool = True, cov: np.ndarray | None = None) -> dict:
    """Features and real errors of boxes around `samples` (list-file faces): per face its
    listed box, `per_kind['jittered']` jittered boxes (detector residual noise times
    `jitter`), and boxes with no face (`beside`, `turned`) for a share of the faces.
    Errors are over the true box width. Returns arrays features (M, 5, F), errors (M, 5),
    kind (M,) indices into KINDS, face (M,) index into samples."""
    from common.cascade import load_chunks
    per_kind = {"listed": 1.0, "jittered": 2.0, "degraded": 1.0, "beside": 0.5, "turned": 0.25,
                **(per_kind or {})}
    cov = residual_cov() if cov is None else cov
    feats, errs, kinds, faces = [], [], [], []
    offset = 0
    for part, grays in load_chunks(samples, chunk, progress, "confidence boxes"):
        imgs, boxes, truth, widths, kind, face = [], [], [], [], [], []

        def add(img, box, pts, width, k, i):
            imgs.append(img), boxes.append(box), truth.append(pts), widths.append(width)
            kind.append(KINDS.index(k)), face.append(offset + i)

        for i, (s, g) in enumerate(zip(part, grays)):
            for k in KINDS:
                count = int(per_kind[k]) + (rng.random() < per_kind[k] % 1)
                for _ in range(count):
                    if k == "listed":
                        add(g, s.box, s.points, s.box.width, k, i)
                    elif k == "jittered":
                        add(g, jittered(s.box, rng, cov, jitter), s.points, s.box.width, k, i)
                    elif k == "degraded":
                        add(degraded(g, s.box.width, rng), jittered(s.box, rng, cov, jitter), s.points, s.box.width, k, i)
                    elif k == "beside":
                        add(g, beside(s.box, g.shape[:2], rng), s.points, s.box.width, k, i)
                    else:
                        img, box, pts = turned(g, s, int(rng.integers(1, 4)))
                        add(img, box, pts, s.box.width, k, i)
        estimates, nets = cascade.run(imgs, boxes)
        feats.append(point_features(estimates, nets, Boxes.of(boxes).width))
        errs.append(np.linalg.norm(estimates[-1] - np.stack(truth), axis=2) / np.asarray(widths)[:, None])
        kinds.append(kind), faces.append(face)
        offset += len(part)
    return {"features": np.concatenate(feats), "errors": np.concatenate(errs),
            "kind": np.concatenate(kinds), "face": np.concatenate(faces)}


def fit(data: dict, l2: float = 1e-3, error_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point weights, face weights, real-face weights) on collected data, its errors times
    `error_scale` (the nets saw the training faces: at the same features their errors there are
    smaller than on new faces). The point model sees only boxes that hold a face: fitted with
    the others too, it learnt that points are often wrong and doubted real faces' points (60-80%
    right in its bins below 0.5); the real-face model supplies the rest."""
    f, e = data["features"], data["errors"] * error_scale
    holds_face = data["kind"] < KINDS.index("beside")
    pw = fit_logistic(point_inputs(f[holds_face]).reshape(-1, 2 * len(FEATURES)),
                      (e[holds_face] <= WITHIN).ravel().astype(float), l2)
    fw = fit_logistic(face_inputs(f), (e <= WITHIN).all(axis=1).astype(float), l2)
    rw = fit_logistic(face_inputs(f), holds_face.astype(float), l2)
    return pw, fw, rw


# --- measures -------------------------------------------------------------------------------
def auc(scores: np.ndarray, good: np.ndarray) -> float:
    """Probability that a random good item scores above a random bad one (ties count half)."""
    scores, good = np.asarray(scores, dtype=np.float64), np.asarray(good, dtype=bool)
    npos, nneg = good.sum(), (~good).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[good].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def kept_failures(conf: np.ndarray, failed: np.ndarray, keep: float = 0.9) -> tuple[float, float]:
    """(failure rate of all, failure rate of the `keep` most confident)."""
    order = np.argsort(-np.asarray(conf), kind="mergesort")
    top = order[:int(round(keep * len(order)))]
    return float(np.mean(failed)), float(np.mean(np.asarray(failed)[top]))


def reliability(conf: np.ndarray, good: np.ndarray, bins: int = 10) -> list[dict]:
    """Per confidence bin: count, mean predicted, observed rate."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int((which == b).sum()),
             "predicted": float(conf[which == b].mean()) if (which == b).any() else None,
             "observed": float(good[which == b].mean()) if (which == b).any() else None}
            for b in range(bins)]


# --- the tool -------------------------------------------------------------------------------
def _samples(list_path: Path, limit: int | None):
    from common.listfile import read_list
    samples = read_list(list_path)
    if limit and limit < len(samples):  # evenly over the list
        samples = [samples[int(i)] for i in np.round(np.linspace(0, len(samples) - 1, limit)).astype(int)]
    return samples


def fit_command(args) -> int:
    from common.cascade import Cascade
    from common.paths import data_lists
    train_list, _ = data_lists(args.data)
    samples = _samples(train_list, args.faces)
    start = time.time()
    data = collect(Cascade(args.model, mirror=args.mirror), samples, np.random.default_rng(args.seed),
                   args.jitter, progress=not args.quiet)
    pw, fw, rw = fit(data, error_scale=args.error_scale)
    model = ConfidenceModel(pw, fw, rw, {})
    pc, fc = model.predict(data["features"])
    good = (data["errors"] * args.error_scale <= WITHIN)
    counts = {k: int((data["kind"] == i).sum()) for i, k in enumerate(KINDS)}
    about = {
        "what": "logistic regressions on log(feature + eps) (common.confidence): point_weights on "
                "[own features, face mean] (boxes that hold a face), face_weights and real_weights "
                "(the box holds a face) on [mean, max over points]; bias first; point confidence = "
                "point x real",
        "made_by": f"python -m common.confidence --fit --faces {len(samples)} --jitter {args.jitter:g} "
                   f"--error-scale {args.error_scale:g} --seed {args.seed}" + ("" if args.mirror else " --no-mirror"),
        "training_list": train_list.name, "faces": len(samples), "boxes": counts,
        "jitter": args.jitter, "error_scale": args.error_scale,
        "fit": {"face_rate_observed": round(float(good.all(axis=1).mean()), 4),
                "face_rate_predicted": round(float(fc.mean()), 4),
                "point_rate_observed": round(float(good.mean()), 4),
                "point_rate_predicted": round(float(pc.mean()), 4),
                "seconds": round(time.time() - start, 1)},
    }
    model = ConfidenceModel(pw, fw, rw, about)
    out = args.out or model_file(args.mirror)
    model.save(out)
    print(json.dumps(about, indent=1))
    print(f"wrote {rel(Path(out))}")
    return 0


def _summary(conf: np.ndarray, errors: np.ndarray, features: np.ndarray, point_conf: np.ndarray) -> dict:
    """AUC of the face confidence ranking failures (mean error > 5%) below successes, failure
    rates of all and of the most confident 90%, each feature's own AUC, calibration error."""
    failed = errors.mean(axis=1) > WITHIN
    good = (errors <= WITHIN).all(axis=1)
    rel_bins = reliability(conf, good)
    before, after = kept_failures(conf, failed)
    return {
        "faces": int(len(conf)), "failures": int(failed.sum()),
        "auc": round(auc(conf, ~failed), 4),
        "failure_rate": round(before, 5), "failure_rate_top90": round(after, 5),
        "feature_auc": {f: round(auc(-np.log(features[..., j] + EPS).mean(axis=1), ~failed), 4)
                        for j, f in enumerate(FEATURES)},
        "all5_observed": round(float(good.mean()), 4), "all5_predicted": round(float(conf.mean()), 4),
        "calibration_error": round(sum(b["count"] * abs(b["predicted"] - b["observed"])
                                       for b in rel_bins if b["count"]) / max(len(conf), 1), 4),
        "point_auc": round(auc(point_conf.ravel(), (errors <= WITHIN).ravel()), 4),
        "reliability": rel_bins,
        "point_reliability": reliability(point_conf.ravel(), (errors <= WITHIN).ravel()),
    }


def report_command(args) -> int:
    from common.boxrule import rule_path
    from common.cascade import Cascade
    from common.paths import data_lists
    from common.plotting import pyplot, save
    _, test_list = data_lists(args.data)
    samples = _samples(test_list, args.faces)
    model = ConfidenceModel.load(args.confidence or model_file(args.mirror))
    cov = np.asarray(json.loads(rule_path("mtcnn").read_text())["residual"]["test"]["cov"])
    data = collect(Cascade(args.model, mirror=args.mirror), samples, np.random.default_rng(args.seed), 1.0,
                   progress=not args.quiet, cov=cov)
    pc, fc = model.predict(data["features"])
    out = {"test_list": test_list.name, "faces": len(samples), "sets": {}}
    sets = {"CUHK test, listed boxes": data["kind"] == KINDS.index("listed"),
            "CUHK test, detector-like boxes": data["kind"] == KINDS.index("jittered"),
            "CUHK test, degraded photos": data["kind"] == KINDS.index("degraded")}
    for name, m in sets.items():
        out["sets"][name] = _summary(fc[m], data["errors"][m], data["features"][m], pc[m])
    nonface = data["kind"] >= KINDS.index("beside")
    face = data["kind"] == KINDS.index("listed")
    out["non_faces"] = {"boxes": int(nonface.sum()),
                        "auc_real_vs_non_face": round(auc(np.concatenate([fc[face], fc[nonface]]),
                                                          np.r_[np.ones(face.sum(), bool), np.zeros(nonface.sum(), bool)]), 4),
                        "share_below": {f"{t:g}": round(float((fc[nonface] < t).mean()), 4) for t in THRESHOLDS},
                        "real_faces_below": {f"{t:g}": round(float((fc[face] < t).mean()), 4) for t in THRESHOLDS}}
    if args.wild:
        wild_run = json.loads(Path(args.wild).read_text())
        photos, settings = wild_run["photos"], wild_run.get("settings", {})
        found = [p for p in photos if p.get("found") and "confidence" in p]
        if not found:
            print(f"error: {args.wild} holds no confidences (run benchmarks/wild.py --min-confidence 0 --json)",
                  file=sys.stderr)
            return 2
        conf = np.array([p["confidence"] for p in found])
        errs = np.array([p["point_errors"] for p in found]) / 100.0
        pconf = np.array([p["point_confidence"] for p in found])
        wild = _summary(conf, errs, np.ones(errs.shape + (len(FEATURES),)), pconf)
        wild.pop("feature_auc")
        false = np.array([c for p in photos for c in p.get("false_confidences", [])])
        wild["false_faces"] = int(len(false))
        wild["false_faces_below"] = {f"{t:g}": round(float((false < t).mean()), 4) if len(false) else None
                                     for t in THRESHOLDS}
        wild["found_faces_below"] = {f"{t:g}": round(float((conf < t).mean()), 4) for t in THRESHOLDS}
        wild["failures_below"] = {f"{t:g}": round(float((conf[errs.mean(axis=1) > WITHIN] < t).mean()), 4)
                                  for t in THRESHOLDS}
        out["sets"][f"wild photos ({settings.get('faces', len(photos))}, {settings.get('detector', '?')})"] = wild
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, key, title in ((axes[0], "reliability", "face: all five points within 5%"),
                           (axes[1], "point_reliability", "point: within 5%")):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for name, s in out["sets"].items():
            bins = [b for b in s[key] if b["count"] >= args.min_bin]
            ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", ms=4, label=name)
        ax.set_xlabel("predicted confidence (bin mean)")
        ax.set_ylabel("observed rate")
        ax.set_title(title)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Confidence reliability (fitted on the training split; bins of >= {args.min_bin} faces)")
    save(fig, args.figure, 110)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(markdown(out))
    print(f"wrote {rel(Path(args.figure))} and {rel(Path(args.json))}")
    return 0


THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5)


def markdown(out: dict) -> str:
    lines = ["| set | faces | failures | AUC | failure rate | top 90% | all five within 5%: predicted / observed | calibration error |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in out["sets"].items():
        lines.append(f"| {name} | {s['faces']} | {s['failures']} | {s['auc']:.3f} | {100 * s['failure_rate']:.2f}% | "
                     f"{100 * s['failure_rate_top90']:.2f}% | {s['all5_predicted']:.3f} / {s['all5_observed']:.3f} | "
                     f"{s['calibration_error']:.3f} |")
    lines += ["", "| set | " + " | ".join(FEATURES) + " |", "|---|" + "---|" * len(FEATURES)]
    for name, s in out["sets"].items():
        if "feature_auc" in s:
            lines.append(f"| {name} | " + " | ".join(f"{s['feature_auc'][f]:.3f}" for f in FEATURES) + " |")
    nf = out["non_faces"]
    lines += ["", f"Non-face boxes ({nf['boxes']}): AUC against listed faces {nf['auc_real_vs_non_face']:.4f}; "
              "share below threshold: " + ", ".join(f"{t}: {v:.3f}" for t, v in nf["share_below"].items()),
              "Listed faces below threshold: " + ", ".join(f"{t}: {v:.4f}" for t, v in nf["real_faces_below"].items())]
    for name, s in out["sets"].items():
        if "false_faces" in s:
            lines.append(f"{name}: {s['false_faces']} false faces; share below threshold: "
                         + ", ".join(f"{t}: {v}" for t, v in s["false_faces_below"].items()))
            lines.append("  found faces below threshold: " + ", ".join(f"{t}: {v}" for t, v in s["found_faces_below"].items()))
            lines.append("  failures below threshold: " + ", ".join(f"{t}: {v}" for t, v in s["failures_below"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from common.netfiles import MODEL_HELP
    from common.paths import DataMissing
    ap = argparse.ArgumentParser(prog="python -m common.confidence", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fit", action="store_true", help="fit on the training list, write --out")
    mode.add_argument("--report", action="store_true", help="measure on the test list (and --wild)")
    ap.add_argument("--data", help="CUHK data folder (default: $DEEP_LANDMARK_DATA, else dataset/train)")
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--faces", type=int, help="use this many faces of the list, evenly spread (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jitter", type=float, default=1.0,
                    help="--fit: detector box noise, times the mtcnn rule's residual spread (default 1)")
    ap.add_argument("--error-scale", type=float, default=ERROR_SCALE,
                    help=f"--fit: training errors are multiplied by this before labelling (default "
                         f"{ERROR_SCALE:g}: the nets' test/training error ratio)")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false",
                    help="the cascade without test-time mirroring (model/confidence_nomirror.json)")
    ap.add_argument("--out", type=Path, help="--fit: model file to write (default model/confidence.json, "
                                             "with --no-mirror model/confidence_nomirror.json)")
    ap.add_argument("--confidence", type=Path, help="--report: model file (default: --out's)")
    ap.add_argument("--wild", type=Path, help="--report: a benchmarks/wild.py --json file run with --min-confidence 0")
    ap.add_argument("--figure", type=Path, default=RESULT_DIR / "confidence_reliability.png")
    ap.add_argument("--json", type=Path, default=RESULT_DIR / "confidence.json")
    ap.add_argument("--min-bin", type=int, default=10, help="--report: bins with fewer faces are not drawn")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        return fit_command(args) if args.fit else report_command(args)
    except (DataMissing, ConfidenceMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def report_section(out: Path = RESULT_DIR) -> list[str]:
    """Markdown lines on the confidence for result/README.md, from `out`/confidence.json (none
    when it is missing): common.report appends them."""
    path = Path(out) / "confidence.json"
    if not path.is_file():
        return []
    return ["", "## Confidence", "",
            "Face confidence (common/confidence.py, fitted on the training split only): AUC of it "
            "ranking failures (mean error > 5% of the box width) below successes, the failure rate "
            "of all faces and of the 90% most confident, and calibration (predicted against observed "
            "rate of faces with all five points within 5%). Then each feature alone (face mean). "
            "Figure: `confidence_reliability.png`. Made by `python -m common.confidence --report "
            "[--wild FILE]`.", "", markdown(json.loads(path.read_text())), ""]
