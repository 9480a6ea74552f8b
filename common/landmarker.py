"""The one entry point from a photo to five points per face:

    from common.landmarker import Landmarker
    faces = Landmarker()(image)            # image: BGR, BGRA or gray array, as cv2.imread gives
                                           # (16-bit or float: stretched to 8 bits)
    faces = Landmarker(detector="haar")(image)

Steps: the detector searches the image (BlazeFace, the default, finds faces at every roll; MTCNN
and Haar search turned copies too: common.orientation), each face's detector box is mapped to
the training box convention by the detector's fitted rule (common.boxrule), and the cascade runs
on it; its own nets' agreement gives each face a confidence (common.confidence), and faces below
`min_confidence` are dropped (at SURE_SHARE of it when the detector is sure of the face):
the verifier against false faces, with MTCNN's O-Net as a second opinion where the confidence
leaves a face in doubt (SECOND_OPINION_BELOW). A face rolled by more than UPRIGHT_ROLL degrees
is first turned upright: the cascade runs on an upright copy of the region around it (the roll
taken from the detector's eye points) and its points are mapped back into the photo. `predict`,
the web app, `evaluate --boxes detector` and the benchmarks all go through this class.
"""
from __future__ import annotations

import argparse
import functools
import logging
import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from common.align import TEMPLATE_SIZE, align_matrix, aligned_crop, check_size
from common.box import Box, scale_points
from common.boxrule import BoxRule, load_rule, rule_path
from common.detectors import (DEFAULT_DETECTOR, FALLBACK_DETECTOR, Detection, Detector, LooksAgain,
                              WeightsMissing, detector_names, load_detector)
from common.image import checked_photo, halving_to_photo, halvings, patch_spread, photo_scope, to_gray
from common.netfiles import MODEL_HELP
from common.nets import POINTS
from common.orientation import DEFAULT_ANGLES, search
from common.paths import rel
from common.pointsbox import default_points_rule
from common.rotation import footprint, invert, rotation_about, transform

log = logging.getLogger(__name__)

