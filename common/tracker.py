"""Faces followed from frame to frame: a video or a camera stream at the cost of the cascade.

    from common.tracker import Tracker
    tracker = Tracker(landmarker)               # a common.landmarker.Landmarker
    for frame in frames:                        # BGR frames, one at a time (a webcam loop)
        faces = tracker.update(frame)           # Face objects, each with its track_id

The photo path searches the whole frame for faces (the detector at several rotations) and runs
the cascade on each; here that search runs only now and then. In between, a face found in one
frame gives its region in the next from its five points (common.pointsbox: the training box
convention placed from the points by a rule fitted on the training list, the roll from the eye
line, so rolling faces stay upright for the cascade), and only the cascade runs on it.

The full search runs again
- every `redetect_every` frames: a face entering the picture is found within that many frames;
- on a frame where a tracked face's confidence (common.confidence) falls below `search_below`,
  unless a search found that face, doubted too, within the last EMPTY_EVERY frames;
- on the frame after a face once read at `search_below` or more is lost while another is
  tracked (EMPTY_EVERY frames on if a search just failed to find it);
- when nothing is tracked, and after a cut (the frame, seen as a small grey thumbnail,
  correlates with the one before by less than CUT_CORRELATION): every track ends at a cut.
Its faces are matched to the tracks by box overlap (or centre distance), so a track keeps its
id; a face matching no track starts a new track with a new id, once it passes the photo path's
whole verifier (its second opinion included: Landmarker.second_opinion). A track ends when the
landmarker's verifier (Landmarker.keeps, the photo path's rule for dropping a face, at
TRUSTED_SHARE of its threshold for a face once read at `search_below` or more) drops its face,
when a search does not confirm a track whose confidence is below
`search_below`, when its centre leaves the frame, or when it lands on the face another track
holds (the one that moved less keeps it).

Each track's points pass through a One Euro filter (Casiez et al., CHI 2012; `smooth=False`
for the cascade's raw points): less shake on a still face, a little lag on a moving one
(benchmarks/video.py measures both; SMOOTH says why it is on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import cv2
import numpy as np

from common.box import Box
from common.detectors import Detection
from common.image import checked_photo, to_gray
from common.pointsbox import PointsBoxRule, default_points_rule

# Chosen with benchmarks/video.py (benchmarks/README.md): the search's share of the time
# against how soon an entering face is found.
REDETECT_EVERY = 15
# While nothing is tracked, the frame is searched this often: an entering face is found within
# as many frames (a sixth of a second at 30 frames/s), and a camera that sees nobody costs a fifth
# of searching every frame (benchmarks/video.py, the `leave` clip).
EMPTY_EVERY = 5
# A tracked face keeps the region it was looked for in while the region its new points call for
# lies within these of it (centre shift and size change in box widths, roll in degrees): on a
# still face the cascade then sees the same box every frame, as it would the detector's, and
# its points do not feed their own noise back through the box. Well inside the detector box
# noise level 1 is trained on (centre 2.7-4%, size 8% standard deviation).
HOLD_SHIFT = 0.03
HOLD_SIZE = 0.05
HOLD_ROLL = 3.0
# Smoothing is on: without it a tracked still face shakes about as much as one searched every
# frame, more on some faces (benchmarks/video.py --faces 4 --clips still: 0.413% of the
# inter-ocular distance against 0.363%), and with it always less (0.352%; OneEuro has more);
# the lag it adds keeps the error within 1.03x of searching every frame over all clips, 1.17x
# on the fastest (drift, about 10 px a frame).
SMOOTH = True
# The cascade's test-time mirroring on the faces followed: None keeps the landmarker's
# (`predict --no-mirror` turns it off everywhere). Off, with the confidence model fitted
# without mirroring, tracking costs 0.251x searching every frame instead of 0.314x and the
# error is 1.022x instead of 1.004x (benchmarks/video.py --faces 3), but on some still faces
# even smoothed points shake more than searching every frame does (--faces 4 --clips still:
# 0.414% against 0.364%; with mirroring 0.352%): on by default.
TRACK_MIRROR = None
# While a face keeps its region (HOLD_*), the cascade's level 1 is not run again: its nets read
# the whole region, which holds the same still face, and levels 2 and 3 (patches around each
# point) read every frame. benchmarks/video.py --faces 3, with and without, one run each: tracked
# frames 0.92x the time (still faces 0.84x), the same faces found at the same error. With the
# nets before 2026-12-02 it also steadied still faces (jitter 0.163% of the inter-ocular
# distance against 0.269%); those trained on worn photos shake little either way (0.178%
# against 0.174%).
REUSE_FIRST = True
# ... while the face's points stay within this many box widths (mean over the five) of where
# they were in the frame level 1 was read in: a face that moves less than HOLD_SHIFT keeps its
# region, and its points, held back by the old level 1, could trail it.
REUSE_MOVE = 0.015
# A tracked face below this confidence makes the frame searched again.
SEARCH_BELOW = 0.5
# A face once read at SEARCH_BELOW or more is a face: its track is dropped by the verifier only
# below this share of the landmarker's threshold (new faces pass the whole threshold). Two faces
# crossing read low while one hides the other: with the threshold at 0.4 and no share, one of
# them lost its track (benchmarks/video.py --faces 3 --no-every, the crossing clips 97.04%
# found, 1.17 tracks a face); with half of it, 100% and 1.00, as at the threshold 0.2 before.
TRUSTED_SHARE = 0.5
# A detection and a track are the same face above this box IoU, or with centres this many box
# widths apart at most.
MATCH_IOU = 0.3
MATCH_CENTRE = 0.5
# Two tracks on one face: their boxes overlap by more than this.
DUPLICATE_IOU = 0.5
# A cut: consecutive 32x24 grey thumbnails correlate less than this. Another scene gives about
# 0; the same scene 0.99 with a face moving a few pixels, 0.68 panned by 20 pixels at once
# (320x240), 1.0 darkened (the correlation ignores exposure).
CUT_CORRELATION = 0.5
THUMB = (32, 24)


class OneEuro:
    """The One Euro filter on an array of values: a low-pass filter whose cutoff rises with
    the speed, so slow motion (shake) is smoothed and fast motion follows with little lag.
    Values are in `unit`s (a face's box width), time in seconds."""

    # Chosen on the still, drift, roll and scale clips of benchmarks/video.py (--faces 3,
    # 2026-12-02; min_cutoff, beta): (0.3, 50) still-face jitter 0.262% against 0.301% searching
    # every frame, error 1.056x every frame's (drift 1.25x); (0.3, 150) 0.279%, 1.023x (drift
    # 1.17x); (0.6, 150) 0.280%, 1.022x; (1.0, 300) 0.289%, 1.018x (drift 1.16x).
    def __init__(self, min_cutoff: float = 0.3, beta: float = 150.0, d_cutoff: float = 3.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float, unit: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x
        speed = (x - self.value) / dt / unit
        a = self._alpha(self.d_cutoff, dt)
        self.speed = a * speed + (1 - a) * self.speed
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        a = self._alpha(cutoff, dt)
        self.value = a * x + (1 - a) * self.value
        return self.value.copy()


@dataclass
class Track:
    id: int
    points: np.ndarray          # (5, 2) the cascade's raw points in the last frame
    score: float                # the detector's score when the face was found
    confidence: float
    filter: OneEuro | None = None
    region: object | None = None   # the common.landmarker.Region it was last looked for in
    placed: tuple | None = None    # (box, roll) its points place (common.pointsbox), made once
    first: object | None = None    # the cascade's level 1 in that region (common.cascade.FirstLevel)
    first_points: np.ndarray | None = None  # the points of the frame level 1 was read in
    doubted_at: int = -EMPTY_EVERY  # the frame of the last search that found it while doubted
    trusted: bool = False          # read at search_below or more once


@dataclass
class TrackerState:
    """All a tracker carries from one frame to the next (small and picklable: the web app
    keeps one per camera between requests)."""
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1
    frame: int = 0
    since_search: int = EMPTY_EVERY  # the first frame is searched
    thumb: np.ndarray | None = None


class Tracker:
    def __init__(self, landmarker, redetect_every: int = REDETECT_EVERY,
                 search_below: float = SEARCH_BELOW, smooth: bool = SMOOTH, fps: float = 30.0,
                 rule: PointsBoxRule | None = None, state: TrackerState | None = None,
                 mirror: bool | None = TRACK_MIRROR, max_faces: int | None = None):
        """`landmarker`: a common.landmarker.Landmarker (its search finds faces, its cascade
        follows them, its verifier, Landmarker.keeps, ends tracks); `redetect_every`: frames between full
        searches (1: every frame); `smooth`: One Euro filter on the points (SMOOTH); `fps`: the frame
        rate the filter assumes; `rule`: the points -> box rule (default
        model/box_rule_points.json); `state`: go on from another tracker's state; `mirror`:
        the cascade's test-time mirroring on the faces followed (None: the landmarker's);
        `max_faces`: follow at most this many faces (the most confident), and while that many
        are followed skip the periodic search (as MediaPipe's max_num_faces does): faster, but
        a face entering then is not looked for (None: any number, searched every
        `redetect_every` frames)."""
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, not {redetect_every}")
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {max_faces}")
        self.max_faces = max_faces
        self.landmarker = landmarker
        self.redetect_every = int(redetect_every)
        self.search_below = float(search_below)
        self.smooth = smooth
        self.dt = 1.0 / fps
        self.rule = rule or default_points_rule()
        self.state = state or TrackerState()
        self.mirror = mirror
        self.searched = False   # whether the last update ran the full search (for benchmarks)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[list]:
        """The faces of each frame in turn."""
        for frame in frames:
            yield self.update(frame)

    def reset(self) -> None:
        self.state = TrackerState()

    # --- one frame ----------------------------------------------------------------------
    def update(self, frame: np.ndarray) -> list:
        """The faces in this frame (common.landmarker.Face, each with its track_id), left to
        right."""
        frame = checked_photo(frame)
        st = self.state
        st.frame += 1
        st.since_search += 1
        step = max(1, min(frame.shape[0] // (2 * THUMB[1]), frame.shape[1] // (2 * THUMB[0])))
        # Every step-th pixel first: the whole frame in grey would cost more than the thumbnail.
        thumb = cv2.resize(to_gray(np.ascontiguousarray(frame[::step, ::step])), THUMB,
                           interpolation=cv2.INTER_AREA).astype(np.float32)
        thumb -= thumb.mean()
        thumb /= max(float(np.linalg.norm(thumb)), 1e-6)
        if st.thumb is not None and float((thumb * st.thumb).sum()) < CUT_CORRELATION:
            st.tracks = []
            st.since_search = max(st.since_search, EMPTY_EVERY)  # a new scene is searched at once
        st.thumb = thumb

        h, w = frame.shape[:2]
        regions = [self._region(t) for t in st.tracks]
        # A face kept in its region and read with confidence: level 1 (the region's whole-face
        # nets) is taken from the frame it was read in, and levels 2 and 3 read this frame
        # (REUSE_FIRST).
        results = self._judge(frame, regions, [t.first if REUSE_FIRST and r is t.region and t.confidence >= self.search_below
                                               else None for t, r in zip(st.tracks, regions)])
        # A doubted face makes the frame searched, unless a search found it, doubted, within
        # EMPTY_EVERY frames: a real face in a poster or the background, read at 0.2-0.5 and
        # found by every search, would have every frame searched.
        full = self.max_faces is not None and len(st.tracks) >= self.max_faces
        search = ((st.since_search >= (self.redetect_every if st.tracks else min(EMPTY_EVERY, self.redetect_every))
                   and not full)
                  or any(res[2] < self.search_below and st.frame - t.doubted_at >= EMPTY_EVERY
                         for t, res in zip(st.tracks, results)))
        previous = list(st.tracks)
        candidates = list(zip(st.tracks, regions, results))
        new_faces = []
        self.searched = search
        if search:
            st.since_search = 0
            found = self.landmarker.locate(frame)
            matched, unmatched = self._match(found, [r.box for r in regions])
            for i, (track, region, result) in enumerate(candidates):
                j = matched.get(i)
                if j is None:
                    if result[2] < self.search_below:
                        candidates[i] = None    # the search does not confirm a doubtful face
                    continue
                if result[2] < self.search_below:
                    # The detector's box of a face the tracked box lost hold of.
                    (again,) = self._judge(frame, [found[j]])
                    if again[2] > result[2]:
                        candidates[i] = (track, found[j], again)
                    if max(again[2], result[2]) < self.search_below:
                        track.doubted_at = st.frame
            fresh = [found[j] for j in unmatched]
            judged = self._judge(frame, fresh)
            # A new face passes the photo path's whole verifier, second opinion included.
            opinions = self.landmarker.second_opinion(frame, fresh, [res[2] for res in judged],
                                                      points=[res[0] for res in judged])
            new_faces = [(r, res, o) for r, res, o in zip(fresh, judged, opinions)]

        kept: list[tuple] = []   # (track, region looked in, (points, point conf, conf, level 1), new)
        for c in candidates:
            if c is None:
                continue
            track, region, result = c
            cx, cy = result[0].mean(axis=0)
            bar = TRUSTED_SHARE * self.landmarker.min_confidence if track.trusted else None
            if not self.landmarker.keeps(result[2], track.score, bar) or not (0 <= cx < w and 0 <= cy < h):
                continue
            kept.append((track, region, result, False))
        for region, result, opinion in new_faces:
            if self.landmarker.keeps(result[2], region.detection.score, opinion=opinion):
                track = Track(st.next_id, result[0], region.detection.score, result[2])
                if result[2] < self.search_below:
                    track.doubted_at = st.frame
                st.next_id += 1
                kept.append((track, region, result, True))
        kept, placed = self._without_duplicates(kept)
        if self.max_faces is not None and len(kept) > self.max_faces:
            best = sorted(range(len(kept)), key=lambda k: (kept[k][3], -kept[k][2][2]))[:self.max_faces]
            kept, placed = [kept[k] for k in sorted(best)], [placed[k] for k in sorted(best)]

        faces = []
        still_there = {id(track) for track, *_, new in kept if not new}
        lost = [t for t in previous if id(t) not in still_there]
        if lost and not kept and not search:
            st.since_search = max(st.since_search, EMPTY_EVERY)   # nothing left: search the next frame
        elif any(t.trusted for t in lost) and kept:
            # A face once read with confidence lost while another is tracked: search the next
            # frame, or EMPTY_EVERY frames on when this frame's search did not find it again
            # (the other face would hold the next search off for redetect_every frames).
            st.since_search = max(st.since_search, self.redetect_every - (EMPTY_EVERY if search else 0))
        st.tracks = []
        for (track, looked, (points, pconf, conf, first), _), (box, roll) in zip(kept, placed):
            track.points, track.confidence, track.region, track.placed = points, conf, looked, (box, roll)
            track.trusted = track.trusted or conf >= self.search_below
            if first is not track.first or track.first_points is None:
                track.first, track.first_points = first, points   # level 1 read in this frame
            elif np.linalg.norm(points - track.first_points, axis=1).mean() > REUSE_MOVE * looked.box.width:
                track.first = None   # the face moves within its region: read level 1 again next frame
            st.tracks.append(track)
            shown = points
            if self.smooth:
                track.filter = track.filter or OneEuro()
                shown = track.filter(points, self.dt, box.width)
            faces.append(self._face(box, shown, roll, track.score, conf, pconf, track.id))
        return sorted(faces, key=lambda f: (f.box.left, f.box.top))

    # --- parts --------------------------------------------------------------------------
    def _region(self, track: Track):
        from common.landmarker import Region
        box, roll = track.placed or self.rule.place(track.points)
        last = track.region
        if last is not None:
            (x, y), (lx, ly) = box.center, last.box.center
            if (math.hypot(x - lx, y - ly) <= HOLD_SHIFT * last.box.width
                    and abs(box.width / last.box.width - 1) <= HOLD_SIZE
                    and abs((roll - last.roll + 180) % 360 - 180) <= HOLD_ROLL):
                return last
        return Region(box, roll, Detection(box, track.score, track.points, roll))

    def _judge(self, frame, regions, first: list | None = None) -> list[tuple]:
        """(points, point confidences, face confidence, level 1's results) per region, in the
        regions' order; `first`: per region, level 1's results to reuse or None."""
        if not regions:
            return []
        first = list(first) if first is not None else [None] * len(regions)
        points, pconf, conf = self.landmarker.judge(frame, regions, mirror=self.mirror, first=first)
        return [(p, pc, float(c), f) for p, pc, c, f in zip(points, pconf, conf, first)]

    @staticmethod
    def _match(found, boxes: list[Box]) -> tuple[dict[int, int], list[int]]:
        """({track index: region index}, unmatched region indices): pairs taken greedily by
        IoU, then by centre distance for boxes that overlap little (a detector's box and a
        placed one can differ in size)."""
        pairs = []
        for i, b in enumerate(boxes):
            for j, r in enumerate(found):
                iou = b.iou(r.box)
                dist = math.dist(b.center, r.box.center) / max(b.width, 1e-6)
                if iou > MATCH_IOU or dist < MATCH_CENTRE:
                    pairs.append((-iou, dist, i, j))
        matched, used = {}, set()
        for _, _, i, j in sorted(pairs):
            if i not in matched and j not in used:
                matched[i] = j
                used.add(j)
        return matched, [j for j in range(len(found)) if j not in used]

    def _without_duplicates(self, kept):
        """One track per face: of two tracks whose new boxes overlap, the one whose box moved
        less from its last one keeps the face (the other jumped onto it); new tracks yield.
        Returns the kept entries and the (box, roll) each one's points place."""
        placed = [self.rule.place(result[0]) for _, _, result, _ in kept]
        order = sorted(range(len(kept)), key=lambda k: (kept[k][3], 1.0 - kept[k][1].box.iou(placed[k][0])))
        out = []
        for k in order:
            if all(placed[k][0].iou(placed[o][0]) <= DUPLICATE_IOU for o in out):
                out.append(k)
        return [kept[k] for k in sorted(out)], [placed[k] for k in sorted(out)]

    @staticmethod
    def _face(box, points, roll, score, conf, pconf, track_id):
        from common.landmarker import Face
        return Face(box=box, points=np.asarray(points), roll=float(roll), score=float(score),
                    confidence=float(conf), point_confidence=np.asarray(pconf), track_id=track_id)
