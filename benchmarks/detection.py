"""Face detection on the whole photo -> points path (common.landmarker), for several detector
configurations side by side: group photos (faces found, false faces), photos with no face
(false faces) and the speed of one photo against Haar alone, all in one run.

    .venv/bin/python benchmarks/detection.py [--configs "blaze" "mtcnn" "mtcnn --upright" "haar"]
        [--photos 40] [--noface 200] [--rounds 15] [--seed 0] [--data DIR] [--model DIR]
        [--json FILE] [--examples DIR] [--mediapipe [PYTHON]] [--referee [PYTHON]]

A configuration is a detector name followed by the options of `predict` (common.landmarker.
add_landmarker_args): --upright, --angles, --min-face, --min-confidence, --no-mirror, --rule.

1. Group photos (--photos, default 40): each holds 5-12 faces of the CUHK **test** split (never
   the training list; each test face used once while the list lasts), 30-90 px wide (the true
   box width), half of them rolled within +-20 degrees and half by 20-90 (random sign), each
   with its own lighting (a quarter darkened by gain or gamma, some brightened), pasted through
   a feathered round mask (1.8 box widths across) on a canvas of 640x480 or 1280x720
   (alternating) tiled with face-free pieces of other test images (wild.py's Backgrounds).
   The pasted discs never overlap: no face hides another. A face is found when a returned
   face's region holds its true eyes and nose (as in wild.py); a returned face that holds no
   true face is a false face, a second one on a face already found a duplicate.
2. Photos with no face (--noface, default 200), in turn from: (a) canvases of pieces of CUHK
   test images (640x480) that hold no face: away from the listed one, and covering none that
   YuNet finds (benchmarks/screen.py: the images hold other people, whom the group photos'
   backgrounds keep); (b) the images that scikit-image's wheel ships (textures,
   a cat, coffee, a horse's silhouette, a rocket, a motorcycle in a garage, text, microscopy,
   ...; not the astronaut and the cameraman, which hold people, nor the coins, which bear
   heads), fetched once with `pip download` into ~/.cache/deep-landmark/ and read from the
   wheel (not installed; skipped with a message where pip cannot fetch it), each fitted to
   640x480 and 1280x720 and cut at random; (c) textures and shapes made here: smooth noise,
   stripes, checkerboards, blobs. False faces per photo by source.
3. Speed, one thread (OpenCV, BLAS and OpenMP; LiteRT runs single-threaded): a 640x480 photo
   with one upright test face about 150 px wide on such a background, and the same photo
   enlarged to 4000x3000. In --rounds alternating rounds, each configuration's Landmarker call
   (photo array -> faces) and Haar alone (common.detectors.haar: OpenCV's
   haarcascade_frontalface_alt2, detectMultiScale, as benchmarks/detect_speed.py times it),
   and JPEG decoding (cv2.imdecode, quality 90) of both sizes; medians, and ratios within the
   run: a configuration's 640x480 time over Haar's, its 4000x3000 time over its own 640x480.

`--mediapipe [PYTHON]` adds MediaPipe FaceMesh in its photo mode (its own detector, then the
mesh; at most --mediapipe-faces faces, default 20) to every part, in the same run, through
benchmarks/peers.py (its own interpreter: build/mediapipe-venv from benchmarks/mediapipe_env.sh);
its time is its own call's (BGR array -> landmarks, one core), without the passing of the photo.
`--referee [PYTHON]` asks the same MediaPipe whether it sees a face where one of ours returned a
false face (benchmarks/peers.sees_face, as wild.py does): the CUHK pieces hold real people.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # One thread everywhere, set before numpy and OpenCV load their libraries (as a script only:
    # importing this module, e.g. from the tests, leaves the process as it is).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import json
import math
import shlex
import statistics
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks.peers import (MEDIAPIPE_LABEL, MEDIAPIPE_PYTHON, MediaPipePhotos, PeerUnavailable,
                              add_referee_argument, check_python, open_referee, sees_face)
from benchmarks.screen import open_screen
from benchmarks.wild import DEFAULT_DATA, Backgrounds, fmt, holds, patch_side, paste_face, pct, read_split
from common.listfile import FaceSample
from common.paths import DATA_ENV, rel

DEFAULT_CONFIGS = ("blaze", "mtcnn", "mtcnn --upright", "haar")

# --- group photos
GROUP_CANVASES = ((640, 480), (1280, 720))
GROUP_FACES = (5, 12)          # faces per photo, inclusive
GROUP_SIZE = (30.0, 90.0)      # true box width, px, log-uniform
GROUP_REGION = 1.8             # pasted disc, box widths across: less of the source photo than
                               # wild.py's 2.2, so less room for an unlisted face beside it
NEAR_UPRIGHT = 20.0            # half of the faces rolled within +-this, the others up to 90
GAP = 2.0                      # px between pasted discs
PLACE_TRIES = 300              # positions tried for a face before it is shrunk by SHRINK
SHRINK = 0.9
ROLL_GROUPS = ((0, 20), (20, 45), (45, 90))
SIZE_GROUPS = ((30, 45), (45, 60), (60, 90))

# --- photos with no face
NOFACE_CANVAS = (640, 480)     # (a) canvases of background pieces
NOFACE_SIZES = ((640, 480), (1280, 720))
SKIMAGE_PIN = "scikit-image==0.26.0"
CACHE = Path.home() / ".cache" / "deep-landmark" / "skimage"
# What scikit-image's wheel ships under skimage/data that holds no face (left out: astronaut.png
# and camera.png hold people, coins.png bears heads, lfw_subset.npy is faces,
# no_time_for_that_tiny.gif is a person, motorcycle_right.png repeats the left view, and the
# tiny test files).
SKIMAGE_IMAGES = {
    "brick.png": "brick wall", "grass.png": "grass", "gravel.png": "gravel",
    "coffee.png": "cup of coffee", "chelsea.png": "cat", "horse.png": "horse silhouette",
    "rocket.jpg": "rocket on its pad", "motorcycle_left.png": "motorcycle in a garage",
    "clock_motion.png": "clock, motion-blurred", "chessboard_GRAY.png": "chessboard",
    "color.png": "colour wheel", "logo.png": "scikit-image logo", "moon.png": "moon surface",
    "hubble_deep_field.jpg": "galaxies", "retina.jpg": "retina", "ihc.png": "stained tissue",
    "cell.png": "cell", "page.png": "printed page", "text.png": "handwriting",
    "phantom.png": "Shepp-Logan phantom",
}
SYNTHETIC_KINDS = ("noise", "stripes", "checkerboard", "blobs")

# --- speed
SPEED_FACE = 150.0             # px, the face of the speed photo
SPEED_SIZES = ((640, 480), (4000, 3000))
JPEG_QUALITY = 90
EXAMPLES_PER_CONFIG = 30       # drawings of false faces and misses kept per configuration


# --- configurations -----------------------------------------------------------------------
class ConfigError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):   # a bad configuration is the user's error: say so, no exit here
        raise ConfigError(message)


@dataclass
class Config:
    label: str
    options: dict              # make_landmarker's arguments


def parse_config(text: str, model: str | None = None) -> Config:
    """A configuration string ("mtcnn --upright --min-face 24") as make_landmarker's arguments;
    ConfigError for a bad one."""
    from common.landmarker import LandmarkerUnavailable, add_landmarker_args, landmarker_options
    tokens = shlex.split(text)
    if not tokens:
        raise ConfigError("an empty configuration")
    if not tokens[0].startswith("-"):
        tokens = ["--detector", *tokens]
    ap = _Parser(prog=f"configuration {text!r}", add_help=False)
    add_landmarker_args(ap)
    try:
        args = ap.parse_args(tokens)
    except ConfigError as exc:
        raise ConfigError(f"configuration {text!r}: {exc}") from None
    if args.model is None:
        args.model = model
    try:
        return Config(" ".join(shlex.quote(t) for t in shlex.split(text)), landmarker_options(args))
    except LandmarkerUnavailable as exc:
        raise ConfigError(f"configuration {text!r}: {exc}") from None


def load_configs(configs: list[Config]) -> list:
    """A Landmarker per configuration; those with the same model and mirroring share a cascade."""
    from common.cascade import Cascade
    from common.landmarker import make_landmarker
    cascades, out = {}, []
    for c in configs:
        key = (c.options.get("model"), c.options.get("mirror", True))
        if key not in cascades:
            cascades[key] = Cascade(key[0], mirror=key[1])
        out.append(make_landmarker(**c.options, cascade=cascades[key]))
    return out


# --- group photos -------------------------------------------------------------------------
@dataclass
class TrueFace:
    sample: FaceSample
    roll: float
    size: float                 # true box width in the photo
    light: dict
    centre: tuple[float, float] = (0.0, 0.0)   # of the pasted disc (the box centre)
    radius: float = 0.0         # of the pasted disc
    points: np.ndarray | None = None           # (5, 2) true points in the photo


@dataclass
class GroupPhoto:
    index: int
    canvas: tuple[int, int]
    image: np.ndarray
    faces: list[TrueFace] = field(default_factory=list)


def group_plan(n: int, test_count: int, seed: int) -> list[tuple[tuple[int, int], list[int]]]:
    """(canvas, test-list indices of its faces) per photo: canvases alternate, the face count is
    drawn from GROUP_FACES, faces are taken in a shuffled order of the whole test list (each
    used once until the list is spent)."""
    rng = np.random.default_rng([seed, 0, 2])
    order = rng.permutation(test_count)
    out, at = [], 0
    for i in range(n):
        k = int(rng.integers(GROUP_FACES[0], GROUP_FACES[1] + 1))
        out.append((GROUP_CANVASES[i % len(GROUP_CANVASES)], [int(order[(at + j) % test_count]) for j in range(k)]))
        at += k
    return out


def draw_light(rng: np.random.Generator) -> dict:
    """A face's lighting: a quarter darkened (gain 0.3-0.6 or gamma 1.6-2.5), 15% brightened,
    the rest a mild gain change."""
    u = rng.random()
    if u < 0.25:
        return ({"kind": "dark", "gain": round(float(rng.uniform(0.3, 0.6)), 3)} if rng.random() < 0.5
                else {"kind": "dark", "gamma": round(float(rng.uniform(1.6, 2.5)), 3)})
    if u < 0.40:
        return ({"kind": "bright", "gain": round(float(rng.uniform(1.15, 1.4)), 3)} if rng.random() < 0.5
                else {"kind": "bright", "gamma": round(float(rng.uniform(0.55, 0.8)), 3)})
    return {"kind": "normal", "gain": round(float(rng.uniform(0.85, 1.15)), 3)}


def apply_light(light: dict):
    """light -> a function of a uint8 patch."""
    if "gamma" in light:
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** light["gamma"] + 0.5, 0, 255).astype(np.uint8)
        return lambda patch: cv2.LUT(patch, lut)
    return lambda patch: np.clip(patch.astype(np.float32) * light["gain"] + 0.5, 0, 255).astype(np.uint8)


def disc_radius(size: float) -> float:
    return (patch_side(size, GROUP_REGION) - 1) / 2.0 + 1.0


def layout(rng: np.random.Generator, canvas: tuple[int, int], faces: list[TrueFace]) -> None:
    """Give each face a disc centre inside the canvas, no two discs overlapping (rejection
    sampling, larger faces first; a face that finds no room in PLACE_TRIES tries is shrunk)."""
    w, h = canvas
    placed: list[TrueFace] = []
    for f in sorted(faces, key=lambda f: -f.size):
        while True:
            r = disc_radius(f.size)
            xs = rng.uniform(r, w - 1 - r, PLACE_TRIES)
            ys = rng.uniform(r, h - 1 - r, PLACE_TRIES)
            ok = np.ones(PLACE_TRIES, bool)
            for p in placed:
                ok &= np.hypot(xs - p.centre[0], ys - p.centre[1]) >= r + p.radius + GAP
            if ok.any():
                k = int(np.argmax(ok))
                f.centre, f.radius = (float(xs[k]), float(ys[k])), r
                placed.append(f)
                break
            if f.size <= GROUP_SIZE[0]:
                raise RuntimeError(f"no room for {len(faces)} faces on {w}x{h}")
            f.size = max(GROUP_SIZE[0], f.size * SHRINK)


def build_group(index: int, canvas: tuple[int, int], samples: list[FaceSample],
                backgrounds: Backgrounds, seed: int) -> GroupPhoto:
    """A group photo of these test faces (see the module doc); deterministic for the seed."""
    rng = np.random.default_rng([seed, index, 2])
    w, h = canvas
    image = backgrounds.canvas(rng, samples[0].image_path, w, h)
    faces = []
    for s in samples:
        size = float(math.exp(rng.uniform(math.log(GROUP_SIZE[0]), math.log(GROUP_SIZE[1]))))
        if rng.random() < 0.5:
            roll = float(rng.uniform(-NEAR_UPRIGHT, NEAR_UPRIGHT))
        else:
            roll = float(rng.uniform(NEAR_UPRIGHT, 90.0)) * (1.0 if rng.random() < 0.5 else -1.0)
        faces.append(TrueFace(s, roll, size, draw_light(rng)))
    layout(rng, canvas, faces)
    for f in faces:
        f.points, _, _ = paste_face(image, f.sample, f.roll, f.size, f.centre, region=GROUP_REGION,
                                         light=apply_light(f.light))
    return GroupPhoto(index, canvas, image, faces)


def score_group(photo: GroupPhoto, faces) -> dict:
    """Per true face: found, error (mean point distance, % of the true box width, best returned
    face); false faces (hold no true face) and duplicates (more returned faces on true faces
    than true faces found)."""
    hit_by = [[] for _ in photo.faces]
    false, on_faces = 0, 0
    for face in faces:
        hits = [j for j, t in enumerate(photo.faces) if holds(face, t.points)]
        if not hits:
            false += 1
            continue
        on_faces += 1
        for j in hits:
            hit_by[j].append(face)
    recs = []
    for t, found in zip(photo.faces, hit_by):
        rec = {"source": rel(t.sample.image_path), "roll": round(t.roll, 2), "size": round(t.size, 2),
               "light": t.light, "found": bool(found)}
        if found:
            rec["error"] = round(float(min(np.linalg.norm(np.asarray(f.points) - t.points, axis=1).mean()
                                           for f in found) / t.size * 100.0), 4)
        recs.append(rec)
    n_found = sum(r["found"] for r in recs)
    return {"canvas": list(photo.canvas), "faces": recs, "returned": len(faces), "false": false,
            "duplicates": max(0, on_faces - n_found)}


# --- photos with no face ------------------------------------------------------------------
def skimage_wheel(quiet: bool = False) -> Path | None:
    """scikit-image's wheel (only its data is read; it is not installed), fetched by pip once
    into CACHE; None, said on stderr, where pip cannot fetch it."""
    version = SKIMAGE_PIN.split("==")[1]
    found = sorted(CACHE.glob(f"scikit_image-{version}-*.whl"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", SKIMAGE_PIN, "--no-deps", "--only-binary=:all:",
               "-q", "-d", str(CACHE)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            err = proc.stderr.strip().splitlines()[-1:] if proc.returncode else None
        except (OSError, subprocess.TimeoutExpired) as exc:
            err = [str(exc)]
        found = sorted(CACHE.glob(f"scikit_image-{version}-*.whl"))
        if not found:
            if not quiet:
                print(f"detection.py: no-face images of {SKIMAGE_PIN} skipped: `{' '.join(cmd[2:])}` "
                      f"failed ({' '.join(err or ['no wheel'])})", file=sys.stderr)
            return None
    return found[0]


def to_bgr(img: np.ndarray) -> np.ndarray:
    """Any decoded image as 8-bit BGR: gray expanded, alpha composited on white, 16 bits scaled."""
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) * (255.0 / max(1.0, float(np.iinfo(img.dtype).max)
                                                     if img.dtype.kind in "ui" else 1.0)) + 0.5).clip(0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        a = img[:, :, 3:].astype(np.float32) / 255.0
        return np.clip(img[:, :, :3] * a + 255.0 * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    return img[:, :, :3].copy()


def read_skimage_images(wheel: Path) -> dict[str, np.ndarray]:
    out = {}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in SKIMAGE_IMAGES:
            member = f"skimage/data/{name}"
            if member not in names:
                continue
            img = cv2.imdecode(np.frombuffer(z.read(member), np.uint8), cv2.IMREAD_UNCHANGED)
            if img is not None:
                out[name] = to_bgr(img)
    return out


def fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image scaled to cover width x height and cut at the centre."""
    h, w = img.shape[:2]
    k = max(width / w, height / h)
    sw, sh = max(width, int(round(w * k))), max(height, int(round(h * k)))
    big = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return big[y0:y0 + height, x0:x0 + width]