# Faces rolled by more than this are turned upright before the cascade. The level-1 nets were
# trained with +-10 degrees of added roll on faces that already lean a little, but even on the
# CUHK test faces turning them upright helps a little (level-3 error on detector boxes,
# every 6th test face: 1.126% with 15 degrees here, 1.111% with 5).
UPRIGHT_ROLL = 5.0
# An upright copy holds the face box this many times over (level-2/3 patches reach past the
# box), at most CHIP_BOX_PX pixels across the box (larger faces are shrunk: the nets see
# 39 pixels of them anyway).
CHIP_MARGIN = 2.0
CHIP_BOX_PX = 256
# A large face's copy may be stretched this much from the nearest halving of the photo below it.
CHIP_STRETCH = 1.25
# A face whose confidence is below this is looked at again a quarter turn either way
# (Landmarker._second_look).
DOUBT = 0.5
# ... and one rolled by more than this also turned over (Landmarker._second_look).
FLIP_ROLL = 45.0
# A face is dark when the median grey of its box is below DARK: the cascade then reads it on
# an upright copy brightened to lift that median to LIFT_TO (`brightened`).
DARK = 60.0
LIFT_TO = 110.0
# Two faces whose boxes overlap by more than this are one: the less confident is dropped.
# Distinct faces in crowds overlap less; BlazeFace merges its own boxes above 0.3.
SAME_FACE_IOU = 0.25
# Faces whose confidence (common.confidence) is below this are dropped by default: the
# verifier against false faces. Chosen for the release trained on worn photos (2026-12-02) on
# the TRAINING split (benchmarks/wild.py --split train --faces 3000 --seed 1 --min-confidence 0,
# its table 7): with the sure-face rule below, 0.4 drops as many faces of 40 px and more as the
# nets before it did at 0.2 (9 of 2,428) and lets in fewer false detections (51 of 2,599,
# against 68); at 0.2 these nets let in 135. result/README.md, "Confidence".
MIN_CONFIDENCE = 0.4
# ... except that a face the detector is sure of (its score at least the detector's
# `sure_score`, where it has one) needs only this share of that confidence: blur, darkness and
# JPEG wear make the cascade's nets disagree on a face the detector saw clearly. Chosen on the
# same training photos (table 6) as the rule keeping the most faces with no false face let in:
# BlazeFace score >= 0.85 and confidence >= 0.3 keeps 3 of the 12 faces 0.4 drops, and none of
# the false detections. Looser rules let false faces in on the benchmarks too (with the nets
# before, a share of 0.25: a motorcycle headlight at score 0.88, confidence 0.067, among
# benchmarks/detection.py's photos with no face). docs/evaluation.md.
SURE_SHARE = 0.75
# A face whose eyes the cascade placed on featureless patches is no face: nets trained on worn
# photos read a plain blob with as little disagreement as a face (benchmarks/detection.py, the
# no-face photos: a flat ellipse at confidence 0.41), so such a face's confidence is set to 0.
# The grey levels of a patch EYE_PATCH box widths about each eye of real faces vary by 3.9 or
# more (its standard deviation, the mean of the two eyes; CUHK test faces, every 7th, as they
# are and benchmarks/worn.py's blurred and worn copies, as the cascade reads them: dark ones
# brightened); on the blobs, by 0.
FLAT_EYES = 2.0
EYE_PATCH = 0.08
# A second opinion on the faces the verifier's confidence leaves in doubt: MTCNN's O-Net (common.
# detectors.mtcnn, its own weights and training data) on the face's region turned upright, a
# square SECOND_OPINION_SIDES[0] box widths across. A face read below SECOND_OPINION_BELOW is
# dropped when O-Net gives it less than VETO, whatever the rule above says, and kept when O-Net
# gives it RESCUE or more, on that square and on a wider one (SECOND_OPINION_SIDES[1]: a stone
# or a texture rarely looks like a face at two scales), and its confidence is at least
# RESCUE_SHARE of the threshold. Faces read at SECOND_OPINION_BELOW or more are not asked (most
# real faces: no time spent on them), nor those below RESCUE_SHARE x the threshold (never kept).
# Chosen on the TRAINING split (benchmarks/wild.py --split train --faces 3000 --seed 1
# --min-confidence 0 --referee, 2026-12-02): faces of 40 px and more dropped 9 -> 3 of 2,428;
# false faces kept that MediaPipe does not see as faces 13 -> 9 (all false faces kept 50 -> 56:
# O-Net keeps people in the photos' backgrounds). On one square, rescuing at 0.98: 3 dropped, 12
# not confirmed (and a stone among the photos with no face: benchmarks/detection.py). O-Net's
# 1st percentile on the real faces there is 0.986, the false detections' median 0.04.
# Where the box's squares read less than RESCUE but its first square at least REFRAME_FROM, O-Net
# reads again on squares about the box and roll the cascade's points call for (common.pointsbox),
# and that read replaces the box's where it reaches RESCUE: a box the detector half saw frames a
# face badly (benchmarks/wild.py, the dark face at 45 degrees: 0.98 and 0.81 on its box's
# squares, 0.999 and 0.997 on its points'), and so do wrong points (a 280 px face at 1,800
# photos: 1.0 on its box, 0.96 on its points'), so a face either framing reads is kept; only
# the box's read vetoes (the points' alone vetoed a 192 px face on the training split). The 37
# faces rescued by the points' read alone on the training split and the 600 and 1,800 test
# photos all read 0.937 or more on the box's first square, most false detections far less: the
# gate spares the read there. Chosen on the TRAINING split (as above, 2026-12-03): faces of 40 px
# and more dropped at 0.4, 3 -> 2; false faces kept 62 -> 64, not confirmed by MediaPipe 10 -> 11.
SECOND_OPINION_BELOW = 0.8
SECOND_OPINION_SIDES = (1.2, 1.4)
VETO = 0.7
RESCUE = 0.97
RESCUE_SHARE = 0.25
REFRAME_FROM = 0.9


@dataclass(frozen=True)
class Face:
    """A face found in a photo. `box` is in the training convention and `roll` (degrees
    counter-clockwise) turns the photo about the box centre so the face in it is upright: the
    face region is `box` rotated by -roll. `points` (5, 2) are photo pixels, order LE RE N LM
    RM, left and right as seen on the upright face."""
    box: Box
    points: np.ndarray
    roll: float = 0.0
    score: float = 1.0
    # How likely all five points (each point) lie within 5% of the box width of the truth
    # (common.confidence); None where not measured.
    confidence: float | None = None
    point_confidence: np.ndarray | None = None  # (5,)
    # Which track the face belongs to in a video (common.tracker); None for a photo.
    track_id: int | None = None
    # The second opinion (SECOND_OPINION_BELOW): O-Net's probability that the region holds a
    # face; None where it was not asked.
    face_probability: float | None = None

    def corners(self) -> np.ndarray:
        """(4, 2) corners of the face region in the photo: top-left, top-right, bottom-right,
        bottom-left of the upright face."""
        b = self.box
        m = rotation_about(b.center, -self.roll)
        return transform([(b.left, b.top), (b.right, b.top), (b.right, b.bottom), (b.left, b.bottom)], m)

    def as_dict(self, ndigits: int = 2, align: int | None = None) -> dict:
        """JSON form shared by `predict --json` and the web API; with `align` (a crop size),
        also the aligned crop's `{size, matrix}` (photo -> crop)."""
        out = {
            "box": {k: round(float(v), ndigits) for k, v in
                    zip(("left", "right", "top", "bottom"), self.box.as_tuple())},
            "roll": round(float(self.roll), 1),
            "score": round(float(self.score), 4),
            "points": {name: [round(float(x), ndigits), round(float(y), ndigits)]
                       for name, (x, y) in zip(POINTS, self.points)},
        }
        if self.confidence is not None:
            out["confidence"] = round(float(self.confidence), 3)
        if self.point_confidence is not None:
            out["point_confidence"] = {name: round(float(c), 3) for name, c in zip(POINTS, self.point_confidence)}
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        if align is not None:
            out["aligned"] = {"size": check_size(align),
                              "matrix": [[round(float(v), 6) for v in row] for row in self.align_matrix(align)]}
        return out

    def align_matrix(self, size: int = TEMPLATE_SIZE) -> np.ndarray:
        """2x3 matrix from photo pixels to the size x size aligned crop (common.align)."""
        return align_matrix(self.points, size)

    def aligned(self, image: np.ndarray, size: int = TEMPLATE_SIZE) -> tuple[np.ndarray, np.ndarray]:
        """(crop, 2x3 matrix photo -> crop): this face warped onto the ArcFace five-point
        template, size x size pixels (common.align). `image` is the photo the face was found
        in; the crop keeps its channels and depth."""
        return aligned_crop(image, self.points, size)

    def scaled(self, fx: float, fy: float | None = None) -> "Face":
        """The same face in an image fx times as wide and fy times as high."""
        fy = fx if fy is None else fy
        return replace(self, box=self.box.scaled(fx, fy), points=scale_points(self.points, fx, fy))


@dataclass(frozen=True)
class Region:
    """Where the cascade looks for one face: the training-convention box in the photo, the
    roll that makes it upright, and the detection it came from."""
    box: Box
    roll: float
    detection: Detection


def _entry(method):
    """A public method that takes a photo: the photo checked at the door (common.image.
    checked_photo: ValueError for None or a wrong shape, other depths stretched to 8 bits) and
    the call run under the instance's lock (the class doc: threads), in one photo_scope (what
    is made from the photo is shared within the call and dropped after it)."""
    @functools.wraps(method)
    def entry(self, image, *args, **kwargs):
        image = checked_photo(image)
        with self._lock, photo_scope(image):
            return method(self, image, *args, **kwargs)
    return entry