def random_crop(rng: np.random.Generator, img: np.ndarray, width: int, height: int) -> np.ndarray:
    """A random window with the canvas's aspect, 35-100% of the largest such window, maybe
    mirrored, scaled to width x height."""
    h, w = img.shape[:2]
    aspect = width / height
    cw, ch = (w, w / aspect) if w / h < aspect else (h * aspect, h)
    frac = rng.uniform(0.35, 1.0)
    cw, ch = max(8, int(cw * frac)), max(8, int(ch * frac))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    window = img[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        window = window[:, ::-1]
    return cv2.resize(np.ascontiguousarray(window), (width, height),
                      interpolation=cv2.INTER_AREA if cw > width else cv2.INTER_CUBIC)


def random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0, 255, (n, 3)).astype(np.float32)


def synthetic(rng: np.random.Generator, kind: str, width: int, height: int) -> np.ndarray:
    """A made picture with no face: smooth noise, stripes, a checkerboard or blobs."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "noise":
        cell = float(rng.uniform(3, 60))
        small = rng.normal(0, 1, (max(2, int(height / cell)), max(2, int(width / cell)), 3)).astype(np.float32)
        img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        img = (img - img.mean()) / (img.std() + 1e-6)
        img = 128 + img * rng.uniform(25, 60) + rng.normal(0, rng.uniform(0, 12), img.shape).astype(np.float32)
        if rng.random() < 0.5:   # tinted gray
            img = img.mean(axis=2, keepdims=True) * random_colours(rng, 1)[0] / 160.0
    elif kind == "stripes":
        img = np.zeros((height, width, 3), np.float32)
        a, b = random_colours(rng, 2)
        for _ in range(int(rng.integers(1, 3))):   # one grating or a plaid of two
            th = rng.uniform(0, math.pi)
            period = rng.uniform(6, 90)
            wave = np.sin((xx * math.cos(th) + yy * math.sin(th)) * 2 * math.pi / period + rng.uniform(0, 6.3))
            if rng.random() < 0.5:
                wave = np.sign(wave)
            img += ((wave[..., None] + 1) / 2) * a[None, None] + ((1 - wave[..., None]) / 2) * b[None, None]
            a, b = random_colours(rng, 2)
        img /= img.max() / 255.0 + 1e-6
    elif kind == "checkerboard":
        cell = rng.uniform(6, 80)
        th = rng.uniform(0, math.pi / 2)
        u = xx * math.cos(th) + yy * math.sin(th)
        v = -xx * math.sin(th) + yy * math.cos(th)
        on = ((np.floor(u / cell) + np.floor(v / cell)) % 2)[..., None]
        a, b = random_colours(rng, 2)
        img = on * a + (1 - on) * b
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    elif kind == "blobs":
        # Ellipses of random sizes and colours on a gradient: dark spots in pairs and threes
        # occur by chance, the pattern a face detector must not take for eyes and a mouth.
        c0, c1 = random_colours(rng, 2)
        t = (xx / width)[..., None] if rng.random() < 0.5 else (yy / height)[..., None]
        img = np.ascontiguousarray(c0 * (1 - t) + c1 * t)
        scale = min(width, height)
        for _ in range(int(rng.integers(15, 80))):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.uniform(0.01, 0.15) * scale) + 1, int(rng.uniform(0.01, 0.15) * scale) + 1)
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                        tuple(float(v) for v in random_colours(rng, 1)[0]), -1, cv2.LINE_AA)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))
    else:
        raise ValueError(kind)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


@dataclass
class NoFacePhoto:
    index: int
    source: str                 # "backgrounds", "skimage" or "synthetic"
    what: str                   # the image or kind, and the variant
    image: np.ndarray


def noface_sources(skimage: dict) -> tuple[str, ...]:
    return ("backgrounds", "skimage", "synthetic") if skimage else ("backgrounds", "synthetic")


def build_noface(index: int, backgrounds: Backgrounds, skimage: dict, seed: int,
                 log: list | None = None) -> NoFacePhoto:
    """Photo `index` of the no-face set: sources in turn (noface_sources); `log` gets the
    background pieces' provenance (Backgrounds.piece)."""
    rng = np.random.default_rng([seed, index, 3])
    sources = noface_sources(skimage)
    source = sources[index % len(sources)]
    j = index // len(sources)          # the how-many-th photo of its source
    if source == "backgrounds":
        w, h = NOFACE_CANVAS
        return NoFacePhoto(index, source, f"pieces {w}x{h}", backgrounds.canvas(rng, Path(), w, h, log))
    if source == "skimage":
        names = list(skimage)
        name = names[j % len(names)]
        variant = (j // len(names)) % 4    # fitted 640x480, fitted 1280x720, then random cuts
        w, h = NOFACE_SIZES[variant % 2]
        img = fit(skimage[name], w, h) if variant < 2 else random_crop(rng, skimage[name], w, h)
        return NoFacePhoto(index, source, f"{name} {'fit' if variant < 2 else 'crop'} {w}x{h}", img)
    kind = SYNTHETIC_KINDS[j % len(SYNTHETIC_KINDS)]
    w, h = NOFACE_SIZES[(j // len(SYNTHETIC_KINDS)) % 2]
    return NoFacePhoto(index, source, f"{kind} {w}x{h}", synthetic(rng, kind, w, h))


# --- speed --------------------------------------------------------------------------------
def speed_photo(samples: list[FaceSample], backgrounds: Backgrounds, seed: int) -> tuple[np.ndarray, FaceSample]:
    """640x480, one upright test face SPEED_FACE px wide near the middle, no other change."""
    rng = np.random.default_rng([seed, 0, 4])
    big = [s for s in samples if s.box.width >= 80] or samples
    sample = big[int(rng.integers(len(big)))]
    w, h = SPEED_SIZES[0]
    image = backgrounds.canvas(rng, sample.image_path, w, h)
    centre = (w / 2 + float(rng.uniform(-60, 60)), h / 2 + float(rng.uniform(-30, 30)))
    paste_face(image, sample, 0.0, SPEED_FACE, centre)
    return image, sample


def time_ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def call_ms(fn, image) -> tuple[list, float]:
    """(faces, ms) of one call: a peer run elsewhere reports its own time (`last_ms`)."""
    t0 = time.perf_counter()
    faces = fn(image)
    ms = (time.perf_counter() - t0) * 1000.0
    return faces, getattr(fn, "last_ms", None) or ms


def measure_speed(configs: list[Config], landmarkers: list, small: np.ndarray, rounds: int) -> dict:
    """Median ms over alternating rounds: Haar alone, each configuration, JPEG decoding; for both
    sizes. Each is called once before the rounds (nets are planned for a shape on first use)."""
    from tqdm import tqdm
    from common.detectors import load_detector
    haar = load_detector("haar")
    large = cv2.resize(small, SPEED_SIZES[1], interpolation=cv2.INTER_CUBIC)
    images = {"640x480": small, "4000x3000": large}
    jpegs = {k: cv2.imencode(".jpg", v, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1] for k, v in images.items()}
    calls = {"haar alone": lambda img: haar.detect(img)}
    for c, lm in zip(configs, landmarkers):
        calls[c.label] = lm
    faces = {}
    for size, img in images.items():
        for name, fn in calls.items():
            out = fn(img)
            faces[(name, size)] = len(out)
        cv2.imdecode(jpegs[size], cv2.IMREAD_COLOR)
    times = {(name, size): [] for name in [*calls, "jpeg decode"] for size in images}
    for _ in tqdm(range(rounds), desc="speed rounds", unit="round", dynamic_ncols=True):
        for size, img in images.items():
            for name, fn in calls.items():
                times[(name, size)].append(call_ms(fn, img)[1])
            times[("jpeg decode", size)].append(time_ms(lambda: cv2.imdecode(jpegs[size], cv2.IMREAD_COLOR)))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"rounds": rounds, "jpeg_bytes": {k: int(v.size) for k, v in jpegs.items()},
           "decode_ms": {size: round(med[("jpeg decode", size)], 2) for size in images}}
    for name in calls:
        s, b = med[(name, "640x480")], med[(name, "4000x3000")]
        out[name] = {"ms_640x480": round(s, 2), "ms_4000x3000": round(b, 2),
                     "x_haar_640x480": round(s / med[("haar alone", "640x480")], 3),
                     "x_haar_4000x3000": round(b / med[("haar alone", "4000x3000")], 3),
                     "large_over_small": round(b / s, 3),
                     "faces_640x480": faces[(name, "640x480")], "faces_4000x3000": faces[(name, "4000x3000")]}
    return out


# --- summaries ----------------------------------------------------------------------------
def mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 4) if values else None


def median(values: list) -> float | None:
    return round(float(np.median(values)), 1) if values else None


def group_summary(photos: list[dict]) -> dict:
    faces = [f for p in photos for f in p["faces"]]

    def recall(sel):
        return {"faces": len(sel), "found_pct": pct(sum(f["found"] for f in sel), len(sel))}
    return {
        "photos": len(photos), "faces": len(faces), "found": sum(f["found"] for f in faces),
        "found_pct": pct(sum(f["found"] for f in faces), len(faces)),
        "false_per_photo": mean(p["false"] for p in photos),
        **unconfirmed(photos),
        "duplicates_per_photo": mean(p["duplicates"] for p in photos),
        "error": mean(f["error"] for f in faces if f["found"]),
        "by_roll": {f"{lo}-{hi}": recall([f for f in faces if lo <= abs(f["roll"]) < hi or (hi == 90 and abs(f["roll"]) == 90)])
                    for lo, hi in ROLL_GROUPS},
        "by_size": {f"{lo}-{hi}": recall([f for f in faces if lo <= f["size"] < hi or (hi == GROUP_SIZE[1] and f["size"] == hi)])
                    for lo, hi in SIZE_GROUPS},
        "by_light": {k: recall([f for f in faces if f["light"]["kind"] == k]) for k in ("normal", "dark", "bright")},
        "ms_median": {f"{w}x{h}": median([p["ms"] for p in photos if "ms" in p and tuple(p["canvas"]) == (w, h)])
                      for w, h in GROUP_CANVASES},
    }


def unconfirmed(photos: list[dict]) -> dict:
    """{"unconfirmed_per_photo": ...}: the false faces a photo the referee (--referee) does not
    see as faces, from records that hold its count ("false_seen_by_referee"); else {}."""
    if not photos or not all("false_seen_by_referee" in p for p in photos):
        return {}
    return {"unconfirmed_per_photo": mean(p["false"] - p["false_seen_by_referee"] for p in photos)}


def noface_summary(photos: list[dict], sources: tuple[str, ...]) -> dict:
    out = {"photos": len(photos), "false_per_photo": mean(p["false"] for p in photos), **unconfirmed(photos),
           "by_source": {}}
    for s in sources:
        sel = [p for p in photos if p["source"] == s]
        out["by_source"][s] = {"photos": len(sel), "false_per_photo": mean(p["false"] for p in sel),
                               "with_false": sorted({p["what"] for p in sel if p["false"]})}
    return out


def print_tables(configs: list[Config], speed: dict | None, group: dict, noface: dict,
                 sources: tuple[str, ...]) -> None:
    width = max(12, *(len(c.label) for c in configs))
    print("\nDetection, one table (speed: one thread, medians of alternating rounds; x Haar = over "
          "Haar alone at 640x480 in this run; x640 = its own 4000x3000 time over its 640x480 time)")
    print(f"{'configuration':<{width}} {'ms 640x480':>10} {'x Haar':>6} {'ms 4000x3000':>12} {'x640':>5} "
          f"{'group found%':>12} {'false/photo':>11} {'dup/photo':>9} {'err%':>5} {'no-face false/photo':>19}")
    for c in configs:
        sp = (speed or {}).get(c.label, {})
        g, n = group.get(c.label), noface.get(c.label)
        print(f"{c.label:<{width}} {fmt(sp.get('ms_640x480'), '.1f', 10)} {fmt(sp.get('x_haar_640x480'), '.2f', 6)} "
              f"{fmt(sp.get('ms_4000x3000'), '.1f', 12)} {fmt(sp.get('large_over_small'), '.2f', 5)} "
              f"{fmt(g and g['found_pct'], '.1f', 12)} {fmt(g and g['false_per_photo'], '.3f', 11)} "
              f"{fmt(g and g['duplicates_per_photo'], '.3f', 9)} {fmt(g and g['error'], '.2f', 5)} "
              f"{fmt(n and n['false_per_photo'], '.3f', 19)}")
    for c in configs:
        g, n = group.get(c.label) or {}, noface.get(c.label) or {}
        if "unconfirmed_per_photo" in g or "unconfirmed_per_photo" in n:
            print(f"  {c.label}: false faces a photo the referee (MediaPipe, on each one's upright surroundings) "
                  f"does not see as faces: group {fmt(g.get('unconfirmed_per_photo'), '.3f', 0)}, "
                  f"no-face {fmt(n.get('unconfirmed_per_photo'), '.3f', 0)}")
    if speed:
        h = speed["haar alone"]
        d = speed["decode_ms"]
        print(f"{'haar alone':<{width}} {fmt(h['ms_640x480'], '.1f', 10)} {'1.00':>6} {fmt(h['ms_4000x3000'], '.1f', 12)} "
              f"{fmt(h['large_over_small'], '.2f', 5)}")
        print(f"JPEG decoding (q{JPEG_QUALITY}): 640x480 {d['640x480']:.1f} ms, 4000x3000 {d['4000x3000']:.1f} ms; "
              f"photo file -> points = decoding + the configuration's time:")
        for c in configs:
            sp = speed[c.label]
            print(f"  {c.label:<{width}} 640x480 {sp['ms_640x480'] + d['640x480']:7.1f} ms   "
                  f"4000x3000 {sp['ms_4000x3000'] + d['4000x3000']:7.1f} ms   "
                  f"(faces found in the speed photo: {sp['faces_640x480']} / {sp['faces_4000x3000']})")
    if group:
        print("\nGroup photos: found % by |roll| (deg), size (px) and lighting")
        g0 = group[configs[0].label]
        heads = ([f"roll {k}" for k in g0["by_roll"]] + [f"{k}px" for k in g0["by_size"]] + list(g0["by_light"]))
        print(f"{'configuration':<{width}} " + " ".join(f"{hd:>11}" for hd in heads)
              + f" {'ms 640x480':>10} {'ms 1280x720':>11}")
        print(f"{'(faces)':<{width}} " + " ".join(
            f"{s['faces']:>11}" for s in [*g0["by_roll"].values(), *g0["by_size"].values(), *g0["by_light"].values()]))
        for c in configs:
            g = group[c.label]
            cells = [*g["by_roll"].values(), *g["by_size"].values(), *g["by_light"].values()]
            ms = g["ms_median"]
            print(f"{c.label:<{width}} " + " ".join(fmt(s["found_pct"], ".1f", 11) for s in cells)
                  + f" {fmt(ms.get('640x480'), '.0f', 10)} {fmt(ms.get('1280x720'), '.0f', 11)}")
    if noface:
        print("\nPhotos with no face: false faces per photo by source (photos)")
        n0 = noface[configs[0].label]
        print(f"{'configuration':<{width}} " + " ".join(f"{s + ' (' + str(n0['by_source'][s]['photos']) + ')':>18}"
                                                          for s in sources))
        for c in configs:
            n = noface[c.label]
            print(f"{c.label:<{width}} " + " ".join(fmt(n["by_source"][s]["false_per_photo"], ".3f", 18) for s in sources))
        for c in configs:
            seen = {s: v["with_false"] for s, v in noface[c.label]["by_source"].items() if v["with_false"]}
            if seen:
                print(f"  {c.label}: false faces in " + "; ".join(f"{s}: {', '.join(v[:8])}"
                                                                   + (" ..." if len(v) > 8 else "") for s, v in seen.items()))


# --- examples -----------------------------------------------------------------------------
def draw(image: np.ndarray, faces, truth: list[np.ndarray], title: str) -> np.ndarray:
    """The photo with true points (green; circled in red where no returned face holds them) and
    returned faces (red: false, orange: on a true face)."""
    out = image.copy()
    for pts in truth:
        if not any(holds(f, pts) for f in faces):
            centre, radius = pts.mean(axis=0), np.linalg.norm(pts - pts.mean(axis=0), axis=1).max() * 1.8
            cv2.circle(out, (int(round(centre[0])), int(round(centre[1]))), int(round(radius)), (0, 0, 255), 1,
                       cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 220, 0), -1, cv2.LINE_AA)
    for f in faces:
        on = any(holds(f, pts) for pts in truth)
        cv2.polylines(out, [np.round(f.corners()).astype(np.int32)], True, (0, 140, 255) if on else (0, 0, 255),
                      2, cv2.LINE_AA)
    cv2.putText(out, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


# --- main ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="CONFIG",
                    help="configurations, each one argument: a detector name and predict's options "
                         f"(default: {' '.join(repr(c) for c in DEFAULT_CONFIGS)})")
    ap.add_argument("--photos", type=int, default=40, help="group photos (0: none)")
    ap.add_argument("--noface", type=int, default=200, help="photos with no face (0: none)")
    ap.add_argument("--rounds", type=int, default=15, help="speed rounds (0: no speed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="cascade model for every configuration that names none "
                                    "(default: the default model)")
    ap.add_argument("--data", help=f"CUHK data folder (default: ${DATA_ENV}, else {rel(DEFAULT_DATA)})")
    ap.add_argument("--json", type=Path, help="write the tables and every photo's record here")
    ap.add_argument("--mediapipe", type=Path, nargs="?", const=MEDIAPIPE_PYTHON, metavar="PYTHON",
                    help="also run MediaPipe FaceMesh's photo mode with this interpreter "
                         f"(default {rel(MEDIAPIPE_PYTHON)}, made by benchmarks/mediapipe_env.sh)")
    ap.add_argument("--mediapipe-faces", type=int, default=20, metavar="K",
                    help="FaceMesh's max_num_faces (default 20: every face of a group photo)")
    add_referee_argument(ap)
    ap.add_argument("--examples", type=Path,
                    help=f"draw photos with false faces or missed faces here (at most {EXAMPLES_PER_CONFIG} "
                         "per configuration)")
    args = ap.parse_args(argv)
    if min(args.photos, args.noface, args.rounds) < 0:
        ap.error("--photos, --noface and --rounds must be 0 or more")
    cv2.setNumThreads(1)

    try:
        configs = [parse_config(text, args.model) for text in args.configs]
    except ConfigError as exc:
        ap.error(str(exc))
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels):
        ap.error("the same configuration is given twice")
    test_list, samples = read_split(args.data, "detection.py")
    from common.landmarker import LandmarkerUnavailable
    try:
        landmarkers = load_configs(configs)
    except LandmarkerUnavailable as exc:
        print(f"detection.py: cannot load a configuration: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.mediapipe is not None:
        if MEDIAPIPE_LABEL in labels:
            ap.error(f"{MEDIAPIPE_LABEL!r} names MediaPipe's column")
        try:
            landmarkers.append(MediaPipePhotos(check_python(args.mediapipe), args.mediapipe_faces))
        except PeerUnavailable as exc:
            ap.error(str(exc))
        configs.append(Config(MEDIAPIPE_LABEL, {}))
        labels.append(MEDIAPIPE_LABEL)
    referee = None
    if args.referee is not None:
        try:
            referee = open_referee(args.referee)
        except PeerUnavailable as exc:
            ap.error(str(exc))
    others = open_screen(ap, test_list.parent) if args.noface else None

    def refereed(rec: dict, image, false_faces, lm) -> None:
        if referee is not None and not isinstance(lm, MediaPipePhotos):
            rec["false_seen_by_referee"] = sum(sees_face(referee, image, f) for f in false_faces)
    from tqdm import tqdm

    backgrounds = Backgrounds(samples)
    print(f"test faces and backgrounds from {rel(test_list)}; seed {args.seed}; configurations:")
    for c, lm in zip(configs, landmarkers):
        if isinstance(lm, MediaPipePhotos):
            print(f"  {c.label}: MediaPipe FaceMesh, photo mode, at most {lm.max_faces} faces, {rel(args.mediapipe)}")
            continue
        print(f"  {c.label}: detector {lm.detector.name} {lm.detector.settings()}, angles "
              f"{' '.join(f'{a:g}' for a in lm.angles)}, min confidence {lm.min_confidence:g}")
    start = time.perf_counter()
    results: dict = {"settings": {"configs": labels, "photos": args.photos, "noface": args.noface,
                                  "rounds": args.rounds, "seed": args.seed, "data": rel(test_list),
                                  "model": [rel(lm.cascade.model_root) for lm in landmarkers if hasattr(lm, "cascade")]}}
    examples_left = {c.label: EXAMPLES_PER_CONFIG for c in configs}
    if args.examples:
        args.examples.mkdir(parents=True, exist_ok=True)

    def example(c: Config, name: str, image, faces, truth, title):
        if args.examples and examples_left[c.label] > 0:
            examples_left[c.label] -= 1
            cv2.imwrite(str(args.examples / f"{slug(c.label)}_{name}.jpg"), draw(image, faces, truth, title),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])

    speed = None
    if args.rounds:
        small, sample = speed_photo(samples, backgrounds, args.seed)
        print(f"\nspeed photo: {rel(sample.image_path)} at {SPEED_FACE:g} px on 640x480, and enlarged to 4000x3000")
        speed = measure_speed(configs, landmarkers, small, args.rounds)
        results["speed"] = speed

    group_recs = {c.label: [] for c in configs}
    if args.photos:
        plan = group_plan(args.photos, len(samples), args.seed)
        for i in tqdm(range(args.photos), desc="group photos", unit="photo", dynamic_ncols=True):
            canvas, chosen = plan[i]
            photo = build_group(i, canvas, [samples[k] for k in chosen], backgrounds, args.seed)
            for c, lm in zip(configs, landmarkers):
                faces, ms = call_ms(lm, photo.image)
                rec = {"index": i, "ms": round(ms, 1), **score_group(photo, faces)}
                refereed(rec, photo.image, [f for f in faces if not any(holds(f, t.points) for t in photo.faces)], lm)
                group_recs[c.label].append(rec)
                if rec["false"] or rec["duplicates"] or not all(f["found"] for f in rec["faces"]):
                    missed = sum(not f["found"] for f in rec["faces"])
                    example(c, f"group{i:03d}", photo.image, faces, [t.points for t in photo.faces],
                            f"group #{i}: {missed} missed, {rec['false']} false, {rec['duplicates']} dup")
    group = {label: group_summary(recs) for label, recs in group_recs.items() if recs}

    noface_recs = {c.label: [] for c in configs}
    sources: tuple[str, ...] = ()
    if args.noface:
        wheel = skimage_wheel()
        skimage = read_skimage_images(wheel) if wheel else {}
        sources = noface_sources(skimage)
        if skimage:
            print(f"no-face images: {len(skimage)} from {wheel.name}")
        faceless = Backgrounds(samples, others)
        try:
            for i in tqdm(range(args.noface), desc="no-face photos", unit="photo", dynamic_ncols=True):
                photo = build_noface(i, faceless, skimage, args.seed)
                for c, lm in zip(configs, landmarkers):
                    faces = lm(photo.image)
                    rec = {"index": i, "source": photo.source, "what": photo.what, "false": len(faces)}
                    refereed(rec, photo.image, faces, lm)
                    noface_recs[c.label].append(rec)
                    if faces:
                        example(c, f"noface{i:03d}", photo.image, faces, [],
                                f"no face #{i}: {photo.what}: {len(faces)} false")
        finally:
            others.save()
    noface = {label: noface_summary(recs, sources) for label, recs in noface_recs.items() if recs}

    print_tables(configs, speed, group, noface, sources)
    elapsed = time.perf_counter() - start
    print(f"\nelapsed {elapsed:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results["settings"]["elapsed_s"] = round(elapsed, 1)
        results["settings"]["mediapipe"] = None if args.mediapipe is None else rel(args.mediapipe)
        results.update(group=group, noface=noface, group_photos=group_recs, noface_photos=noface_recs)
        args.json.write_text(json.dumps(results, indent=1))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