class Landmarker:
    """Threads: one Landmarker may be shared; a lock lets one call run at a time (its detector
    and cascade keep OpenCV nets and caches that calls change). For calls in parallel, give
    each thread (or process) its own Landmarker, with its own `cascade` too."""

    def __init__(self, model: str | os.PathLike | None = None, detector: str = DEFAULT_DETECTOR,
                 angles: Sequence[float] | None = None, rule: str | os.PathLike | None = None,
                 cascade=None, mirror: bool = True, min_confidence: float = MIN_CONFIDENCE,
                 confidence=None, **detector_options):
        """`model`: cascade folder (common.netfiles.resolve_model); `detector`: a name in
        common.detectors.DETECTORS; `angles`: rotations of the photo searched (`(0,)`: upright
        only; default: the detector's `default_angles`, none for BlazeFace, which finds faces at
        every roll, five for MTCNN and Haar);
        `rule`: the detector's box rule file (default model/box_rule_<detector>.json);
        `mirror`: the cascade's test-time mirroring (common.cascade); `min_confidence`: faces
        whose confidence is below it are dropped (0: none); `confidence`: the confidence model
        (common.confidence.ConfidenceModel or its file; default: the one fitted for the
        cascade's mirroring, model/confidence.json or model/confidence_nomirror.json)."""
        from common.cascade import Cascade
        from common.confidence import ConfidenceModel, default_model
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, not {min_confidence:g}")
        self.min_confidence = float(min_confidence)
        self.cascade = cascade or Cascade(model, mirror=mirror)
        self._confidence_given = confidence is not None
        self.confidence = (confidence if isinstance(confidence, ConfidenceModel)
                           else ConfidenceModel.load(confidence) if confidence
                           else default_model(self.cascade.mirror))
        rule = rule or rule_path(detector)
        self.rule_file = load_rule(rule)
        if self.rule_file.detector != detector:
            raise ValueError(f"the box rule {rel(Path(rule))} was fitted for the {self.rule_file.detector} "
                             f"detector, not {detector}")
        self.points_rule = default_points_rule()  # the second opinion also boxes faces from their points
        self.detector: Detector = load_detector(detector, **detector_options)
        self.angles = tuple(float(a) for a in (self.detector.default_angles if angles is None else angles))
        self.sure_score: float | None = getattr(self.detector, "sure_score", None)
        self._onet = None   # the second opinion's nets, loaded when first asked
        self._lock = threading.RLock()  # re-entrant: __call__ holds it across locate and landmarks

    @property
    def rule(self) -> BoxRule:
        return self.rule_file.rule

    @_entry
    def __call__(self, image: np.ndarray) -> list[Face]:
        """Every face in `image` with its five points, left to right."""
        return self.landmarks(image, self.locate(image))

    # --- the two halves -----------------------------------------------------------------
    @_entry
    def locate(self, image: np.ndarray) -> list[Region]:
        """The faces the detector finds, as the regions the cascade will look at."""
        return [self.region(d) for d in search(self.detector, image, self.angles)]

    def region(self, det: Detection) -> Region:
        """A detection's box in the training convention and the roll that makes the face
        upright (common.boxrule.RuleFile.place)."""
        return Region(*self.rule_file.place(det), det)

    def landmarks(self, image: np.ndarray, regions: Sequence[Region],
                  min_confidence: float | None = None) -> list[Face]:
        """The cascade's five points for each region (any order) with their confidences,
        faces left to right; those below `min_confidence` (default: the Landmarker's) left out."""
        regions = list(regions)
        points, point_conf, face_conf = self.judge(image, regions)
        self._second_look(image, regions, points, point_conf, face_conf)
        opinions = self.second_opinion(image, regions, face_conf, min_confidence, points=points)
        faces = [Face(r.box, p, r.roll, r.detection.score, float(c), pc,
                      face_probability=None if math.isnan(o) else float(o))
                 for r, p, pc, c, o in zip(regions, points, point_conf, face_conf, opinions)
                 if self.keeps(c, r.detection.score, min_confidence, o)]
        return sorted(one_per_face(faces), key=lambda f: (f.box.left, f.box.top))

    def keeps(self, confidence: float, score: float, min_confidence: float | None = None,
              opinion: float | None = None) -> bool:
        """The verifier: whether a face read at `confidence`, found by the detector with
        `score`, is kept: at `min_confidence` (default: the Landmarker's) or more, or at
        SURE_SHARE of it when the detector is sure of the face (score >= its sure_score); then,
        where the second opinion was asked (`opinion`, O-Net's probability; None or NaN where
        not), dropped below VETO, and kept from RESCUE_SHARE of `min_confidence` at RESCUE."""
        least = self.min_confidence if min_confidence is None else min_confidence
        asked = opinion is not None and not math.isnan(opinion)
        if asked and opinion >= RESCUE and confidence >= RESCUE_SHARE * least:
            return True
        if asked and opinion < VETO and least > 0:
            return False
        if confidence >= least:
            return True
        return self.sure_score is not None and score >= self.sure_score and confidence >= SURE_SHARE * least

    def second_opinion(self, image: np.ndarray, regions: Sequence[Region], confidences,
                       min_confidence: float | None = None, points=None) -> np.ndarray:
        """(N,) O-Net's probability that each region holds a face, for the regions whose
        confidence the verifier leaves in doubt (SECOND_OPINION_BELOW); NaN for the others.
        Read on squares about the region's box (the lower of two squares' reads where the first
        reads RESCUE or more) and, where that is below RESCUE but the first square read
        REFRAME_FROM or more and the cascade's `points` (N, 5, 2) are given, again on squares
        about the box and roll those points call for (common.pointsbox): the second read
        replaces the first where it reaches RESCUE.
        With `min_confidence` 0 (every face kept: the benchmarks' measuring runs) every region
        below SECOND_OPINION_BELOW is asked, so the rule can be tried at any threshold."""
        least = self.min_confidence if min_confidence is None else min_confidence
        out = np.full(len(regions), np.nan)
        asked = [i for i, c in enumerate(confidences) if RESCUE_SHARE * least <= c < SECOND_OPINION_BELOW]
        if not asked:
            return out
        first, out[asked] = self._onet_reads(image, [(regions[i].box, regions[i].roll) for i in asked])
        again = [i for i, f in zip(asked, first) if f >= REFRAME_FROM and out[i] < RESCUE] if points is not None else []
        if again:
            _, framed = self._onet_reads(image, [self.points_rule.place(points[i]) for i in again])
            out[again] = np.where(framed >= RESCUE, framed, out[again])
        return out

    def _onet_reads(self, image: np.ndarray, boxes: Sequence[tuple[Box, float]]) -> tuple[np.ndarray, np.ndarray]:
        """O-Net's probability of a face on the square SECOND_OPINION_SIDES[0] widths across
        each (box, roll), turned upright, and the read that counts: where the first reaches
        RESCUE, the lower of it and the wider square's (a stone or a texture rarely looks like a
        face at two scales)."""
        if self._onet is None:
            from common.detectors.mtcnn import MTCNN
            self._onet = self.detector if isinstance(self.detector, MTCNN) else MTCNN()

        def squares(which, side):
            return [(*boxes[k][0].center, side * max(boxes[k][0].width, boxes[k][0].height), boxes[k][1])
                    for k in which]

        first = np.asarray(self._onet.face_probability(image, squares(range(len(boxes)), SECOND_OPINION_SIDES[0])),
                           dtype=np.float64)
        reads = first.copy()
        wide = [k for k in range(len(boxes)) if first[k] >= RESCUE]
        if wide:
            wider = self._onet.face_probability(image, squares(wide, SECOND_OPINION_SIDES[1]))
            reads[wide] = np.minimum(first[wide], wider)
        return first, reads

    def _second_look(self, image, regions: list[Region], points, point_conf, face_conf) -> None:
        """Regions the cascade doubts (confidence below DOUBT) looked at again a quarter turn
        either way and (where a quarter turn saw a face) a half turn away: a detector's points
        can read a face lying on its side as upright (BlazeFace does for about a third of faces
        rolled by 90 degrees). A doubted face rolled by more than FLIP_ROLL is also read turned
        over with its eyes kept (Detection.flipped): BlazeFace can place the eyes right and the
        mouth on the forehead side (benchmarks/wild.py, 600 photos: one face more found at 90
        degrees, false faces unchanged; the same with any roll flipped, so only those on their
        side are). The best look, if better, replaces the region and its results in place.
        Where the looks saw a face and the cascade still doubts it, the detector looks once more
        the same ways with the face larger in its view (LooksAgain's `closer`): a face the
        detector half sees is boxed differently at another size (benchmarks/wild.py --split
        train --faces 3000 --seed 1 --referee: 16 real faces read more confidently, the false
        faces kept at 0.4 that MediaPipe does not confirm 10, as before; the 600 test photos:
        a yawed face at 90 degrees found, 98.8 -> 100%). Regions where no look saw a face (most
        false faces) get none. (Also tried: placing the box from the cascade's own points, as
        the tracker does: it made false faces more confident, benchmarks/wild.py 0.011 -> 0.039
        false faces a photo at confidence 0.2.)"""
        doubted = [i for i, c in enumerate(face_conf) if c < DOUBT and regions[i].detection.points is not None]
        if not doubted:
            return
        # A detector that can look again at a turned copy gives new points, and only where it
        # sees a face there (most false faces end here, before the cascade); else the points turned.
        again = self.detector.look_again if isinstance(self.detector, LooksAgain) else None

        def look(det: Detection, turn: float, closer: bool) -> Detection | None:
            if not again:
                return det.turned(turn)
            return again(image, det, turn, closer=closer)

        detections = [r.detection for r in regions]  # the looks start from these, not from a look

        def looks_at(which, closer: bool = False):
            """(regions looked at, the doubted region each is for, the doubted regions where
            the detector saw a face)."""
            looks, owner, saw = [], [], set()
            for i in which:
                det = detections[i]
                seen = [look(det, 90.0, closer), look(det, -90.0, closer)]
                # The half turn only where a quarter turn saw a face: a detector that finds faces at
                # every roll and sees none there finds none turned over either (benchmarks/wild.py
                # --split train --faces 3000 --seed 1: every record the same as with the half turn
                # always looked at; a false face on the speed photo costs two looks, not three).
                if any(s is not None for s in seen):
                    seen.append(look(det, 180.0, closer))
                for s in seen:
                    if s is not None:
                        looks.append(self.region(s))
                        owner.append(i)
                        saw.add(i)
                if abs(regions[i].roll) > FLIP_ROLL and not closer:
                    looks.append(self.region(det.flipped()))
                    owner.append(i)
            return looks, owner, saw

        def take_better(looks, owner):
            """Each doubted region replaced by its best look where that reads more confidently."""
            if not looks:
                return
            alt_points, alt_pc, alt_fc = self.judge(image, looks)
            for j in np.argsort(alt_fc, kind="stable"):  # best last, so it wins
                i = owner[j]
                if alt_fc[j] > face_conf[i]:
                    regions[i], points[i], point_conf[i], face_conf[i] = looks[j], alt_points[j], alt_pc[j], alt_fc[j]
        looks, owner, saw = looks_at(doubted)
        take_better(looks, owner)
        if again:
            still = [i for i in doubted if face_conf[i] < DOUBT and i in saw]
            looks, owner, _ = looks_at(still, closer=True)
            take_better(looks, owner)

    @_entry
    def judge(self, image: np.ndarray, regions: Sequence[Region], mirror: bool | None = None,
              first: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (N, 5, 2) in photo pixels, point confidences (N, 5), face confidences (N,))
        for each region, in the regions' order: one cascade pass (`mirror`: None for the
        cascade's own test-time mirroring). The face confidence is the verifier for detector
        regions (a false face scores near 0). `first`: a list with, per region, the
        common.cascade.FirstLevel of an earlier pass on that same region to reuse, or None;
        its None entries are filled in with this pass's (a tracker hands them back while a
        face keeps its region)."""
        grays, boxes, back = self.cascade_inputs(image, regions)
        return self._judge_inputs(grays, boxes, back, mirror, first)

    def _judge_inputs(self, grays, boxes, back, mirror: bool | None = None, first: list | None = None):
        """judge's results from the cascade's inputs (cascade_inputs' three lists), each face's
        confidence from the model fitted for the mirroring it ran with."""
        from common.cascade import first_levels
        from common.confidence import default_model, point_features
        estimates, nets = self.cascade.run(grays, boxes, mirror=mirror, first=first)
        if first is not None:   # only the faces whose level 1 ran in this pass
            todo = [i for i, f in enumerate(first) if f is None]
            for i, made in zip(todo, first_levels(boxes, estimates, nets, todo)):
                first[i] = made
        widths = np.array([b.width for b in boxes], dtype=np.float64)
        model = (self.confidence if mirror is None or mirror == self.cascade.mirror or self._confidence_given
                 else default_model(mirror))
        point_conf, face_conf = model.predict(point_features(estimates, nets, widths))
        flat = flat_eyes(grays, estimates[-1], widths)
        face_conf[flat], point_conf[flat] = 0.0, 0.0
        return to_photo(estimates[-1], back), point_conf, face_conf

    @_entry
    def landmarks_levels(self, image: np.ndarray, regions: Sequence[Region],
                         levels: int | None = None) -> list[np.ndarray]:
        """Estimates (N, 5, 2) in photo pixels after each cascade level, one row per region."""
        grays, boxes, back = self.cascade_inputs(image, regions)
        return [to_photo(est, back) for est in self.cascade.estimates(grays, boxes, levels)]

    @staticmethod
    def cascade_inputs(image: np.ndarray, regions: Sequence[Region]):
        """(gray image per region, box in it, matrix back to the photo or None): the photo
        itself for an upright face, an upright copy of its surroundings for a rolled one (and
        a shrunk copy for a large one: the crops are then cut from few pixels)."""
        gray = None  # the whole photo in gray, made only when a face needs it
        grays, boxes, back = [], [], []
        for r in regions:
            if abs(r.roll) <= UPRIGHT_ROLL and max(r.box.width, r.box.height) <= CHIP_BOX_PX:
                gray = to_gray(image) if gray is None else gray
                if not dark(gray, r.box):
                    grays.append(gray)
                    boxes.append(r.box)
                    back.append(None)
                    continue
            chip, box, m = upright_chip(image, r.box, r.roll if abs(r.roll) > UPRIGHT_ROLL else 0.0)
            grays.append(brightened(chip, box))
            boxes.append(box)
            back.append(invert(m))
        return grays, boxes, back


def flat_eyes(grays, points: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """(N,) bool: whether the grey levels about a face's two eyes (points in its gray image)
    hardly vary (FLAT_EYES)."""
    half = np.maximum(2.0, EYE_PATCH * widths)
    return np.array([patch_spread(g, p[:2], np.full(2, r)).mean() for g, p, r in zip(grays, points, half)],
                    dtype=np.float64) < FLAT_EYES


def one_per_face(faces: list[Face]) -> list[Face]:
    """The faces less any whose box overlaps a more confident one's by more than SAME_FACE_IOU:
    a second box shifted onto half of a face the cascade has read can pass the verifier
    (benchmarks/detection.py, a dark face in a group photo)."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -(f.confidence if f.confidence is not None else f.score)):
        if all(f.box.iou(k.box) <= SAME_FACE_IOU for k in kept):
            kept.append(f)
    return kept


def _box_median(gray: np.ndarray, box: Box) -> float:
    """The median grey of the box, from about 32x32 of its pixels."""
    step = max(1, int(min(box.width, box.height)) // 32)
    inner = gray[max(0, int(box.top)):max(0, int(box.bottom) + 1):step,
                 max(0, int(box.left)):max(0, int(box.right) + 1):step]
    return float(np.median(inner)) if inner.size else 255.0


def dark(gray: np.ndarray, box: Box) -> bool:
    """Whether the face in `box` is dark: the median grey of the box below DARK."""
    return _box_median(gray, box) < DARK


def brightened(chip: np.ndarray, box: Box) -> np.ndarray:
    """`chip` as it is, or, when the face in `box` is dark, through the gamma that lifts the
    median grey of the box to LIFT_TO: the nets were trained on few faces in the shadows, and
    such a face keeps contrast they read once it is spread out."""
    median = _box_median(chip, box)
    if median >= DARK:
        return chip
    gamma = math.log(LIFT_TO / 255.0) / math.log(max(median, 1.0) / 255.0)
    return cv2.LUT(chip, np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8))


def to_photo(estimates: np.ndarray, back: Sequence[np.ndarray | None]) -> np.ndarray:
    """Points (N, 5, 2) found on the cascade's inputs, mapped into the photo."""
    out = np.array(estimates, dtype=np.float64, copy=True)
    for i, inv in enumerate(back):
        if inv is not None:
            out[i] = transform(out[i], inv)
    return out


def upright_chip(image: np.ndarray, box: Box, roll: float) -> tuple[np.ndarray, Box, np.ndarray]:
    """(an upright gray copy of the region around `box`, the box in it, the 2x3 matrix from
    photo to copy pixels). The copy turns the photo by `roll` about the box centre."""
    scale = min(1.0, CHIP_BOX_PX / max(box.width, box.height))
    side = int(np.ceil(CHIP_MARGIN * max(box.width, box.height) * scale)) | 1
    cx, cy = box.center
    half = (side - 1) / 2.0
    m = rotation_about((cx, cy), roll, scale, to=(half, half))
    # A large face is cut from the photo's halvings (area averaged, shared with the detector),
    # not sampled from its full pixels: less to read, and no pixels skipped over. A halving
    # down to CHIP_STRETCH below the copy's scale will do (the nets see 39 pixels of the box).
    source, kx, ky = halvings(image, scale / CHIP_STRETCH)
    from_source = m @ halving_to_photo(kx, ky)
    # Only the copy's footprint (and a pixel for the bilinear taps) is made gray and warped:
    # one channel, not three (a 300-pixel copy of a 640x480 frame and its grey: 0.79x the
    # time). Clipped to the photo, the footprint's edge is the photo's, so BORDER_REPLICATE
    # repeats the same pixels.
    x0, y0, x1, y1 = footprint(from_source, side, source.shape, 1.0) or (0, 0, *source.shape[1::-1])
    from_region = from_source.copy()
    from_region[:, 2] += from_source[:, :2] @ (x0, y0)
    chip = cv2.warpAffine(to_gray(source[y0:y1, x0:x1]), from_region, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return chip, Box.around(half, half, box.width * scale / 2, box.height * scale / 2), m


# --- command-line options shared by predict, the web app's check and the benchmarks ----------
# Names the face detector when no --detector is given (predict, the web app, benchmarks).
DETECTOR_ENV = "DEEP_LANDMARK_DETECTOR"


class LandmarkerUnavailable(Exception):
    """The model, box rule or detector weights cannot be loaded; the message says why."""


def add_landmarker_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--detector", choices=detector_names(),
                    help=f"face detector (default: ${DETECTOR_ENV}, else {DEFAULT_DETECTOR}, or "
                         f"{FALLBACK_DETECTOR} when {DEFAULT_DETECTOR}'s weights are not installed)")
    ap.add_argument("--angles", type=float, nargs="+", metavar="DEG",
                    help="rotations of the photo searched for tilted heads (default: none for "
                         "blaze, which finds faces at every roll; "
                         f"{' '.join(f'{a:g}' for a in DEFAULT_ANGLES)} for mtcnn and haar)")
    ap.add_argument("--upright", action="store_true",
                    help="search the photo unturned only (--angles 0); with mtcnn or haar this is "
                         "faster and misses heads tilted by more than about 25 degrees")
    ap.add_argument("--min-face", type=float, metavar="PX",
                    help="search faces down to PX pixels wide in photos of any size, whatever it "
                         "costs (blaze, mtcnn). Default: blaze 40 px, growing on photos over about "
                         "1.5 megapixels (1920x1080: 46 px) and faster over 2.1 (4000x3000: 266 px) "
                         "so a 12-megapixel photo costs about 1.2x a 640x480 one; mtcnn 24 upright "
                         "and 40 turned, growing over about 0.4 megapixels")
    ap.add_argument("--rule", help="box rule file (default: model/box_rule_<detector>.json)")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false",
                    help="no test-time mirroring in the cascade: half its net time, level-3 error "
                         "1.13%% instead of 1.10%% of the box width (docs/evaluation.md, "
                         "'Test-time mirroring')")
    ap.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE, metavar="P",
                    help="drop faces whose confidence (the chance that all five points are within "
                         f"5%% of the box width) is below P, 0..1 (default {MIN_CONFIDENCE:g}: drops "
                         "most false faces, keeps real hard ones; 0 keeps every face); a face "
                         f"the detector is sure of needs {SURE_SHARE:g} x P")


def make_landmarker(model=None, detector: str | None = None, angles=None, rule=None,
                    warn=None, mirror: bool = True, min_confidence: float = MIN_CONFIDENCE,
                    **options) -> Landmarker:
    """A Landmarker. The detector: `detector`, else $DEEP_LANDMARK_DETECTOR, else the default
    one, or Haar when the default one's weights are not installed (said through `warn`, by
    default this module's logger). LandmarkerUnavailable when it cannot be made."""
    from common.boxrule import RuleMissing
    from common.cascade import ModelMissing
    from common.confidence import ConfidenceMissing
    warn = warn or log.warning
    detector = detector or os.environ.get(DETECTOR_ENV) or None
    try:
        try:
            return Landmarker(model, detector or DEFAULT_DETECTOR, angles, rule, mirror=mirror,
                              min_confidence=min_confidence, **options)
        except WeightsMissing as exc:
            if detector is not None or exc.altered:
                raise
            warn(f"warning: {exc}; using the {FALLBACK_DETECTOR} detector instead")
            return Landmarker(model, FALLBACK_DETECTOR, angles, rule, mirror=mirror,
                              min_confidence=min_confidence)
    except (ModelMissing, RuleMissing, WeightsMissing, ConfidenceMissing, ValueError, TypeError) as exc:
        raise LandmarkerUnavailable(str(exc)) from None


def landmarker_options(args: argparse.Namespace) -> dict:
    """make_landmarker's arguments from add_landmarker_args' options."""
    options = {} if args.min_face is None else {"min_face_everywhere": args.min_face}
    if options and (args.detector or os.environ.get(DETECTOR_ENV) or DEFAULT_DETECTOR) == "haar":
        raise LandmarkerUnavailable("--min-face applies to the blaze and mtcnn detectors only")
    angles = (0.0,) if args.upright else None if args.angles is None else tuple(args.angles)
    return dict(model=args.model, detector=args.detector, angles=angles, rule=args.rule,
                mirror=getattr(args, "mirror", True),
                min_confidence=getattr(args, "min_confidence", MIN_CONFIDENCE), **options)


def landmarker_from_args(args: argparse.Namespace) -> Landmarker:
    """make_landmarker from add_landmarker_args' options; its warning goes to the log (stderr
    when nothing configures logging)."""
    return make_landmarker(**landmarker_options(args))
